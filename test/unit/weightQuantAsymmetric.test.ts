// The asymmetric (zero-point) weight quantizer against a plain float64 reference written here: codes, scales, zero
// points and dequantized weights, on shifted distributions (where it must beat the symmetric quantizer) and on the
// blocks that need care (constant, all-negative, one element, a short last group).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { asymmetricLevels, quantizeWeight, sqnrDb, weightCodes, type Granularity } from '../../extension/engine/quant/weightQuant';
import { roundHalfEven } from './naiveQuant';
import { channelsOf, gaussian } from './naiveWeightStats';

const BITS = [2, 3, 4, 5, 6, 8, 12, 16];

interface NaiveBlock {
  scale: number;
  zeroPoint: number;
  codes: number[];
  dequantized: number[];
}

/** QLLM-Eval's asymmetric RTN, element by element in float64: L = 2^b − 1, s = (max − min)/L, z = clamp(round(−min/s)). */
function naiveAsymmetricBlock(values: number[], bits: number): NaiveBlock {
  const top = 2 ** bits - 1;
  let min = values[0];
  let max = values[0];
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  let scale: number;
  if (max > min) scale = (max - min) / top;
  else scale = max === 0 ? 1 : Math.abs(max) / top;
  const clamp = (q: number) => Math.min(top, Math.max(0, q));
  const zeroPoint = clamp(roundHalfEven(-min / scale));
  const codes = values.map((w) => clamp(roundHalfEven(w / scale) + zeroPoint));
  return { scale, zeroPoint, codes, dequantized: codes.map((q) => (q - zeroPoint) * scale) };
}

/** Per channel, its blocks (a whole channel, or groups of `groupSize` with a short last one). */
function naiveAsymmetric(data: ArrayLike<number>, shape: number[], channelAxis: number, bits: number, groupSize: number | null): NaiveBlock[][] {
  return channelsOf(data, shape, channelAxis).map((values) => {
    const size = groupSize ?? values.length;
    const blocks: NaiveBlock[] = [];
    for (let start = 0; start < values.length; start += size) blocks.push(naiveAsymmetricBlock(values.slice(start, start + size), bits));
    return blocks;
  });
}

function toGranularity(groupSize: number | null): Granularity {
  return groupSize === null ? { kind: 'channel' } : { kind: 'group', size: groupSize };
}

/** Checks quantizeWeight and weightCodes (asymmetric) against the reference, element by element. */
function assertMatchesReference(data: Float32Array, shape: number[], channelAxis: number, bits: number, groupSize: number | null, label: string): void {
  const granularity = toGranularity(groupSize);
  const expected = naiveAsymmetric(data, shape, channelAxis, bits, groupSize);
  const codes = weightCodes(data, shape, channelAxis, bits, granularity, false);
  const quantized = quantizeWeight(data, shape, channelAxis, bits, granularity, false);
  assert.equal(codes.symmetric, false);
  assert.equal(codes.blocksPerChannel, expected[0].length, `${label}: blocks per channel`);
  const actualCodes = channelsOf(codes.codes, shape, channelAxis);
  const actualWeights = channelsOf(quantized, shape, channelAxis);
  const top = asymmetricLevels(bits);
  expected.forEach((blocks, channel) => {
    let element = 0;
    blocks.forEach((block, b) => {
      const slot = channel * codes.blocksPerChannel + b;
      assert.equal(codes.scales[slot], block.scale, `${label}: scale of channel ${channel} block ${b}`);
      assert.equal(codes.zeroPoints[slot], block.zeroPoint, `${label}: zero point of channel ${channel} block ${b}`);
      assert.ok(block.scale > 0 && block.zeroPoint >= 0 && block.zeroPoint <= top);
      block.codes.forEach((q, i) => {
        assert.equal(actualCodes[channel][element], q, `${label}: code of channel ${channel} element ${element}`);
        assert.equal(actualWeights[channel][element], Math.fround(block.dequantized[i]), `${label}: weight of channel ${channel} element ${element}`);
        element++;
      });
    });
  });
}

const cases = [
  { what: 'Linear [24, 200], axis 0', shape: [24, 200], channelAxis: 0 },
  { what: 'MatMul [200, 24], axis 1', shape: [200, 24], channelAxis: 1 },
  { what: 'ConvTranspose [8, 16, 3, 3], axis 1', shape: [8, 16, 3, 3], channelAxis: 1 },
];

for (const { what, shape, channelAxis } of cases) {
  test(`asymmetric codes, scales, zero points and weights equal the float64 reference: ${what}`, () => {
    const count = shape.reduce((a, b) => a * b, 1);
    // Shifted (no zero inside most blocks: the zero point clamps and values clip) and straddling zero.
    const shifted = gaussian(count, 11, 0.1).map((w) => w + 0.5);
    const straddling = gaussian(count, 12, 0.2).map((w) => w + 0.1);
    for (const [name, data] of [['N(0.5, 0.1)', shifted], ['N(0.1, 0.2)', straddling]] as const) {
      for (const groupSize of [null, 128, 7]) {
        for (const bits of BITS) assertMatchesReference(data, shape, channelAxis, bits, groupSize, `${name}, group ${groupSize ?? 'channel'}, ${bits} bits`);
      }
    }
  });
}

test('at 4 bits asymmetric beats symmetric on shifted weights whose blocks reach zero', () => {
  const shape = [64, 512];
  for (const mean of [0.05, 0.15, 0.3]) {
    const data = gaussian(64 * 512, 3, 0.1).map((w) => w + mean);
    for (const granularity of [{ kind: 'channel' }, { kind: 'group', size: 128 }] as Granularity[]) {
      const symmetric = sqnrDb(data, quantizeWeight(data, shape, 0, 4, granularity));
      const asymmetric = sqnrDb(data, quantizeWeight(data, shape, 0, 4, granularity, false));
      // Measured: 1.9 to 6.5 dB better.
      assert.ok(asymmetric > symmetric + 1.5, `N(${mean}, 0.1), ${granularity.kind}: asymmetric ${asymmetric.toFixed(2)} dB vs symmetric ${symmetric.toFixed(2)} dB`);
    }
  }
});

test('a block whose range excludes zero clips: the zero point clamps to 0, as in QLLM-Eval', () => {
  // N(0.5, 0.1) in groups of 128: min ≈ 0.25, so −min/s ≈ −7 clamps to z = 0 and everything above 15·s ≈ 0.5 clips
  // to it. Symmetric keeps the whole range; asymmetric loses about 7 dB here (per channel the two are about even).
  const shape = [64, 512];
  const data = gaussian(64 * 512, 3, 0.1).map((w) => w + 0.5);
  const granularity: Granularity = { kind: 'group', size: 128 };
  const codes = weightCodes(data, shape, 0, 4, granularity, false);
  assert.ok(codes.zeroPoints.every((z) => z === 0));
  const symmetric = sqnrDb(data, quantizeWeight(data, shape, 0, 4, granularity));
  const asymmetric = sqnrDb(data, quantizeWeight(data, shape, 0, 4, granularity, false));
  assert.ok(asymmetric < symmetric - 3, `asymmetric ${asymmetric.toFixed(2)} dB vs symmetric ${symmetric.toFixed(2)} dB`);
  assertMatchesReference(data, shape, 0, 4, 128, 'N(0.5, 0.1), groups of 128');
});

test('edge blocks: constant, all-zero, all-negative, one element, a short last group', () => {
  // Constant blocks are reproduced exactly: z = 0, q = L for c > 0; z = L, q = 0 for c < 0; all zero: s = 1, z = 0.
  const constant = Float32Array.from([0.3, 0.3, 0.3, -1.7, -1.7, -1.7, 0, 0, 0]);
  for (const bits of [2, 4, 8]) {
    const top = asymmetricLevels(bits);
    const codes = weightCodes(constant, [3, 3], 0, bits, { kind: 'channel' }, false);
    assert.deepEqual(Array.from(codes.zeroPoints), [0, top, 0]);
    assert.deepEqual(Array.from(codes.codes), [top, top, top, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(codes.scales), [Math.fround(0.3) / top, Math.fround(1.7) / top, 1]);
    assert.deepEqual(quantizeWeight(constant, [3, 3], 0, bits, { kind: 'channel' }, false), constant);
    assertMatchesReference(constant, [3, 3], 0, bits, null, `constant, ${bits} bits`);
  }

  // All negative, range [−0.8, −0.2] at 2 bits: s = 0.2, −min/s = 4 clamps to z = L = 3, so values below −0.6 clip.
  const negative = Float32Array.from([-0.8, -0.6, -0.4, -0.2]);
  const negCodes = weightCodes(negative, [4], 0, 2, { kind: 'channel' }, false);
  assert.equal(negCodes.zeroPoints[0], 3);
  assert.deepEqual(Array.from(negCodes.codes), [0, 0, 1, 2]);
  assertMatchesReference(negative, [4], 0, 2, null, 'all negative');
  const wide = gaussian(40, 21, 0.1).map((w) => w - 1);
  for (const bits of [3, 4, 8]) assertMatchesReference(wide, [4, 10], 0, bits, 4, `all negative, ${bits} bits`);

  // One element per block (a single weight, or groups of one): exact.
  const single = Float32Array.from([-0.37]);
  assert.deepEqual(quantizeWeight(single, [1], 0, 4, { kind: 'channel' }, false), single);
  const values = gaussian(12, 22, 1);
  assert.deepEqual(quantizeWeight(values, [3, 4], 0, 3, { kind: 'group', size: 1 }, false), values);

  // Groups of 4 over 10 inputs: two full groups and a tail of 2, each with its own scale and zero point.
  const tail = gaussian(30, 23, 0.3).map((w) => w + 0.2);
  const tailCodes = weightCodes(tail, [3, 10], 0, 4, { kind: 'group', size: 4 }, false);
  assert.equal(tailCodes.blocksPerChannel, 3);
  for (const bits of [2, 4, 8]) assertMatchesReference(tail, [3, 10], 0, bits, 4, `group tail, ${bits} bits`);
  const last = Array.from(tail.slice(8, 10));
  assert.equal(tailCodes.scales[2], (Math.max(...last) - Math.min(...last)) / 15);
});

test('codes lie on 0…2^b − 1, and the symmetric quantizer reports zero points 0', () => {
  const data = gaussian(16 * 64, 31, 1).map((w) => w * w);
  for (const bits of [2, 4, 8]) {
    const codes = weightCodes(data, [16, 64], 0, bits, { kind: 'group', size: 16 }, false);
    assert.ok(codes.codes.every((q) => q >= 0 && q <= asymmetricLevels(bits)), `${bits} bits`);
    const symmetric = weightCodes(data, [16, 64], 0, bits, { kind: 'group', size: 16 });
    assert.equal(symmetric.symmetric, true);
    assert.ok(symmetric.zeroPoints.every((z) => z === 0));
    assert.equal(symmetric.zeroPoints.length, symmetric.scales.length);
  }
  assert.throws(() => weightCodes(data, [16, 64], 0, 1, { kind: 'channel' }, false), RangeError);
});
