// Sensitivity analysis from the editor, inside a real VS Code: the command runs W4/W8/A8 on two timesteps of the
// sample in the engine process, the panel's heatmap reports every cell, the record is on disk with the plan's rows;
// the browser side clicks a cell (the inspector must show that layer) and "Export CSV"; the panel survives being
// hidden, and "Open Analysis Run" restores a saved run. The LLM sample runs once its `seq` dim has a size.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AnalysisRun } from '../../../extension/protocol/analysis';
import type { AnalysisRendered, QuantLensApi } from '../../../extension/protocol/testApi';
import {
  ANALYSIS_WORKSPACE_SETTINGS,
  EXCHANGE,
  FIXTURES,
  exchangePath,
  writeFileAtomic,
  type AnalysisFormRequest,
  type AnalysisPanelRequest,
} from '../fixtures';
import {
  closeAllEditors,
  expectedOnnxLayers,
  fixture,
  harnessWatching,
  quantLensApi,
  runEnded,
  VIEW_TYPE,
  waitFor,
  waitForRender,
  workspaceRoot,
} from './helpers';

const ANALYSIS_VIEW_TYPE = 'quantlens.analysis';
const TIMESTEPS = [999, 0];
const SETTINGS = ['W4', 'W8', 'A8'];
/** The layer whose heatmap cell the browser side clicks. */
const CLICKED_LAYER = 'blocks.1.attn.qkv';

function analysisTab(): { tab: vscode.Tab; group: vscode.TabGroup } | undefined {
  for (const group of vscode.window.tabGroups.all) {
    for (const tab of group.tabs) {
      if (tab.input instanceof vscode.TabInputWebview && tab.input.viewType.endsWith(ANALYSIS_VIEW_TYPE)) return { tab, group };
    }
  }
  return undefined;
}

suite('Sensitivity analysis', () => {
  let api: QuantLensApi;
  let layers: string[];
  let recordPath: string;
  let record: AnalysisRun;
  const sample = () => fixture(FIXTURES.sample);
  const fullRender = (): AnalysisRendered => ({
    type: 'rendered',
    cells: (layers.length + 1) * TIMESTEPS.length,
    units: layers.length + 1,
    timesteps: TIMESTEPS.length,
    setting: 'W4',
    metric: 'sqnrDb',
  });
  const waitForFullRender = (what: string) =>
    waitFor(
      what,
      () => {
        const rendered = api.analysisRendered();
        return rendered && rendered.cells === fullRender().cells ? rendered : undefined;
      },
      () => JSON.stringify(api.analysisRendered() ?? 'no render'),
      60_000,
    );

  suiteSetup(async () => {
    api = await quantLensApi();
    layers = expectedOnnxLayers(sample().fsPath);
    await closeAllEditors();
  });
  suiteTeardown(closeAllEditors);

  test('Analyze Sensitivity runs W4/W8/A8 over 2 timesteps of the sample and the heatmap shows every cell', async function () {
    this.timeout(240_000);
    const result = await vscode.commands.executeCommand<string | undefined>('quantlens.analyzeSensitivity', sample(), {
      weightBits: [4, 8],
      activationBits: [8],
      samples: 1,
      timestepCount: TIMESTEPS.length,
    });
    assert.equal(typeof result, 'string', 'the command resolves to the record path');
    recordPath = result as string;
    assert.equal(api.lastRunPath(), recordPath);
    assert.equal(path.dirname(recordPath), path.join(workspaceRoot(), '.quantlens', 'runs'));
    assert.match(path.basename(recordPath), /^dit-sample-\d{8}-\d{6}\.json$/);

    const state = await runEnded(api, (file) => file === recordPath);
    assert.equal(state.status, 'complete', state.message);
    const cells = (layers.length + 1) * SETTINGS.length * TIMESTEPS.length;
    assert.equal(state.rows, cells);
    assert.equal(state.total, cells);

    const rendered = await waitForFullRender('the heatmap to show every unit × timestep');
    assert.deepEqual(rendered, fullRender());
    assert.ok(analysisTab(), 'a sensitivity panel tab is open');

    record = JSON.parse(fs.readFileSync(recordPath, 'utf8')) as AnalysisRun;
    assert.equal(record.schema, 'quantlens.analysis/1');
    assert.equal(record.status, 'complete');
    assert.equal(record.settings.model, sample().fsPath);
    assert.deepEqual(record.settings.timestep, { input: 't', values: TIMESTEPS });
    assert.equal(record.settings.calibration.samples, 1);
    assert.deepEqual(record.plan.settings, SETTINGS);
    assert.deepEqual(record.plan.timesteps, TIMESTEPS);
    assert.deepEqual([...record.plan.units].sort(), [...layers, '*'].sort());
    assert.equal(record.plan.total, cells);
    assert.equal(record.rows.length, cells);
    const keys = new Set(record.rows.map((r) => `${r.unit}|${r.setting}|${r.timestep}`));
    assert.equal(keys.size, cells, 'every cell of the plan once');
    for (const row of record.rows) {
      assert.ok(Number.isFinite(row.primary.sqnrDb) && row.primary.mse >= 0, `${row.unit} ${row.setting} t=${row.timestep}`);
    }
    // W4 hurts more than W8 on every layer: SQNR lower, with the all-at-once unit the worst.
    const sqnr = (unit: string, setting: string, t: number) => record.rows.find((r) => r.unit === unit && r.setting === setting && r.timestep === t)!.primary.sqnrDb;
    for (const layer of layers) assert.ok(sqnr(layer, 'W4', 0) < sqnr(layer, 'W8', 0), layer);
    assert.ok(layers.every((layer) => sqnr('*', 'W4', 999) <= sqnr(layer, 'W4', 999)));
  });

  // The harness (a browser watching code-server) checks the canvas, hovers, clicks a cell and Export CSV, and
  // takes the screenshot while this test holds the panel open.
  test('e2e: a click on a heatmap cell shows its layer in the inspector; Export CSV writes the rows', async function () {
    this.timeout(150_000);
    if (!harnessWatching() || !record) this.skip();
    await waitForFullRender('the panel before the browser-side check');
    const request: AnalysisPanelRequest = {
      recordPath,
      cells: fullRender().cells,
      click: { row: record.plan.units.indexOf(CLICKED_LAYER), column: 1 },
    };
    assert.ok(request.click.row >= 0, `${CLICKED_LAYER} is not in the plan`);
    writeFileAtomic(exchangePath(workspaceRoot(), EXCHANGE.readyForAnalysis), JSON.stringify(request));
    await waitFor('the harness to check the panel', () => (fs.existsSync(exchangePath(workspaceRoot(), EXCHANGE.analysisDone)) ? true : undefined), undefined, 120_000);

    const render = await waitForRender(api, sample(), `the inspector to select ${CLICKED_LAYER}`, (r) => r.selected === CLICKED_LAYER);
    assert.equal(render.selected, CLICKED_LAYER);
    const csv = recordPath.replace(/\.json$/, '.csv');
    const text = await waitFor('the CSV export', () => (fs.existsSync(csv) ? fs.readFileSync(csv, 'utf8') : undefined));
    const lines = text.trimEnd().split('\n');
    assert.match(lines[0]!, /^unit,setting,timestep,mse,sqnr_db,cosine/);
    assert.equal(lines.length, record.rows.length + 1);
  });

  test('a hidden panel draws every cell again when shown (its webview does not keep its context)', async () => {
    await waitForFullRender('the panel before hiding it');
    const shown = analysisTab();
    assert.ok(shown, 'no sensitivity panel tab');
    // Another editor in the panel's group (the record itself, as text) hides it; closing that editor shows it again.
    await vscode.window.showTextDocument(vscode.Uri.file(recordPath), { viewColumn: shown.group.viewColumn, preview: false });
    await waitFor('the panel to be hidden', () => (api.analysisRendered() === undefined ? true : undefined), () => JSON.stringify(api.analysisRendered()));
    const group = vscode.window.tabGroups.all.find((g) => g.viewColumn === shown.group.viewColumn);
    const cover = group?.tabs.find((tab) => tab.input instanceof vscode.TabInputText && tab.input.uri.fsPath === recordPath);
    assert.ok(cover, 'the covering editor is not in the panel’s group');
    await vscode.window.tabGroups.close(cover);
    assert.deepEqual(await waitForFullRender('the panel to draw again'), fullRender());
  });

  test('e2e: the inspector\'s Analyze Sensitivity button opens the form prefilled from the workspace settings; Start runs it', async function () {
    this.timeout(240_000);
    if (!harnessWatching()) this.skip();
    const before = api.lastRunPath();
    // The browser clicks the button in the inspector's title bar.
    await closeAllEditors();
    await vscode.commands.executeCommand('vscode.openWith', sample(), VIEW_TYPE);
    await waitForRender(api, sample(), 'the inspector before the browser clicks its title-bar button');
    const settings = ANALYSIS_WORKSPACE_SETTINGS;
    const request: AnalysisFormRequest = {
      expected: {
        samples: String(settings['quantlens.analysis.samples']),
        timesteps: String(settings['quantlens.analysis.timesteps']),
        timestepInput: 't',
        checked: [...settings['quantlens.analysis.weightBits'].map((b) => `W${b}`), ...settings['quantlens.analysis.activationBits'].map((b) => `A${b}`)],
      },
    };
    writeFileAtomic(exchangePath(workspaceRoot(), EXCHANGE.readyForAnalysisForm), JSON.stringify(request));
    await waitFor('the harness to click Analyze Sensitivity, check the form and click Start', () => (fs.existsSync(exchangePath(workspaceRoot(), EXCHANGE.analysisFormDone)) ? true : undefined), undefined, 120_000);
    const state = await runEnded(api, (file) => file !== before);
    assert.equal(state.status, 'complete', state.message);
    assert.equal(state.rows, (layers.length + 1) * SETTINGS.length * TIMESTEPS.length);
    assert.deepEqual(await waitForFullRender('the heatmap of the run started from the form'), fullRender());
    const saved = JSON.parse(fs.readFileSync(state.recordPath, 'utf8')) as AnalysisRun;
    assert.deepEqual(saved.settings.timestep, { input: 't', values: TIMESTEPS });
    assert.equal(saved.settings.calibration.samples, 1);
  });

  test('Extra activation tensors (attention K and V, as for KV-cache quantization) are measured as their own units; an unknown one is refused by name', async function () {
    this.timeout(240_000);
    const kv = ['blocks.0.attn/Gather_k_output', 'blocks.0.attn/Gather_v_output'];
    let before = api.lastRunPath();
    const options = { weightBits: [], activationBits: [4, 8], samples: 1, timestepCount: 1 };
    await vscode.commands.executeCommand('quantlens.analyzeSensitivity', sample(), { ...options, extraActivationTensors: kv });
    const state = await runEnded(api, (file) => file !== before);
    assert.equal(state.status, 'complete', state.message);
    const run = JSON.parse(fs.readFileSync(state.recordPath, 'utf8')) as AnalysisRun;
    assert.deepEqual(run.settings.extraActivationTensors, kv);
    for (const tensor of kv) {
      const sqnr = (setting: string) => run.rows.find((r) => r.unit === tensor && r.setting === setting)?.primary.sqnrDb;
      const [a4, a8] = [sqnr('A4'), sqnr('A8')];
      assert.ok(a4 !== undefined && a8 !== undefined, `${tensor} has rows for A4 and A8`);
      assert.ok(a4 < a8, `${tensor}: A4 ${a4} dB should lose more than A8 ${a8} dB`);
    }

    before = api.lastRunPath();
    await vscode.commands.executeCommand('quantlens.analyzeSensitivity', sample(), { ...options, extraActivationTensors: ['blocks.0.attn/no_such_tensor'] });
    const refused = await runEnded(api, (file) => file !== before);
    assert.equal(refused.status, 'failed');
    assert.match(refused.message ?? '', /dit-sample\.onnx.*no tensor named "blocks\.0\.attn\/no_such_tensor"/);
  });

  test('Open Analysis Run restores a saved run in a new panel', async () => {
    await closeAllEditors();
    await waitFor('the panels to close', () => (api.analysisRendered() === undefined && !analysisTab() ? true : undefined));
    await vscode.commands.executeCommand('quantlens.openRun', vscode.Uri.file(recordPath));
    assert.deepEqual(await waitForFullRender('the reopened run to draw'), fullRender());
    assert.ok(analysisTab(), 'no sensitivity panel tab after Open Analysis Run');
  });

  test('The LLM sample runs on synthetic token ids from its vocabulary once its seq dim has a size; without one the run fails naming seq and quantlens.analysis.dims', async function () {
    this.timeout(240_000);
    const llm = fixture(FIXTURES.llmSample);
    const llmLayers = expectedOnnxLayers(llm.fsPath);
    assert.equal(llmLayers.length, 29, '4 layers × 7 projections + lm_head');
    const options = { weightBits: [8], activationBits: [], samples: 1 };

    let before = api.lastRunPath();
    await vscode.commands.executeCommand('quantlens.analyzeSensitivity', llm, { ...options, dims: { seq: 8 } });
    const state = await runEnded(api, (file) => file !== before);
    assert.equal(state.status, 'complete', state.message);
    const run = JSON.parse(fs.readFileSync(state.recordPath, 'utf8')) as AnalysisRun;
    assert.deepEqual(run.settings.calibration.dims, { seq: 8 });
    assert.deepEqual([...run.plan.units].sort(), [...llmLayers, '*'].sort());
    assert.equal(run.rows.length, llmLayers.length + 1);
    for (const row of run.rows) assert.ok(Number.isFinite(row.primary.sqnrDb), `${row.unit} ${row.setting}: ${row.primary.sqnrDb} dB`);
    assert.ok(
      run.warnings?.some((w) => w.includes('"input_ids"') && w.includes('[0, 512)') && w.includes('"model.embed_tokens.weight"')),
      `the record says where the token ids came from: ${JSON.stringify(run.warnings)}`,
    );

    before = api.lastRunPath();
    await vscode.commands.executeCommand('quantlens.analyzeSensitivity', llm, options);
    const refused = await runEnded(api, (file) => file !== before);
    assert.equal(refused.status, 'failed');
    assert.match(refused.message ?? '', /llm-sample\.onnx.*symbolic dim "seq".*quantlens\.analysis\.dims \(editor\) or --dims \(CLI\)/);
  });
});
