// The inspector table with layers that hold NaN or infinite weights: the NaN/Inf column sorts and shows the count,
// the filter finds them, and statistics of a layer without a finite weight read as missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LayerRecord } from '../../extension/protocol/records';
import { computeWeightStats } from '../../extension/engine/quant/weightStats';
import {
  COLUMNS, NON_FINITE_FILTER_WORD, columnByKey, filterLayers, hasFiniteWeights, shownColumns, sortLayers,
} from '../../webview/inspector/tableModel';
import { gaussian } from './naiveWeightStats';

/** A layer whose statistics the engine computed from `data`. */
function layer(name: string, data: Float32Array): LayerRecord {
  const shape = [4, data.length / 4];
  return {
    name, opType: 'MatMul', weight: name, shape, dtype: 'F32', params: data.length, channelAxis: 1, group: [],
    stats: computeWeightStats(data, shape, 1),
  };
}

const clean = layer('blocks.0.attn.qkv', gaussian(64, 1));
const someNaN = (() => {
  const data = gaussian(64, 2);
  data.fill(NaN, 0, 3);
  return layer('blocks.1.attn.qkv', data);
})();
const allInf = layer('blocks.2.attn.qkv', new Float32Array(64).fill(Infinity));
const layers = [clean, someNaN, allInf];

test('the NaN/Inf column shows the count and sorts the flagged layers first when descending', () => {
  const column = columnByKey('nonFinite')!;
  assert.ok(column.numeric);
  assert.deepEqual(layers.map((l) => column.text(l)), ['0', '3', '64']);
  assert.deepEqual(sortLayers(layers, { key: 'nonFinite', dir: 'desc' }).map((l) => l.name), [allInf.name, someNaN.name, clean.name]);
  // It sits among the facts, before the statistics it qualifies, and outside the SQNR caption.
  const keys = COLUMNS.map((c) => c.key);
  assert.equal(keys.indexOf('nonFinite'), keys.indexOf('params') + 1);
  assert.equal(column.group, undefined);
});

test('the NaN/Inf column is on show only while some layer of the model has non-finite weights', () => {
  const without = shownColumns([clean]).map((c) => c.key);
  assert.deepEqual(without, COLUMNS.map((c) => c.key).filter((key) => key !== 'nonFinite'));
  assert.deepEqual(shownColumns([clean, allInf]), [...COLUMNS]);
  assert.deepEqual(shownColumns([]).map((c) => c.key), without);
});

test('the filter word lists the layers with non-finite weights, alone or with other terms', () => {
  assert.deepEqual(filterLayers(layers, NON_FINITE_FILTER_WORD).map((l) => l.name), [someNaN.name, allInf.name]);
  assert.deepEqual(filterLayers(layers, `NON-FINITE blocks.1`).map((l) => l.name), [someNaN.name]);
  assert.deepEqual(filterLayers(layers, 'attn').length, 3);
});

test('a layer without one finite weight shows missing statistics, sorted last either way; others keep theirs', () => {
  assert.deepEqual(layers.map(hasFiniteWeights), [true, true, false]);
  for (const key of ['absMax', 'std', 'kurtosis', 'outliers', 'spread', 'w8', 'w4', 'w3', 'w4g'] as const) {
    const column = columnByKey(key)!;
    assert.equal(column.value(allInf), null, key);
    assert.equal(column.text(allInf), '—', key);
    assert.equal(typeof column.value(someNaN), 'number', key);
    for (const dir of ['asc', 'desc'] as const) assert.equal(sortLayers(layers, { key, dir }).at(-1), allInf, `${key} ${dir}`);
  }
  assert.equal(columnByKey('absMax')!.value(someNaN), someNaN.stats.absMax);
});
