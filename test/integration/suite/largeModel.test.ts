// A checkpoint with 5,000 layers: every one reaches the webview, and the browser-side checks (runInCodeServer.ts)
// scroll, filter, sort and select in the real table; what they leave behind is checked here through the API.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { EXCHANGE, FIXTURES, LARGE_CHECKPOINT, exchangePath, writeFileAtomic, type LargeTableRequest } from '../fixtures';
import {
  checkpointShapes,
  closeAllEditors,
  expectedCheckpointLayers,
  fixture,
  harnessWatching,
  quantLensApi,
  VIEW_TYPE,
  waitFor,
  waitForRender,
  workspaceRoot,
} from './helpers';

suite('5,000 layers', () => {
  const file = () => fixture(FIXTURES.largeCheckpoint);

  test('every layer of a 5,000-layer checkpoint reaches the webview table', async () => {
    const api = await quantLensApi();
    const expected = expectedCheckpointLayers(file().fsPath);
    assert.equal(expected.length, LARGE_CHECKPOINT.layers);
    await closeAllEditors();
    await vscode.commands.executeCommand('vscode.openWith', file(), VIEW_TYPE);
    const render = await waitForRender(api, file(), 'all 5,000 rows', (r) => r.totalRows === expected.length, 90_000);
    assert.equal(render.rowCount, expected.length, 'no filter is set, so every layer is a row');
    assert.deepEqual(render.firstNames, expected.slice(0, render.firstNames.length), 'rows are in file order');
    assert.equal(api.inspectorError(file().fsPath), undefined);
  });

  test('e2e: the browser scrolls, filters, sorts and selects in the 5,000-row table; the Layers tree follows', async function () {
    if (!harnessWatching()) this.skip();
    const api = await quantLensApi();
    await vscode.commands.executeCommand('quantlens.layers.focus');
    await vscode.commands.executeCommand('vscode.openWith', file(), VIEW_TYPE);
    await waitForRender(api, file(), 'all 5,000 rows', (r) => r.totalRows === LARGE_CHECKPOINT.layers, 90_000);
    // Messages from earlier tests would cover the pictures.
    await vscode.commands.executeCommand('notifications.clearAll');
    const request: LargeTableRequest = { file: file().fsPath };
    writeFileAtomic(exchangePath(workspaceRoot(), EXCHANGE.readyForLargeTable), JSON.stringify(request));
    await waitFor(
      'the browser-side checks of the 5,000-row table',
      () => (fs.existsSync(exchangePath(workspaceRoot(), EXCHANGE.largeTableDone)) ? true : undefined),
      undefined,
      150_000,
    );

    // The harness left the filter typed in and the table sorted by params: the webview reports exactly that view.
    const params = new Map([...checkpointShapes(file().fsPath)].map(([name, shape]) => [name, shape.reduce((a, b) => a * b, 1)]));
    const names = expectedCheckpointLayers(file().fsPath);
    const expectedView = names
      .filter((name) => name.includes(LARGE_CHECKPOINT.filter))
      .sort((a, b) => params.get(a)! - params.get(b)! || names.indexOf(a) - names.indexOf(b));
    const render = await waitForRender(api, file(), 'the filtered, sorted view', (r) => r.rowCount === expectedView.length);
    assert.deepEqual(render.firstNames, expectedView);
    assert.equal(render.totalRows, LARGE_CHECKPOINT.layers);

    // The harness clicked a row; the (visible) Layers tree selected the same layer.
    assert.ok(render.selected, 'the webview reports no selected layer after the click');
    const selected = render.selected;
    await waitFor(
      `the Layers tree to select ${selected}`,
      () => (sameNames(api.layersTreeSelection(), [selected]) ? true : undefined),
      () => JSON.stringify(api.layersTreeSelection()),
    );
  });
});

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}
