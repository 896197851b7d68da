// The sample model in the inspector custom editor, the Layers tree view and the commands, inside a real VS Code.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as vscode from 'vscode';
import type { QuantLensApi } from '../../../extension/protocol/testApi';
import { EXCHANGE, FIXTURES, exchangePath, writeFileAtomic, type ScreenshotRequest } from '../fixtures';
import {
  closeAllEditors,
  expectedOnnxLayers,
  fixture,
  harnessWatching,
  inspectorTab,
  quantLensApi,
  VIEW_TYPE,
  waitFor,
  waitForRender,
  workspaceRoot,
} from './helpers';

const KNOWN_LAYER = 'blocks.0.attn.qkv';
const OTHER_LAYER = 'blocks.2.mlp.fc2';

/** A small ONNX model (MatMul, then Gemm with transB) whose layers have the given names; one weight holds a NaN. */
function reexportedModel(names: [string, string]): Uint8Array {
  const weight = (count: number, seed: number) => Array.from({ length: count }, (_, i) => Math.sin(seed + i) / 8);
  const first = weight(16 * 8, 1);
  first[3] = NaN;
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'reexported',
      node: [
        { opType: 'MatMul', name: names[0], input: ['x', 'w0'], output: ['h'] },
        { opType: 'Gemm', name: names[1], input: ['h', 'w1'], output: ['y'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
      ],
      initializer: [
        { name: 'w0', dataType: 1, dims: [16, 8], floatData: first },
        { name: 'w1', dataType: 1, dims: [4, 8], floatData: weight(4 * 8, 2) },
      ],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 16 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 4 }] } } } }],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

suite('Inspector', () => {
  let api: QuantLensApi;
  let expectedLayers: string[];
  const sample = () => fixture(FIXTURES.sample);

  suiteSetup(async () => {
    api = await quantLensApi();
    expectedLayers = expectedOnnxLayers(sample().fsPath);
  });

  test('vscode.openWith shows every quantizable layer of the sample in the webview table', async () => {
    await closeAllEditors();
    await vscode.commands.executeCommand('vscode.openWith', sample(), VIEW_TYPE);
    const render = await waitForRender(api, sample(), 'the inspector table', (r) => r.totalRows === expectedLayers.length);
    assert.equal(render.totalRows, expectedLayers.length);
    assert.equal(render.rowCount, expectedLayers.length, 'a fresh inspector has no filter: every layer is a row');
    assert.ok(render.firstNames.length > 0, 'the table reported no row names');
    assert.deepEqual(render.firstNames, expectedLayers.slice(0, render.firstNames.length), 'unsorted rows are in file order');
    assert.ok(expectedLayers.includes(KNOWN_LAYER), `the sample has no ${KNOWN_LAYER}`);
  });

  test('the engine runs in its own process', async () => {
    const pid = await waitFor('the engine process', () => api.enginePid());
    assert.notEqual(pid, process.pid);
    assert.doesNotThrow(() => process.kill(pid, 0), `engine pid ${pid} is not a live process`);
    if (fs.existsSync(`/proc/${pid}/cmdline`)) {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      assert.match(cmdline, /engine\.js/, `engine process runs ${cmdline}`);
    }
  });

  test('the QuantLens: Inspect Model command opens a model in the inspector', async () => {
    const file = fixture(FIXTURES.sampleViaCommand);
    assert.equal(api.inspectorRendered(file.fsPath), undefined, 'this copy was rendered before the command ran');
    await vscode.commands.executeCommand('quantlens.inspectModel', file);
    const render = await waitForRender(api, file, 'the inspector opened by the command', (r) => r.totalRows === expectedLayers.length);
    assert.equal(render.totalRows, expectedLayers.length);
    assert.ok(inspectorTab(file), 'no quantlens.inspector tab shows the file');
  });

  test('the Layers tree mirrors the active model: groups and layer names', async () => {
    await vscode.commands.executeCommand('vscode.openWith', sample(), VIEW_TYPE);
    await waitForRender(api, sample(), 'the inspector table');
    let last: string[] = [];
    const labels = await waitFor(
      'the Layers tree',
      async () => {
        last = await api.layersTreeLabels();
        return last.some((label) => label.trim() === KNOWN_LAYER) ? last : undefined;
      },
      () => last.join(' | '),
    );
    const trimmed = labels.map((label) => label.trim());
    const depth = (label: string) => label.length - label.trimStart().length;
    assert.equal(trimmed[0], FIXTURES.sample, 'the tree root is the active model');
    for (const group of ['block 0', 'block 3']) assert.ok(trimmed.includes(group), `no group ${group} in ${trimmed.join(' | ')}`);
    for (const name of expectedLayers) assert.ok(trimmed.includes(name), `layer ${name} missing from the tree`);
    // blocks.0.attn.qkv sits under block 0 › attn.
    const leaf = trimmed.indexOf(KNOWN_LAYER);
    const block = trimmed.indexOf('block 0');
    assert.ok(block < leaf && depth(labels[leaf]!) > depth(labels[block]!), 'the layer is not nested in its group');
  });

  test('quantlens.revealLayer selects the layer in the inspector', async () => {
    await vscode.commands.executeCommand('vscode.openWith', sample(), VIEW_TYPE);
    await waitForRender(api, sample(), 'the inspector table');
    for (const name of [OTHER_LAYER, KNOWN_LAYER]) {
      await vscode.commands.executeCommand('quantlens.revealLayer', name);
      const render = await waitForRender(api, sample(), `selection of ${name}`, (r) => r.selected === name);
      assert.equal(render.selected, name);
    }
  });

  test('the Layers tree follows quantlens.revealLayer, and a selection made while it was hidden once it shows', async () => {
    await vscode.commands.executeCommand('vscode.openWith', sample(), VIEW_TYPE);
    await waitForRender(api, sample(), 'the inspector table');
    const treeSelects = (name: string) =>
      waitFor(
        `the Layers tree to select ${name}`,
        () => (JSON.stringify(api.layersTreeSelection()) === JSON.stringify([name]) ? true : undefined),
        () => JSON.stringify(api.layersTreeSelection()),
      );
    await vscode.commands.executeCommand('quantlens.layers.focus');
    await vscode.commands.executeCommand('quantlens.revealLayer', OTHER_LAYER);
    await treeSelects(OTHER_LAYER);

    // Another view takes the sidebar: the tree is hidden and must not pull the sidebar back on its own.
    await vscode.commands.executeCommand('workbench.view.search');
    await waitFor('the Layers tree to be hidden', () => (api.layersTreeVisible() ? undefined : true));
    await vscode.commands.executeCommand('quantlens.revealLayer', KNOWN_LAYER);
    await waitForRender(api, sample(), `selection of ${KNOWN_LAYER}`, (r) => r.selected === KNOWN_LAYER);
    assert.equal(api.layersTreeVisible(), false, 'revealing a layer opened the hidden Layers tree');

    await vscode.commands.executeCommand('quantlens.layers.focus');
    await treeSelects(KNOWN_LAYER);
  });

  test('QuantLens: Open Sample Model opens a copy of the LLM sample (outside the extension folder) in the inspector', async () => {
    await vscode.commands.executeCommand('quantlens.openSample', { sample: 'llm' });
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
    assert.ok(input instanceof vscode.TabInputCustom && input.viewType === VIEW_TYPE, 'the inspector is the active tab');
    const copy = input.uri;
    assert.equal(path.basename(copy.fsPath), 'llm-sample.onnx');
    const bundled = vscode.extensions.getExtension('quantlens.quantlens')!.extensionUri.fsPath;
    assert.ok(!copy.fsPath.startsWith(bundled), `${copy.fsPath} is a copy, not the extension's own file`);
    assert.deepEqual(fs.readFileSync(copy.fsPath), fs.readFileSync(path.join(bundled, 'resources', 'sample', 'llm-sample.onnx')));
    const llmLayers = expectedOnnxLayers(copy.fsPath);
    assert.ok(llmLayers.includes('lm_head') && llmLayers.includes('model.layers.3.mlp.down_proj'), llmLayers.join(', '));
    const render = await waitForRender(api, copy, 'the LLM sample', (r) => r.totalRows === llmLayers.length);
    assert.ok(render.firstNames.length > 0 && render.firstNames.every((name) => llmLayers.includes(name)), JSON.stringify(render.firstNames));
  });

  test('an open inspector inspects its file again when a training script writes a new model over it', async () => {
    const file = fixture(path.join('reexport', 'model.onnx'));
    fs.mkdirSync(path.dirname(file.fsPath), { recursive: true });
    fs.copyFileSync(sample().fsPath, file.fsPath);
    await vscode.commands.executeCommand('vscode.openWith', file, VIEW_TYPE);
    const before = await waitForRender(api, file, 'the copied sample', (r) => r.totalRows === expectedLayers.length);
    assert.ok(before.firstNames.length > 0 && before.firstNames.every((name) => expectedLayers.includes(name)), JSON.stringify(before.firstNames));

    const names: [string, string] = ['reexported.proj_in', 'reexported.proj_out'];
    fs.writeFileSync(file.fsPath, reexportedModel(names));
    const after = await waitForRender(api, file, 'the model written over it', (r) => r.totalRows === names.length);
    assert.deepEqual(after.firstNames, names);
    assert.equal(api.inspectorError(file.fsPath), undefined);
    // The Layers tree follows the new inspection too, with the NaN weight's layer flagged.
    const flagged = [`${names[0]} ⚠`, names[1]];
    let labels: string[] = [];
    await waitFor(
      'the Layers tree to show the new layers, the first flagged',
      async () => {
        labels = (await api.layersTreeLabels()).map((label) => label.trim());
        return flagged.every((label) => labels.includes(label)) && !labels.includes(KNOWN_LAYER) ? true : undefined;
      },
      () => JSON.stringify(labels),
    );
  });

  // The harness looks at the webview's DOM from the browser and takes the screenshot while this test holds still.
  test('e2e: the inspector is held open for the browser-side check and screenshot', async function () {
    if (!harnessWatching()) this.skip();
    // The harness clicks through the Layers tree, so it must be open.
    await vscode.commands.executeCommand('quantlens.layers.focus');
    await vscode.commands.executeCommand('vscode.openWith', sample(), VIEW_TYPE);
    for (const name of [OTHER_LAYER, KNOWN_LAYER]) {
      await vscode.commands.executeCommand('quantlens.revealLayer', name);
      await waitForRender(api, sample(), `selection of ${name}`, (r) => r.selected === name);
    }
    // Messages from earlier tests would cover the picture.
    await vscode.commands.executeCommand('notifications.clearAll');
    const request: ScreenshotRequest = { file: sample().fsPath, layer: KNOWN_LAYER };
    writeFileAtomic(exchangePath(workspaceRoot(), EXCHANGE.readyForScreenshot), JSON.stringify(request));
    await waitFor(
      'the harness to take the screenshot',
      () => (fs.existsSync(exchangePath(workspaceRoot(), EXCHANGE.screenshotDone)) ? true : undefined),
      undefined,
      90_000,
    );
  });
});
