// computeWeightStats against the plain float64 reference in naiveWeightStats.ts, on every layout the kernels treat
// differently: channel runs (axis 0), stored rows (innermost axis), conv and transposed-conv weights, rank 1, odd sizes
// that leave SIMD tails, and tensors larger than one copy window.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { QUANT_BITS, QUANT_GROUP_SIZE } from '../../extension/protocol/records';
import { CHANNEL_SPREAD_CAP, computeWeightStats } from '../../extension/engine/quant/weightStats';
import { SQNR_CAP_DB } from '../../extension/engine/quant/weightQuant';
import { channelsOf, gaussian, naiveChannelAbsMax, naiveMoments, naiveQuantSqnr, seededRandom } from './naiveWeightStats';
import { checkAgainstNaive, close, weightLike } from './weightStatsCheck';

const layouts: { what: string; shape: number[]; channelAxis: number; channels: number }[] = [
  { what: 'Gemm/Linear [out, in], in not a multiple of the group', shape: [48, 300], channelAxis: 0, channels: 48 },
  { what: 'MatMul [K, N] with channels innermost', shape: [300, 96], channelAxis: 1, channels: 96 },
  { what: 'odd MatMul [13, 7]: SIMD tails on every row', shape: [13, 7], channelAxis: 1, channels: 7 },
  { what: 'odd Linear [7, 13]', shape: [7, 13], channelAxis: 0, channels: 7 },
  { what: '4-D conv [32, 16, 3, 3]', shape: [32, 16, 3, 3], channelAxis: 0, channels: 32 },
  { what: 'ConvTranspose [16, 24, 3, 3]: groups span runs of 9', shape: [16, 24, 3, 3], channelAxis: 1, channels: 24 },
  { what: 'rank 1', shape: [1001], channelAxis: 0, channels: 1 },
  { what: 'channels of 70,001 (more than one copy window) on axis 0', shape: [2, 70001], channelAxis: 0, channels: 2 },
  { what: 'rows of 70,001 (more than one copy window)', shape: [3, 70001], channelAxis: 1, channels: 70001 },
  { what: 'middle axis with long runs [3, 2, 50000]', shape: [3, 2, 50000], channelAxis: 1, channels: 2 },
];

for (const { what, shape, channelAxis, channels } of layouts) {
  test(`statistics match the float64 reference: ${what}`, () => {
    const data = weightLike(shape, channelAxis, shape.reduce((a, b) => a + b, 7));
    const stats = computeWeightStats(data, shape, channelAxis);
    assert.equal(stats.channels, channels);
    checkAgainstNaive(stats, data, shape, channelAxis);
  });
}

test('kurtosis of an evenly spaced sample is the discrete uniform value −6(n²+1)/(5(n²−1))', () => {
  const n = 4096;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = i - n / 2;
  const stats = computeWeightStats(data, [64, 64], 0);
  close(stats.kurtosis, (-6 * (n * n + 1)) / (5 * (n * n - 1)), 1e-12, 'kurtosis');
  close(stats.mean, -0.5, 1e-15, 'mean');
  close(stats.std, Math.sqrt((n * n - 1) / 12), 1e-12, 'std');
});

test('kurtosis of Gaussian data is near 0 and of Laplace data near 3', () => {
  const normal = computeWeightStats(gaussian(200000, 3), [200000], 0);
  assert.ok(Math.abs(normal.kurtosis) < 0.1, `Gaussian kurtosis ${normal.kurtosis}`);
  const random = seededRandom(9);
  const laplace = Float32Array.from({ length: 200000 }, () => {
    const u = random() - 0.5;
    return -Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
  });
  const stats = computeWeightStats(laplace, [200000], 0);
  assert.ok(Math.abs(stats.kurtosis - 3) < 0.3, `Laplace kurtosis ${stats.kurtosis}`);
});

test('histogram bins are [min + i·w, min + (i+1)·w) with the last bin closed', () => {
  const values = Float32Array.from([0, 0.999, 1, 1.5, 2, 5.25, 7.99, 8]);
  const stats = computeWeightStats(values, [8], 0, { histogramBins: 8 });
  assert.deepEqual(stats.histogram, { min: 0, max: 8, counts: [2, 2, 1, 0, 0, 1, 0, 2] });

  const signed = Float32Array.from([-4, -2.5, -2, 0, 1.75, 2, 4, 3.5, -1]);
  const four = computeWeightStats(signed, [3, 3], 1, { histogramBins: 4 });
  assert.deepEqual(four.histogram, { min: -4, max: 4, counts: [2, 2, 2, 3] });
});

test('outlier share counts exactly the planted outliers', () => {
  const data = gaussian(10000, 11);
  const planted = [17, 503, 2048, 7777, 9999];
  for (const [i, index] of planted.entries()) data[index] = i % 2 === 0 ? 60 : -60;
  const stats = computeWeightStats(data, [100, 100], 0);
  assert.equal(stats.outlierSigma, 6);
  assert.equal(stats.outlierShare, planted.length / data.length);
  // A threshold of 1σ catches ordinary values too: the share follows the option.
  const loose = computeWeightStats(data, [100, 100], 0, { outlierSigma: 1 });
  const naive = naiveMoments(data);
  const expected = Array.from(data).filter((w) => Math.abs(w - naive.mean) > naive.std).length / data.length;
  assert.equal(loose.outlierSigma, 1);
  assert.equal(loose.outlierShare, expected);
});

test('channel spread finds a planted outlier channel on either axis', () => {
  const base = gaussian(64 * 32, 5);
  const rowsFirst = base.slice();
  for (let k = 0; k < 32; k++) rowsFirst[5 * 32 + k] *= 40; // [64 out, 32 in], channel 5
  const byOut = computeWeightStats(rowsFirst, [64, 32], 0);
  const columns = base.slice();
  for (let k = 0; k < 64; k++) columns[k * 32 + 9] *= 40; // [64 K, 32 N], channel 9
  const byColumn = computeWeightStats(columns, [64, 32], 1);
  for (const [stats, data, axis] of [[byOut, rowsFirst, 0], [byColumn, columns, 1]] as const) {
    const naive = naiveChannelAbsMax(data, [64, 32], axis);
    assert.deepEqual(stats.channelAbsMax, naive);
    assert.equal(stats.channelSpread, naive.max / naive.median);
    assert.ok(stats.channelSpread > 20, `spread ${stats.channelSpread}`);
  }
  assert.equal(byColumn.channels, 32);
  // Without the planted channel the spread is modest.
  assert.ok(computeWeightStats(base, [64, 32], 0).channelSpread < 2);
});

test('SQNR rises with bits, and per-group beats per-channel on data with outliers', () => {
  const data = weightLike([64, 512], 0, 21);
  const stats = computeWeightStats(data, [64, 512], 0);
  for (let i = 1; i < QUANT_BITS.length; i++) {
    const [lower, higher] = [QUANT_BITS[i - 1], QUANT_BITS[i]];
    assert.ok(stats.quantError.perChannel[higher] > stats.quantError.perChannel[lower], `per-channel ${lower}→${higher} bits`);
    assert.ok(stats.quantError.perGroup[higher] > stats.quantError.perGroup[lower], `per-group ${lower}→${higher} bits`);
  }
  for (const bits of QUANT_BITS) {
    assert.ok(stats.quantError.perGroup[bits] >= stats.quantError.perChannel[bits], `group vs channel at ${bits} bits`);
  }
  assert.equal(stats.quantError.groupSize, QUANT_GROUP_SIZE);
});

test('8-bit SQNR on Gaussian weights matches the uniform-noise model 10·log10(12·σ²·127² / mean absmax²)', () => {
  const data = gaussian(64 * 512, 8, 0.02);
  const stats = computeWeightStats(data, [64, 512], 0);
  const absMax = channelsOf(data, [64, 512], 0).map((values) => Math.max(...values.map(Math.abs)));
  const meanAbsMaxSq = absMax.reduce((sum, a) => sum + a * a, 0) / absMax.length;
  const model = 10 * Math.log10((12 * stats.std ** 2 * 127 ** 2) / meanAbsMaxSq);
  assert.ok(Math.abs(stats.quantError.perChannel[8] - model) < 0.3, `${stats.quantError.perChannel[8]} dB vs model ${model} dB`);
});

function assertAllFinite(value: unknown, path = 'stats'): void {
  if (typeof value === 'number') assert.ok(Number.isFinite(value), `${path} is ${value}`);
  else if (value && typeof value === 'object') for (const [key, inner] of Object.entries(value)) assertAllFinite(inner, `${path}.${key}`);
}

test('constant, all-zero and zero-channel tensors give finite numbers', () => {
  const constant = computeWeightStats(new Float32Array(300).fill(0.75), [3, 100], 0);
  assertAllFinite(constant);
  assert.equal(constant.mean, 0.75);
  assert.equal(constant.std, 0);
  assert.equal(constant.kurtosis, 0);
  assert.equal(constant.outlierShare, 0);
  assert.equal(constant.channelSpread, 1);
  assert.equal(constant.histogram.counts[0], 300);
  for (const bits of QUANT_BITS) assert.equal(constant.quantError.perChannel[bits], SQNR_CAP_DB);

  const zeros = computeWeightStats(new Float32Array(256), [16, 16], 1);
  assertAllFinite(zeros);
  assert.equal(zeros.absMax, 0);
  assert.equal(zeros.quantError.perGroup[2], SQNR_CAP_DB);

  const halfZero = gaussian(64, 2);
  halfZero.fill(0, 0, 40); // channels 0–4 of [8, 8] are all zero: the median channel is zero
  const stats = computeWeightStats(halfZero, [8, 8], 0);
  assertAllFinite(stats);
  assert.equal(stats.channelAbsMax.median, 0);
  assert.equal(stats.channelSpread, CHANNEL_SPREAD_CAP);
  for (const bits of QUANT_BITS) {
    close(stats.quantError.perChannel[bits], naiveQuantSqnr(halfZero, [8, 8], 0, bits, null), 1e-9, `SQNR with zero channels, ${bits} bits`);
  }
});

test('empty tensors and tiny tensors', () => {
  const empty = computeWeightStats(new Float32Array(0), [0, 4], 0);
  assert.equal(empty.count, 0);
  assertAllFinite(empty);
  const scalar = computeWeightStats(Float32Array.from([-3]), [], 0);
  assert.equal(scalar.channels, 1);
  assert.equal(scalar.absMax, 3);
  assert.equal(scalar.quantError.perChannel[2], SQNR_CAP_DB);
});

test('bad arguments are refused with a RangeError', () => {
  const data = new Float32Array(12);
  assert.throws(() => computeWeightStats(data, [3, 5], 0), RangeError);
  assert.throws(() => computeWeightStats(data, [3, 4], 2), RangeError);
  assert.throws(() => computeWeightStats(data, [3, 4], 0, { histogramBins: 0 }), RangeError);
  assert.throws(() => computeWeightStats(data, [3, 4], 0, { outlierSigma: -1 }), RangeError);
});

test('repeated calls give identical results (kernel memory is reset between tensors)', () => {
  const a = weightLike([40, 130], 1, 4);
  const first = computeWeightStats(a, [40, 130], 1);
  computeWeightStats(weightLike([300, 300], 0, 5), [300, 300], 0, { histogramBins: 7 });
  assert.deepEqual(computeWeightStats(a, [40, 130], 1), first);
});
