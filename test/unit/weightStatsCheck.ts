// The comparison of computeWeightStats with the float64 reference (naiveWeightStats.ts), shared by the weight-statistics
// tests: every field, with NaN and ±Infinity counted and left out of everything else.
import * as assert from 'node:assert/strict';
import { QUANT_BITS, QUANT_GROUP_SIZE, type WeightStats } from '../../extension/protocol/records';
import {
  finiteValues,
  gaussian,
  naiveChannelAbsMax,
  naiveHistogram,
  naiveMoments,
  naiveNonFiniteCounts,
  naiveQuantSqnr,
  seededRandom,
} from './naiveWeightStats';

export function close(actual: number, expected: number, relative: number, what: string): void {
  const tolerance = relative * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected} (tolerance ${tolerance})`);
}

/** Heavy-tailed data with a few large channels, like real weights. */
export function weightLike(shape: number[], channelAxis: number, seed: number): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = gaussian(count, seed, 0.05);
  const random = seededRandom(seed + 1);
  for (let i = 0; i < count; i++) if (random() < 0.002) data[i] *= 20;
  if (shape.length >= 2) {
    // Channel 1 carries 8× larger weights: a planted outlier channel.
    const inner = shape.slice(channelAxis + 1).reduce((a, b) => a * b, 1);
    for (let i = 0; i < count; i++) if (Math.floor(i / inner) % shape[channelAxis] === 1) data[i] *= 8;
  }
  return data;
}

/** Every field of `stats` against the reference; the tensor must hold at least one finite value. */
export function checkAgainstNaive(stats: WeightStats, data: Float32Array, shape: number[], channelAxis: number): void {
  const finite = finiteValues(data);
  const n = finite.length;
  const kinds = naiveNonFiniteCounts(data);
  const nonFinite = kinds.nan + kinds.posInf + kinds.negInf;
  assert.equal(stats.count, data.length);
  assert.deepEqual(
    { nonFinite: stats.nonFinite, nan: stats.nan, posInf: stats.posInf, negInf: stats.negInf },
    { nonFinite, ...kinds },
  );
  assert.equal(stats.warnings.length, nonFinite > 0 ? 1 : 0, stats.warnings.join('\n'));

  const naive = naiveMoments(data);
  assert.equal(stats.min, naive.min);
  assert.equal(stats.max, naive.max);
  assert.equal(stats.absMax, Math.max(-naive.min, naive.max));
  close(stats.mean, naive.mean, 1e-12, 'mean');
  close(stats.std, naive.std, 1e-10, 'std');
  if (naive.std > 0) close(stats.kurtosis, naive.kurtosis, 1e-9, 'kurtosis');

  const histogram = naiveHistogram(data, stats.histogram.counts.length, naive.min, naive.max);
  assert.equal(stats.histogram.counts.reduce((a, b) => a + b, 0), n);
  // Edges computed two ways may put a value sitting on an edge either side; allow that, nothing more.
  const moved = stats.histogram.counts.reduce((sum, count, bin) => sum + Math.abs(count - histogram[bin]), 0);
  assert.ok(moved <= 2, `histogram differs from the reference by ${moved} placements`);

  let outliers = 0;
  for (const w of finite) if (Math.abs(w - naive.mean) > stats.outlierSigma * naive.std) outliers++;
  assert.equal(stats.outlierShare, outliers / n);

  const channels = naiveChannelAbsMax(data, shape, channelAxis);
  assert.deepEqual(stats.channelAbsMax, channels);
  if (channels.median > 0) assert.equal(stats.channelSpread, channels.max / channels.median);

  for (const bits of QUANT_BITS) {
    close(stats.quantError.perChannel[bits], naiveQuantSqnr(data, shape, channelAxis, bits, null), 1e-9, `per-channel SQNR at ${bits} bits`);
    close(stats.quantError.perGroup[bits], naiveQuantSqnr(data, shape, channelAxis, bits, QUANT_GROUP_SIZE), 1e-9, `per-group SQNR at ${bits} bits`);
  }
}
