// Mixed-precision search from the editor, inside a real VS Code: a small sensitivity run of the sample (W2/W4/W6/W8,
// one sample, two timesteps), then "Search Mixed Precision" on its record for 5 average bits with two refinement
// measurements. The search panel must report the Pareto front, a finite measured error for the chosen point and every
// layer × range cell of the allocation; the allocation file loads; the browser side finds the front's canvas in the
// panel's webview and photographs it.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as vscode from 'vscode';
import { loadAllocation } from '../../../extension/engine/export/allocation';
import type { QuantLensApi, SearchRendered } from '../../../extension/protocol/testApi';
import { EXCHANGE, FIXTURES, exchangePath, writeFileAtomic, type HarnessInfo, type SearchPanelRequest } from '../fixtures';
import { closeAllEditors, expectedOnnxLayers, fixture, quantLensApi, waitFor, workspaceRoot } from './helpers';

function harnessWatching(): boolean {
  const file = exchangePath(workspaceRoot(), EXCHANGE.harness);
  return fs.existsSync(file) && (JSON.parse(fs.readFileSync(file, 'utf8')) as HarnessInfo).screenshot === true;
}

suite('Mixed-precision search', () => {
  let api: QuantLensApi;
  let layers: string[];
  let rendered: SearchRendered;
  const sample = () => fixture(FIXTURES.sample);

  suiteSetup(async () => {
    api = await quantLensApi();
    layers = expectedOnnxLayers(sample().fsPath);
    await closeAllEditors();
  });
  suiteTeardown(closeAllEditors);

  test('Search Mixed Precision on a run of the sample shows the front, the measured choice and the allocation', async function () {
    this.timeout(300_000);
    const recordPath = await vscode.commands.executeCommand<string | undefined>('quantlens.analyzeSensitivity', sample(), {
      weightBits: [2, 4, 6, 8],
      activationBits: [],
      samples: 1,
      timestepCount: 2,
    });
    assert.equal(typeof recordPath, 'string');
    const run = await waitFor(
      'the analysis to end',
      () => {
        const s = api.lastRunState();
        return s && s.recordPath === recordPath && s.status !== 'running' ? s : undefined;
      },
      () => JSON.stringify(api.lastRunState()),
      180_000,
    );
    assert.equal(run.status, 'complete', run.message);

    const allocationPath = await vscode.commands.executeCommand<string | undefined>('quantlens.searchMixedPrecision', vscode.Uri.file(recordPath as string), {
      budgetKind: 'averageBits',
      budgetValue: 5,
      rangeCount: 1,
      refine: 2,
    });
    assert.equal(typeof allocationPath, 'string', 'the command resolves to the allocation path');
    assert.equal(api.lastAllocationPath(), allocationPath);
    const state = await waitFor(
      'the search to end',
      () => {
        const s = api.lastSearchState();
        return s && s.status !== 'running' ? s : undefined;
      },
      () => JSON.stringify(api.lastSearchState()),
      180_000,
    );
    assert.equal(state.status, 'complete', state.message);
    rendered = await waitFor(
      'the search panel to draw the report',
      () => {
        const r = api.searchRendered();
        return r && r.frontPoints > 2 ? r : undefined;
      },
      () => JSON.stringify(api.searchRendered() ?? 'no render'),
      60_000,
    );
    assert.ok(rendered.frontPoints > 2, `front points ${rendered.frontPoints}`);
    assert.ok(rendered.measured !== null && Number.isFinite(rendered.measured) && rendered.measured > 0, `measured ${rendered.measured}`);
    assert.equal(rendered.allocationCells, layers.length * 1);
    assert.ok(rendered.chosenCost > 2 && rendered.chosenCost <= 5 + 1e-9, `chosen cost ${rendered.chosenCost} average bits`);

    const allocation = await loadAllocation(allocationPath as string);
    assert.equal(allocation.ranges.length, 1);
    assert.deepEqual(Object.keys(allocation.ranges[0]!.layers).sort(), [...layers].sort());
    assert.equal(allocation.measured?.error, rendered.measured, 'the panel shows the measured number the file holds');
  });

  test('e2e: the search panel\'s webview holds the Pareto front canvas (screenshot)', async function () {
    this.timeout(120_000);
    if (!harnessWatching() || !rendered) this.skip();
    const request: SearchPanelRequest = { frontPoints: rendered.frontPoints };
    writeFileAtomic(exchangePath(workspaceRoot(), EXCHANGE.readyForSearch), JSON.stringify(request));
    await waitFor('the harness to check the search panel', () => (fs.existsSync(exchangePath(workspaceRoot(), EXCHANGE.searchDone)) ? true : undefined), undefined, 90_000);
  });
});
