// The fake quantizer against the plain reference quantizer, its grid, its rounding, and its agreement with the SQNR
// that weight statistics report (the two must describe one quantizer).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { QUANT_BITS, QUANT_GROUP_SIZE } from '../../extension/protocol/records';
import {
  SQNR_CAP_DB,
  channelLayout,
  quantLevels,
  quantizeWeight,
  sqnrDb,
  type Granularity,
} from '../../extension/engine/quant/weightQuant';
import { computeWeightStats } from '../../extension/engine/quant/weightStats';
import { channelsOf, gaussian, naiveQuantizeChannels, naiveSqnrDb, seededRandom } from './naiveWeightStats';

const ALL_BITS = [2, 3, 4, 5, 6, 7, 8];
const cases = [
  { what: 'Linear [24, 200], axis 0', shape: [24, 200], channelAxis: 0 },
  { what: 'MatMul [200, 24], axis 1', shape: [200, 24], channelAxis: 1 },
  { what: 'conv [16, 8, 3, 3], axis 0', shape: [16, 8, 3, 3], channelAxis: 0 },
  { what: 'ConvTranspose [8, 16, 3, 3], axis 1', shape: [8, 16, 3, 3], channelAxis: 1 },
];
const granularities: { name: string; granularity: Granularity; groupSize: number | null }[] = [
  { name: 'per channel', granularity: { kind: 'channel' }, groupSize: null },
  { name: 'per group of 128', granularity: { kind: 'group', size: QUANT_GROUP_SIZE }, groupSize: QUANT_GROUP_SIZE },
  { name: 'per group of 5', granularity: { kind: 'group', size: 5 }, groupSize: 5 },
];

function withOutliers(count: number, seed: number): Float32Array {
  const data = gaussian(count, seed, 0.1);
  const random = seededRandom(seed);
  for (let i = 0; i < count; i++) if (random() < 0.01) data[i] *= 15;
  return data;
}

test('channelLayout splits a shape around its channel axis', () => {
  assert.deepEqual(channelLayout([8, 4, 3, 3], 0, 288), { outer: 1, channels: 8, inner: 36, inputs: 36 });
  assert.deepEqual(channelLayout([4, 8, 3, 3], 1, 288), { outer: 4, channels: 8, inner: 9, inputs: 36 });
  assert.deepEqual(channelLayout([64, 32], 1, 2048), { outer: 64, channels: 32, inner: 1, inputs: 64 });
  assert.deepEqual(channelLayout([10], 0, 10), { outer: 1, channels: 1, inner: 10, inputs: 10 });
  assert.deepEqual(channelLayout([], 0, 1), { outer: 1, channels: 1, inner: 1, inputs: 1 });
  assert.throws(() => channelLayout([2, 3], 0, 5), RangeError);
  assert.throws(() => channelLayout([2, 3], -1, 6), RangeError);
  assert.throws(() => channelLayout([2, 1.5], 0, 3), RangeError);
});

test('quantLevels is 2^(b−1) − 1 and refuses nonsense', () => {
  assert.deepEqual(ALL_BITS.map(quantLevels), [1, 3, 7, 15, 31, 63, 127]);
  assert.throws(() => quantLevels(1), RangeError);
  assert.throws(() => quantLevels(4.5), RangeError);
});

for (const { what, shape, channelAxis } of cases) {
  test(`quantizeWeight equals the reference quantizer and lies on its grid: ${what}`, () => {
    const data = withOutliers(shape.reduce((a, b) => a * b, 1), shape[0] + shape[1]);
    const channels = channelsOf(data, shape, channelAxis);
    for (const { name, granularity, groupSize } of granularities) {
      for (const bits of ALL_BITS) {
        const levels = quantLevels(bits);
        const quantized = quantizeWeight(data, shape, channelAxis, bits, granularity);
        const expected = naiveQuantizeChannels(channels, bits, groupSize);
        const actual = channelsOf(quantized, shape, channelAxis);
        const label = `${name}, ${bits} bits`;
        for (let c = 0; c < channels.length; c++) {
          const size = groupSize ?? channels[c].length;
          for (let start = 0; start < channels[c].length; start += size) {
            const group = channels[c].slice(start, start + size);
            const scale = Math.max(...group.map(Math.abs)) / levels;
            const steps = new Set<number>();
            for (let i = start; i < start + group.length; i++) {
              assert.equal(actual[c][i], Math.fround(expected[c][i]), `${label}: channel ${c} element ${i}`);
              const q = actual[c][i] / scale;
              assert.ok(Math.abs(q - Math.round(q)) < 1e-4 && Math.abs(q) <= levels + 1e-4, `${label}: ${q} is off the grid`);
              steps.add(Math.round(q));
            }
            assert.ok(steps.size <= 2 * levels + 1, `${label}: ${steps.size} levels`);
          }
        }
      }
    }
  });

  test(`SQNR of quantizeWeight agrees with the reference and with computeWeightStats: ${what}`, () => {
    const data = withOutliers(shape.reduce((a, b) => a * b, 1), 99);
    const stats = computeWeightStats(data, shape, channelAxis);
    const channels = channelsOf(data, shape, channelAxis);
    for (const bits of ALL_BITS) {
      for (const { granularity, groupSize } of granularities) {
        const reference = naiveSqnrDb(channels.flat(), naiveQuantizeChannels(channels, bits, groupSize).flat());
        const measured = sqnrDb(data, quantizeWeight(data, shape, channelAxis, bits, granularity));
        // The fake-quantized copy is float32: its rounding sits ~140 dB down, far below any quantizer's error.
        assert.ok(Math.abs(measured - reference) < 1e-4, `${bits} bits ${granularity.kind}: ${measured} vs ${reference}`);
      }
    }
    for (const bits of QUANT_BITS) {
      const perChannel = sqnrDb(data, quantizeWeight(data, shape, channelAxis, bits, { kind: 'channel' }));
      const perGroup = sqnrDb(data, quantizeWeight(data, shape, channelAxis, bits, { kind: 'group', size: QUANT_GROUP_SIZE }));
      assert.ok(Math.abs(stats.quantError.perChannel[bits] - perChannel) < 1e-4, `stats vs quantizeWeight, channel, ${bits} bits`);
      assert.ok(Math.abs(stats.quantError.perGroup[bits] - perGroup) < 1e-4, `stats vs quantizeWeight, group, ${bits} bits`);
    }
  });
}

test('more bits give higher SQNR; per-group is at least per-channel on data with outliers', () => {
  const shape = [32, 1024];
  const data = withOutliers(32 * 1024, 5);
  let previousChannel = -Infinity;
  let previousGroup = -Infinity;
  for (const bits of ALL_BITS) {
    const channel = sqnrDb(data, quantizeWeight(data, shape, 0, bits, { kind: 'channel' }));
    const group = sqnrDb(data, quantizeWeight(data, shape, 0, bits, { kind: 'group', size: 128 }));
    assert.ok(channel > previousChannel && group > previousGroup, `${bits} bits`);
    assert.ok(group >= channel, `${bits} bits: group ${group} < channel ${channel}`);
    previousChannel = channel;
    previousGroup = group;
  }
});

test('rounding is half to even, symmetric, and zero blocks stay zero', () => {
  // 2 bits, absmax 1: the grid is {−1, 0, 1}; ±0.5 are ties that go to the even 0.
  const quantized = quantizeWeight(Float32Array.from([1, 0.5, -0.5, 0.75, -0.75, 0.25]), [6], 0, 2, { kind: 'channel' });
  assert.deepEqual(Array.from(quantized, (v) => v + 0), [1, 0, 0, 1, -1, 0]);
  // 3 bits, absmax 3 → scale 1: 1.5 → 2 and 2.5 → 2 (even), −1.5 → −2.
  const three = quantizeWeight(Float32Array.from([3, 1.5, 2.5, -1.5, -2.5]), [5], 0, 3, { kind: 'channel' });
  assert.deepEqual(Array.from(three), [3, 2, 2, -2, -2]);
  const zeros = quantizeWeight(new Float32Array(8), [2, 4], 0, 4, { kind: 'group', size: 2 });
  assert.deepEqual(Array.from(zeros), new Array(8).fill(0));
});

test('sqnrDb: a known value, the cap for an exact copy, and mismatched lengths', () => {
  assert.ok(Math.abs(sqnrDb([1, 1], [1.1, 0.9]) - 20) < 1e-9);
  assert.equal(sqnrDb([1, 2, 3], [1, 2, 3]), SQNR_CAP_DB);
  assert.equal(sqnrDb([0, 0], [0, 0]), SQNR_CAP_DB);
  assert.throws(() => sqnrDb([1], [1, 2]), RangeError);
});

test('bad granularities are refused', () => {
  const data = new Float32Array(8);
  assert.throws(() => quantizeWeight(data, [2, 4], 0, 4, { kind: 'group', size: 0 }), RangeError);
  assert.throws(() => quantizeWeight(data, [2, 4], 0, 1, { kind: 'channel' }), RangeError);
});
