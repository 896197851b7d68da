// Mixed-precision search from the editor, inside a real VS Code: a small sensitivity run of the sample (W2/W4/W6/W8,
// one sample, two timesteps), then "Search Mixed Precision" on its record for 5 average bits with two refinement
// measurements. The search panel must report the Pareto front, a finite measured error for the chosen point and every
// layer × range cell of the allocation; the allocation file loads; the browser side finds the front's canvas in the
// panel's webview, photographs it and switches the theme's chart colors under it. Then a quality target (minimum SQNR)
// with a pinned layer and two of the run's settings: the measured SQNR meets the target or the report says it misses
// it, the pinned layer stays at 16 bits; and invalid pin patterns are refused before anything runs.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { loadAllocation } from '../../../extension/engine/export/allocation';
import { reportPathFor } from '../../../extension/engine/search/report';
import type { SearchReport } from '../../../extension/protocol/searchPanel';
import type { QuantLensApi, SearchRendered } from '../../../extension/protocol/testApi';
import { EXCHANGE, FIXTURES, exchangePath, writeFileAtomic, type SearchPanelRequest } from '../fixtures';
import { closeAllEditors, expectedOnnxLayers, fixture, harnessWatching, quantLensApi, runEnded, waitFor, workspaceRoot } from './helpers';

/** The last search's end state, once it is no longer running. */
function searchEnded(api: QuantLensApi) {
  return waitFor(
    'the search to end',
    () => {
      const s = api.lastSearchState();
      return s && s.status !== 'running' ? s : undefined;
    },
    () => JSON.stringify(api.lastSearchState()),
    180_000,
  );
}

suite('Mixed-precision search', () => {
  let api: QuantLensApi;
  let layers: string[];
  let rendered: SearchRendered;
  let recordPath: string | undefined;
  const TARGET_DB = 22;
  const PINNED = 'blocks.2.mlp.fc2';
  const sample = () => fixture(FIXTURES.sample);

  suiteSetup(async () => {
    api = await quantLensApi();
    layers = expectedOnnxLayers(sample().fsPath);
    await closeAllEditors();
  });
  suiteTeardown(closeAllEditors);

  test('Search Mixed Precision on a run of the sample shows the front, the measured choice and the allocation', async function () {
    this.timeout(300_000);
    recordPath = await vscode.commands.executeCommand<string | undefined>('quantlens.analyzeSensitivity', sample(), {
      weightBits: [2, 4, 6, 8],
      activationBits: [],
      samples: 1,
      timestepCount: 2,
    });
    assert.equal(typeof recordPath, 'string');
    const run = await runEnded(api, (file) => file === recordPath);
    assert.equal(run.status, 'complete', run.message);

    const allocationPath = await vscode.commands.executeCommand<string | undefined>('quantlens.searchMixedPrecision', vscode.Uri.file(recordPath as string), {
      budgetKind: 'averageBits',
      budgetValue: 5,
      rangeCount: 1,
      refine: 2,
    });
    assert.equal(typeof allocationPath, 'string', 'the command resolves to the allocation path');
    assert.equal(api.lastAllocationPath(), allocationPath);
    const state = await searchEnded(api);
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
    assert.ok(rendered.measured !== null && Number.isFinite(rendered.measured) && rendered.measured > 0, `measured ${rendered.measured}`);
    assert.equal(rendered.allocationCells, layers.length * 1);
    assert.ok(rendered.chosenCost > 2 && rendered.chosenCost <= 5 + 1e-9, `chosen cost ${rendered.chosenCost} average bits`);

    const allocation = await loadAllocation(allocationPath as string);
    assert.equal(allocation.ranges.length, 1);
    assert.deepEqual(Object.keys(allocation.ranges[0]!.layers).sort(), [...layers].sort());
    assert.equal(allocation.measured?.error, rendered.measured, 'the panel shows the measured number the file holds');
    // The front and the chosen point the panel drew are the saved report's.
    const report = JSON.parse(fs.readFileSync(reportPathFor(allocationPath as string), 'utf8')) as SearchReport;
    assert.equal(report.ranges.length, 1);
    assert.equal(rendered.frontPoints, report.ranges[0]!.front.length);
    assert.equal(rendered.chosenCost, report.chosen.predicted.cost);
  });

  test('e2e: the search panel\'s webview holds the Pareto front canvas (screenshot)', async function () {
    this.timeout(120_000);
    if (!harnessWatching() || !rendered) this.skip();
    const request: SearchPanelRequest = { frontPoints: rendered.frontPoints };
    writeFileAtomic(exchangePath(workspaceRoot(), EXCHANGE.readyForSearch), JSON.stringify(request));
    await waitFor('the harness to check the search panel', () => (fs.existsSync(exchangePath(workspaceRoot(), EXCHANGE.searchDone)) ? true : undefined), undefined, 90_000);
  });

  test('A minimum SQNR with a pinned layer and two of the run\'s settings: the choice meets the target (or says it does not), the pin stays at 16 bits', async function () {
    this.timeout(240_000);
    if (!recordPath) this.skip();
    const runPath = recordPath as string;
    const before = api.lastAllocationPath();
    const allocationPath = await vscode.commands.executeCommand<string | undefined>('quantlens.searchMixedPrecision', vscode.Uri.file(runPath), {
      budgetKind: 'minSqnrDb',
      budgetValue: TARGET_DB,
      rangeCount: 1,
      refine: 2,
      pin: `^${PINNED.replace(/\./g, '\\.')}$`,
      settings: ['W4', 'W8'],
    });
    assert.equal(typeof allocationPath, 'string');
    assert.notEqual(allocationPath, before);
    assert.match(path.basename(allocationPath as string), new RegExp(`-${TARGET_DB}dB-`), 'the file is named by the target');
    const state = await searchEnded(api);
    assert.equal(state.status, 'complete', state.message);

    const allocation = await loadAllocation(allocationPath as string);
    // The engine's error target is the relative noise power the target allows: 10^(−dB/10), computed here on its own.
    const maxError = Math.exp((-TARGET_DB / 10) * Math.LN10);
    assert.equal(allocation.budget?.kind, 'errorTarget');
    assert.ok(Math.abs((allocation.budget as { maxError: number }).maxError - maxError) <= 1e-12 * maxError, JSON.stringify(allocation.budget));

    const report = JSON.parse(fs.readFileSync(reportPathFor(allocationPath as string), 'utf8')) as SearchReport;
    const sqnrDb = allocation.measured?.sqnrDb;
    assert.equal(typeof sqnrDb, 'number', 'the chosen allocation was measured');
    // Met, or the report says it is missed (one-layer errors do not add up exactly).
    const missed = report.notes.some((note) => /misses the target/.test(note));
    assert.ok(missed || (sqnrDb as number) >= TARGET_DB, `measured ${sqnrDb} dB against a ${TARGET_DB} dB target; notes: ${report.notes.join(' | ')}`);

    const bits = allocation.ranges[0]!.layers;
    assert.equal(bits[PINNED]?.weightBits, 16, `${PINNED} is pinned in full precision`);
    const others = Object.entries(bits).filter(([name]) => name !== PINNED);
    assert.ok(others.every(([, b]) => [4, 8, 16].includes(b.weightBits)), `only W4, W8 or full precision: ${JSON.stringify(others)}`);
    assert.ok(others.some(([, b]) => b.weightBits < 16), 'the target is met with some layers quantized');
    assert.deepEqual(report.uniform.map((u) => u.label), ['uniform W4', 'uniform W8'], 'baselines only of the chosen settings');

    const drawn = await waitFor(
      'the search panel to draw the quality-target report',
      () => {
        const r = api.searchRendered();
        return r && r.measured === allocation.measured?.error ? r : undefined;
      },
      () => JSON.stringify(api.searchRendered() ?? 'no render'),
      60_000,
    );
    assert.equal(drawn.frontPoints, report.ranges[0]!.front.length);
    assert.equal(drawn.chosenCost, report.chosen.predicted.cost);
  });

  test('An invalid pin pattern is refused with the reason, and nothing runs', async function () {
    if (!recordPath) this.skip();
    const runPath = recordPath as string;
    const before = api.lastAllocationPath();
    await assert.rejects(
      Promise.resolve(vscode.commands.executeCommand('quantlens.searchMixedPrecision', vscode.Uri.file(runPath), { budgetKind: 'minSqnrDb', budgetValue: TARGET_DB, pin: 'blocks.(2' })),
      /Pin layers: "blocks\.\(2" is not a valid regular expression/,
    );
    await assert.rejects(
      Promise.resolve(vscode.commands.executeCommand('quantlens.searchMixedPrecision', vscode.Uri.file(runPath), { pin: 'no_such_layer' })),
      /Pin layers: "no_such_layer" matches none of the run's \d+ layers/,
    );
    assert.equal(api.lastAllocationPath(), before, 'no search started');
  });
});
