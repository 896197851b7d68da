// The inspector's pure pieces: formatting, table filtering/sorting/virtual window, the Layers tree's grouping,
// chart data, the shared inspection (replay, failures, cancel) and the webview's HTML/CSP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InspectEvent, InspectResult } from '../../extension/protocol/engine';
import type { LayerRecord, ModelSummary } from '../../extension/protocol/records';
import { buildGroupTree, leaves, type GroupNode } from '../../extension/features/layersView/groupTree';
import { describeFailure, Inspection, toFailure, type InspectionUpdate } from '../../extension/features/inspection';
import { contentSecurityPolicy, escapeHtml, makeNonce, webviewHtml } from '../../extension/features/webview/html';
import { formatBytes, formatCount, formatDb, formatDims, formatNumber, formatPercent, formatShape, shorten } from '../../webview/shared/format';
import { histogramBins, sqnrSeries } from '../../webview/inspector/chartData';
import {
  COLUMNS, filterLayers, gridTemplate, minTableWidth, moveSelection, nextSort, scrollToRow, sortLayers, viewLayers,
  visibleWindow,
} from '../../webview/inspector/tableModel';

function layer(name: string, opts: { op?: string; group?: string[]; w4?: number | null; params?: number } = {}): LayerRecord {
  const w4 = opts.w4 === undefined ? 20 : opts.w4;
  const db = (x: number) => ({ 2: x - 12, 3: x - 6, 4: x, 6: x + 12, 8: x + 24 });
  return {
    name,
    opType: opts.op ?? 'MatMul',
    weight: `${name}.weight`,
    shape: [4, 8],
    dtype: 'F32',
    params: opts.params ?? 32,
    channelAxis: 1,
    group: opts.group ?? [],
    stats: {
      count: 32, nonFinite: 0, nan: 0, posInf: 0, negInf: 0, warnings: [], min: -1, max: 1, mean: 0, std: 0.5, kurtosis: 0, absMax: 1, outlierSigma: 6, outlierShare: 0,
      channels: 8, channelAbsMax: { min: 0.5, median: 0.8, max: 1 }, channelSpread: 1.25,
      histogram: { min: -1, max: 1, counts: [1, 2, 3, 4] },
      quantError: {
        perChannel: (w4 === null ? { 2: null, 3: null, 4: null, 6: null, 8: null } : db(w4)) as Record<2 | 3 | 4 | 6 | 8, number>,
        perGroup: db(21),
        groupSize: 128,
      },
    },
  };
}

test('numbers are formatted for reading, and missing values say so', () => {
  assert.equal(formatCount(950), '950');
  assert.equal(formatCount(12_345), '12.3K');
  assert.equal(formatCount(999_999), '1M');
  assert.equal(formatCount(4_560_000), '4.56M');
  assert.equal(formatCount(1_200_000_000), '1.2B');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(10.8 * 1024 * 1024), '10.8 MiB');
  assert.equal(formatBytes(1023.9 * 1024), '1 MiB');
  assert.equal(formatNumber(0.123456), '0.123');
  assert.equal(formatNumber(-2.5), '-2.5');
  assert.equal(formatNumber(0.0000123), '1.23e-5');
  assert.equal(formatNumber(0), '0');
  assert.equal(formatNumber(null), '—');
  assert.equal(formatNumber(NaN), '—');
  assert.equal(formatDb(23.456), '23.5');
  assert.equal(formatDb(Infinity), '∞');
  assert.equal(formatDb(null), '—');
  assert.equal(formatPercent(0), '0%');
  assert.equal(formatPercent(0.00001), '<0.01%');
  assert.equal(formatPercent(0.0123), '1.2%');
  assert.equal(formatPercent(0.5), '50%');
  assert.equal(formatShape([768, 3072]), '768×3072');
  assert.equal(formatShape([]), 'scalar');
  assert.equal(formatDims(['batch', 3, null, 48]), '[batch, 3, ?, 48]');
});

test('long layer names keep their end, the part that differs, within the limit', () => {
  assert.equal(shorten('blocks.27.attn.qkv', 18), 'blocks.27.attn.qkv');
  assert.equal(shorten('model.layers.27.self_attn.q_proj', 17), '…self_attn.q_proj');
  assert.equal(shorten('model.layers.27.self_attn.q_proj', 16).length, 16);
});

test('the filter matches every term against name, op and group, case-insensitively', () => {
  const layers = [
    layer('blocks.0.attn.qkv', { op: 'Gemm', group: ['block 0', 'attn'] }),
    layer('blocks.0.mlp.fc1', { group: ['block 0', 'mlp'] }),
    layer('blocks.1.attn.qkv', { op: 'Gemm', group: ['block 1', 'attn'] }),
    layer('head', { op: 'Conv' }),
  ];
  const names = (q: string) => filterLayers(layers, q).map((l) => l.name);
  assert.deepEqual(names(''), layers.map((l) => l.name));
  assert.deepEqual(names('QKV'), ['blocks.0.attn.qkv', 'blocks.1.attn.qkv']);
  assert.deepEqual(names('gemm block 1'), ['blocks.1.attn.qkv']);
  assert.deepEqual(names('conv'), ['head']);
  assert.deepEqual(names('  mlp   fc1 '), ['blocks.0.mlp.fc1']);
  assert.deepEqual(names('nothing-like-this'), []);
});

test('sorting: numbers by value, names naturally, missing values last both ways, ties in file order', () => {
  const layers = [
    layer('blocks.10.fc', { w4: 18 }),
    layer('blocks.9.fc', { w4: null }),
    layer('blocks.2.fc', { w4: 25 }),
    layer('blocks.1.fc', { w4: 18 }),
  ];
  const names = (key: 'name' | 'w4', dir: 'asc' | 'desc') => sortLayers(layers, { key, dir }).map((l) => l.name);
  assert.deepEqual(names('name', 'asc'), ['blocks.1.fc', 'blocks.2.fc', 'blocks.9.fc', 'blocks.10.fc']);
  assert.deepEqual(names('name', 'desc'), ['blocks.10.fc', 'blocks.9.fc', 'blocks.2.fc', 'blocks.1.fc']);
  assert.deepEqual(names('w4', 'asc'), ['blocks.10.fc', 'blocks.1.fc', 'blocks.2.fc', 'blocks.9.fc']);
  assert.deepEqual(names('w4', 'desc'), ['blocks.2.fc', 'blocks.10.fc', 'blocks.1.fc', 'blocks.9.fc']);
  assert.deepEqual(sortLayers(layers, null).map((l) => l.name), layers.map((l) => l.name));
  assert.deepEqual(layers.map((l) => l.name), ['blocks.10.fc', 'blocks.9.fc', 'blocks.2.fc', 'blocks.1.fc'], 'sorting returns a copy');

  const w4 = COLUMNS.find((c) => c.key === 'w4')!;
  assert.equal(w4.text(layers[0]), '18.0');
  assert.equal(w4.text(layers[1]), '—');
});

test('sorting a large table agrees with a naive ordering', () => {
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const layers = Array.from({ length: 5000 }, (_, i) => layer(`l${i}`, { w4: Math.round(random() * 40), params: i }));
  const sorted = viewLayers(layers, '', { key: 'w4', dir: 'asc' });
  // Naively: by W4 SQNR, ties in file order (params is the file index here).
  const naive = [...layers].sort((a, b) => a.stats.quantError.perChannel[4] - b.stats.quantError.perChannel[4] || a.params - b.params);
  assert.deepEqual(sorted.map((l) => l.name), naive.map((l) => l.name));
});

test('the grid has one track per column and scrolls sideways below the sum of their minimum widths', () => {
  const tracks = gridTemplate(COLUMNS).match(/minmax\(\d+px, [\d.]+fr\)/g) ?? [];
  assert.equal(tracks.length, COLUMNS.length);
  assert.equal(minTableWidth(COLUMNS), COLUMNS.reduce((sum, c) => sum + c.minWidth, 0));
  assert.deepEqual(COLUMNS.map((c) => c.key), ['name', 'op', 'shape', 'params', 'nonFinite', 'absMax', 'std', 'kurtosis', 'outliers', 'spread', 'w8', 'w4', 'w3', 'w4g']);
});

test('header clicks cycle ascending, descending, file order', () => {
  const first = nextSort(null, 'w4');
  assert.deepEqual(first, { key: 'w4', dir: 'asc' });
  const second = nextSort(first, 'w4');
  assert.deepEqual(second, { key: 'w4', dir: 'desc' });
  assert.equal(nextSort(second, 'w4'), null);
  assert.deepEqual(nextSort(second, 'name'), { key: 'name', dir: 'asc' });
});

test('the virtual window covers the viewport plus overscan, clamped to the rows', () => {
  assert.deepEqual(visibleWindow(0, 220, 22, 5000, 5), { start: 0, end: 15 });
  assert.deepEqual(visibleWindow(22 * 100, 220, 22, 5000, 5), { start: 95, end: 115 });
  assert.deepEqual(visibleWindow(22 * 4995, 220, 22, 5000, 5), { start: 4990, end: 5000 });
  assert.deepEqual(visibleWindow(0, 220, 22, 0), { start: 0, end: 0 });
  assert.deepEqual(visibleWindow(1e9, 220, 22, 10, 2), { start: 10, end: 10 });
  // Rows outside the window are exactly those not intersecting [scrollTop - overscan, bottom + overscan].
  for (const scrollTop of [0, 7, 500, 1234]) {
    const { start, end } = visibleWindow(scrollTop, 300, 22, 1000, 3);
    for (let i = start; i < end; i++) {
      const top = i * 22;
      assert.ok(top + 22 > scrollTop - 3 * 22 && top < scrollTop + 300 + 3 * 22);
    }
    assert.ok(start * 22 <= scrollTop && end * 22 >= scrollTop + 300);
  }
});

test('scrolling to a row moves only as far as needed', () => {
  assert.equal(scrollToRow(0, 0, 220, 22), 0);
  assert.equal(scrollToRow(5, 0, 220, 22), 0, 'already visible');
  assert.equal(scrollToRow(10, 0, 220, 22), 22, 'just below: scroll one row');
  assert.equal(scrollToRow(3, 200, 220, 22), 66, 'above: align to top');
});

test('keyboard selection moves within the current order and stops at the ends', () => {
  const names = ['a', 'b', 'c'];
  assert.equal(moveSelection(names, null, 1), 'a');
  assert.equal(moveSelection(names, null, -1), 'c');
  assert.equal(moveSelection(names, 'a', 1), 'b');
  assert.equal(moveSelection(names, 'c', 1), 'c');
  assert.equal(moveSelection(names, 'b', -10), 'a');
  assert.equal(moveSelection(names, 'gone', 1), 'a');
  assert.equal(moveSelection([], 'a', 1), null);
});

function describeTree(node: GroupNode, depth = 0): string[] {
  return node.children.flatMap((child) =>
    child.kind === 'layer'
      ? [`${'  '.repeat(depth)}#${child.index}`]
      : [`${'  '.repeat(depth)}${child.label} (${child.layerCount}, ${child.params})`, ...describeTree(child, depth + 1)],
  );
}

test('the Layers tree nests groups in file order, with counts and parameters summed', () => {
  const layers = [
    layer('patch_embed.proj', { group: ['patch_embed'], params: 10 }),
    layer('blocks.0.attn.qkv', { group: ['block 0', 'attn'], params: 100 }),
    layer('blocks.0.mlp.fc1', { group: ['block 0', 'mlp'], params: 200 }),
    layer('blocks.0.attn.proj', { group: ['block 0', 'attn'], params: 50 }),
    layer('final', { params: 5 }),
    layer('blocks.1.attn.qkv', { group: ['block 1', 'attn'], params: 100 }),
  ];
  const root = buildGroupTree(layers);
  assert.equal(root.layerCount, 6);
  assert.equal(root.params, 465);
  assert.deepEqual(describeTree(root), [
    'patch_embed (1, 10)',
    '  #0',
    'block 0 (3, 350)',
    '  attn (2, 150)',
    '    #1',
    '    #3',
    '  mlp (1, 200)',
    '    #2',
    '#4',
    'block 1 (1, 100)',
    '  attn (1, 100)',
    '    #5',
  ]);
  // Same label under different parents stays two groups; parents lead back to the root.
  const leafOf5 = [...leaves(root)].find((l) => l.index === 5)!;
  assert.deepEqual(leafOf5.parent.path, ['block 1', 'attn']);
  assert.equal(leafOf5.parent.parent?.parent, root);
  assert.deepEqual([...leaves(root)].map((l) => l.index), [0, 1, 3, 2, 4, 5]);
});

test('chart data: histogram edges evenly spaced from min to max; non-finite SQNR not plotted', () => {
  const bins = histogramBins({ min: -1, max: 3, counts: [5, 0, 7, 1] });
  assert.deepEqual(bins, [
    { lo: -1, hi: 0, count: 5 },
    { lo: 0, hi: 1, count: 0 },
    { lo: 1, hi: 2, count: 7 },
    { lo: 2, hi: 3, count: 1 },
  ]);
  const series = sqnrSeries({
    perChannel: { 2: 1, 3: 7, 4: 13, 6: 25, 8: Infinity },
    perGroup: { 2: 2, 3: null as unknown as number, 4: 14, 6: 26, 8: 38 },
    groupSize: 128,
  });
  assert.deepEqual(series.bits, [2, 3, 4, 6, 8]);
  assert.deepEqual(series.perChannel, [1, 7, 13, 25, null]);
  assert.deepEqual(series.perGroup, [2, null, 14, 26, 38]);
});

const summary: ModelSummary = {
  path: '/m/model.onnx', fileName: 'model.onnx', format: 'onnx', fileBytes: 10, inputs: [], outputs: [],
  opHistogram: {}, nodeCount: 0, tensorCount: 0, parameterCount: 0, parameterBytes: 0, layerCount: 3,
  layerParameterCount: 0, externalDataFiles: [], metadata: {}, warnings: [],
};

/** An engine stand-in driven by the test: events and the outcome are pushed by hand. */
function manualRun() {
  let emit!: (e: InspectEvent) => void;
  let finish!: (r: InspectResult) => void;
  let fail!: (err: unknown) => void;
  let signal!: AbortSignal;
  const run = (onEvent: (e: InspectEvent) => void, s: AbortSignal) =>
    new Promise<InspectResult>((resolve, reject) => {
      emit = onEvent;
      finish = resolve;
      fail = reject;
      signal = s;
    });
  return { run, emit: (e: InspectEvent) => emit(e), finish: (r: InspectResult) => finish(r), fail: (e: unknown) => fail(e), signal: () => signal };
}

test('an inspection accumulates the stream and replays it to late subscribers', async () => {
  const engine = manualRun();
  const inspection = new Inspection('/m/model.onnx', engine.run);
  const early: InspectionUpdate[] = [];
  inspection.subscribe((u) => early.push(u));
  engine.emit({ kind: 'summary', summary });
  engine.emit({ kind: 'layers', layers: [layer('a'), layer('b')] });
  engine.emit({ kind: 'progress', done: 2, total: 3 });
  engine.emit({ kind: 'layers', layers: [layer('c')] });
  engine.emit({ kind: 'progress', done: 3, total: 3 });
  assert.equal(inspection.running, true);
  engine.finish({ summary, layerCount: 3, elapsedMs: 5 });
  await inspection.finished;
  assert.equal(inspection.running, false);
  assert.deepEqual(inspection.layers.map((l) => l.name), ['a', 'b', 'c']);
  assert.deepEqual(early.map((u) => u.kind), ['summary', 'layers', 'progress', 'layers', 'progress', 'done']);

  const late: InspectionUpdate[] = [];
  inspection.subscribe((u) => late.push(u), true, 2);
  assert.deepEqual(late.map((u) => u.kind), ['summary', 'layers', 'layers', 'progress', 'done']);
  const replayed = late.flatMap((u) => (u.kind === 'layers' ? u.layers.map((l) => l.name) : []));
  assert.deepEqual(replayed, ['a', 'b', 'c']);

  const quiet: InspectionUpdate[] = [];
  inspection.subscribe((u) => quiet.push(u), false);
  assert.equal(quiet.length, 0);
});

test('a failed inspection keeps its partial layers and reports the engine error code', async () => {
  const engine = manualRun();
  const inspection = new Inspection('/m/model.onnx', engine.run);
  engine.emit({ kind: 'summary', summary });
  engine.emit({ kind: 'layers', layers: [layer('a')] });
  engine.fail(Object.assign(new Error('model.onnx: truncated tensor data'), { code: 'bad-input' }));
  await inspection.finished;
  assert.deepEqual(inspection.failure, { code: 'bad-input', message: 'model.onnx: truncated tensor data' });
  assert.equal(inspection.layers.length, 1);
  const seen: InspectionUpdate[] = [];
  inspection.subscribe((u) => seen.push(u));
  assert.deepEqual(seen.map((u) => u.kind), ['summary', 'layers', 'failed']);
  assert.equal(describeFailure(inspection.failure!, 'model.onnx'), 'model.onnx: truncated tensor data');
});

test('cancel aborts the engine request; events after the end are ignored', async () => {
  const engine = manualRun();
  const inspection = new Inspection('/m/model.onnx', engine.run);
  assert.equal(engine.signal().aborted, false);
  inspection.cancel();
  assert.equal(engine.signal().aborted, true);
  assert.equal(inspection.cancelRequested, true);
  engine.fail(Object.assign(new Error('cancelled'), { code: 'cancelled' }));
  await inspection.finished;
  engine.emit({ kind: 'layers', layers: [layer('late')] });
  assert.equal(inspection.layers.length, 0);
  assert.match(describeFailure(inspection.failure!, 'model.onnx'), /model\.onnx was cancelled/);
});

test('unknown errors become internal; Inspection.failed fails at once', async () => {
  assert.deepEqual(toFailure(new TypeError('boom')), { code: 'internal', message: 'boom' });
  assert.deepEqual(toFailure(Object.assign(new Error('x'), { code: 'ENOENT' })), { code: 'internal', message: 'x' });
  assert.deepEqual(toFailure('plain'), { code: 'internal', message: 'plain' });
  const failed = Inspection.failed('/m/x.onnx', { code: 'bad-input', message: 'x.onnx: cannot read the file (ENOENT)' });
  await failed.finished;
  assert.deepEqual(failed.failure, { code: 'bad-input', message: 'x.onnx: cannot read the file (ENOENT)' });
  assert.match(describeFailure({ code: 'engine-crashed', message: 'The engine stopped.' }, 'x.onnx'), /^x\.onnx: The engine stopped\. Reopen/);
  assert.match(describeFailure({ code: 'internal', message: 'oops' }, 'x.onnx'), /internal error: oops/);
});

test('the webview HTML has a strict CSP: scripts only by nonce, no inline styles, escaped attributes', () => {
  const nonce = makeNonce();
  assert.notEqual(nonce, makeNonce());
  const csp = contentSecurityPolicy('https://webview.test', nonce);
  assert.match(csp, /^default-src 'none'; /);
  assert.match(csp, new RegExp(`script-src 'nonce-${nonce.replace(/[+/=]/g, '\\$&')}'`));
  assert.match(csp, /style-src https:\/\/webview\.test(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);

  const html = webviewHtml({
    title: 'QuantLens <Inspector>',
    cspSource: 'https://webview.test',
    nonce,
    scriptUri: 'https://webview.test/dist/webview/inspector.js?a=1&b="2"',
    styleUris: ['https://webview.test/webview/inspector/inspector.css'],
    codiconsUri: 'https://webview.test/codicon.css',
  });
  const scripts = [...html.matchAll(/<script\b([^>]*)>/g)].map((m) => m[1]);
  assert.equal(scripts.length, 1);
  assert.ok(scripts[0].includes(`nonce="${nonce}"`));
  assert.ok(scripts[0].includes('inspector.js?a=1&#38;b=&#34;2&#34;'));
  assert.doesNotMatch(html, /<style|style="/);
  assert.ok(html.includes('<title>QuantLens &#60;Inspector&#62;</title>'));
  assert.equal(escapeHtml(`<img src=x onerror="a('b')">&`), '&#60;img src=x onerror=&#34;a(&#39;b&#39;)&#34;&#62;&#38;');
});
