// Weight statistics of one tensor in two passes over memory, accumulated in float64:
//   pass 1: min, max, shifted first and second sums, absmax of every (channel, group) block;
//   pass 2: central moments, histogram, outliers, signal energy and the quantization error of every bit width at both
//           granularities at once.
// The quantizer is weightQuant's: same layout, same (w · (1/absmax)) · levels, same rounding.
import {
  DEFAULT_HISTOGRAM_BINS,
  DEFAULT_OUTLIER_SIGMA,
  QUANT_BITS,
  QUANT_GROUP_SIZE,
  type QuantBits,
  type WeightStats,
} from '../../protocol/records';
import { channelLayout, forEachRun, quantLevels, roundHalfEven, sqnrFromEnergies, type ChannelLayout } from './weightQuant';

export interface WeightStatsOptions {
  /** k in |w − mean| > k·std; default DEFAULT_OUTLIER_SIGMA. */
  outlierSigma?: number;
  /** Histogram bins; default DEFAULT_HISTOGRAM_BINS. */
  histogramBins?: number;
}

/** Spread reported when the median channel is all zero but some channel is not: JSON has no Infinity. */
export const CHANNEL_SPREAD_CAP = 1e6;

const MAX_HISTOGRAM_BINS = 4096;

// The pass-2 loops are unrolled over the five bit widths: keep them in step with the contract.
if (QUANT_BITS.length !== 5) throw new Error('weightStats unrolls exactly five bit widths');
const LEVELS = QUANT_BITS.map(quantLevels);

// Slots of the pass-2 accumulator.
const M2 = 0;
const M4 = 1;
const OUTLIERS = 2;
const ENERGY = 3;
/** Σ((w − ŵ) / scale)² · absmax², per bit width: divide by levels² for Σ(w − ŵ)². */
const ERR_CHANNEL = 4;
const ERR_GROUP = 9;
const ACC_SLOTS = 14;

interface Pass1 {
  min: number;
  max: number;
  /** Σ(w − shift) and Σ(w − shift)²: a shift inside the data keeps the variance from cancelling. */
  shift: number;
  shiftedSum: number;
  shiftedSumSq: number;
  /** |w| max per (channel, group): channel-major [C][G] for runs, group-major [G][C] for rows. */
  groupAbsMax: Float64Array;
}

/**
 * Statistics of one weight tensor. `channelAxis` indexes output channels in `shape` (ignored below rank 2, where the
 * tensor is one channel). Groups are QUANT_GROUP_SIZE consecutive input elements of a channel.
 * Non-finite values (NaN, ±Infinity) are counted as 0, so one corrupt value cannot turn every number into NaN.
 */
export function computeWeightStats(
  data: Float32Array,
  shape: readonly number[],
  channelAxis: number,
  options: WeightStatsOptions = {},
): WeightStats {
  const outlierSigma = options.outlierSigma ?? DEFAULT_OUTLIER_SIGMA;
  const bins = options.histogramBins ?? DEFAULT_HISTOGRAM_BINS;
  if (!(outlierSigma > 0) || !Number.isFinite(outlierSigma)) throw new RangeError(`outlierSigma must be a positive number, got ${outlierSigma}`);
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_HISTOGRAM_BINS) {
    throw new RangeError(`histogramBins must be an integer from 1 to ${MAX_HISTOGRAM_BINS}, got ${bins}`);
  }
  const layout = channelLayout(shape, channelAxis, data.length);
  const n = data.length;
  if (n === 0 || layout.channels === 0) return emptyStats(layout, outlierSigma, bins);

  const groupSize = QUANT_GROUP_SIZE;
  const groupsPerChannel = Math.ceil(layout.inputs / groupSize);
  // Rows: the channel axis is the innermost one (MatMul [K, N]): each stored row holds one element of every channel.
  const rows = layout.inner === 1;

  let values = data;
  let p1 = rows ? pass1Rows(values, layout, groupSize, groupsPerChannel) : pass1Runs(values, layout, groupSize, groupsPerChannel);
  if (!Number.isFinite(p1.shiftedSum) || !Number.isFinite(p1.min) || !Number.isFinite(p1.max)) {
    values = finiteOrZero(data);
    p1 = rows ? pass1Rows(values, layout, groupSize, groupsPerChannel) : pass1Runs(values, layout, groupSize, groupsPerChannel);
  }

  const constant = p1.min === p1.max;
  const mean = constant ? p1.min : p1.shift + p1.shiftedSum / n;
  const firstVariance = constant ? 0 : Math.max(0, (p1.shiftedSumSq - (p1.shiftedSum * p1.shiftedSum) / n) / n);
  const outlierLimit = outlierSigma * Math.sqrt(firstVariance);

  const { channelAbsMax, channelInverse, channelAbsSq, groupInverse, groupAbsSq } = scales(p1.groupAbsMax, layout.channels, groupsPerChannel, rows);

  const acc = new Float64Array(ACC_SLOTS);
  const counts = new Float64Array(bins);
  const histogram = { min: p1.min, binsPerUnit: constant ? 0 : bins / (p1.max - p1.min), lastBin: bins - 1, counts };
  const center = { mean, outlierLimitSq: outlierLimit * outlierLimit };
  if (rows) {
    pass2Rows(values, layout, groupSize, center, histogram, channelInverse, channelAbsSq, groupInverse, groupAbsSq, acc);
  } else {
    forEachRun(layout, groupSize, (start, end, channel, group) => {
      const slot = channel * groupsPerChannel + group;
      pass2Run(values, start, end, center, histogram, channelInverse[channel], channelAbsSq[channel], groupInverse[slot], groupAbsSq[slot], acc);
    });
  }

  const m2 = acc[M2] / n;
  const m4 = acc[M4] / n;
  const sorted = Float64Array.from(channelAbsMax).sort();
  const median = medianOfSorted(sorted);
  const channelMax = sorted[sorted.length - 1];
  const perChannel = {} as Record<QuantBits, number>;
  const perGroup = {} as Record<QuantBits, number>;
  QUANT_BITS.forEach((bits, b) => {
    const levelsSq = LEVELS[b] * LEVELS[b];
    perChannel[bits] = sqnrFromEnergies(acc[ENERGY], acc[ERR_CHANNEL + b] / levelsSq);
    perGroup[bits] = sqnrFromEnergies(acc[ENERGY], acc[ERR_GROUP + b] / levelsSq);
  });
  return {
    count: n,
    min: p1.min,
    max: p1.max,
    mean,
    std: Math.sqrt(m2),
    // A constant tensor has no shape to its distribution: report 0 rather than 0/0.
    kurtosis: m2 > 0 ? m4 / (m2 * m2) - 3 : 0,
    absMax: Math.max(-p1.min, p1.max),
    outlierSigma,
    outlierShare: acc[OUTLIERS] / n,
    channels: layout.channels,
    channelAbsMax: { min: sorted[0], median, max: channelMax },
    channelSpread: median > 0 ? channelMax / median : channelMax > 0 ? CHANNEL_SPREAD_CAP : 1,
    histogram: { min: p1.min, max: p1.max, counts: Array.from(counts) },
    quantError: { perChannel, perGroup, groupSize },
  };
}

function pass1Runs(data: Float32Array, layout: ChannelLayout, groupSize: number, groupsPerChannel: number): Pass1 {
  const groupAbsMax = new Float64Array(layout.channels * groupsPerChannel);
  const shift = data[0];
  let min = Infinity;
  let max = -Infinity;
  let shiftedSum = 0;
  let shiftedSumSq = 0;
  forEachRun(layout, groupSize, (start, end, channel, group) => {
    let runMin = Infinity;
    let runMax = -Infinity;
    let sum = 0;
    let sumSq = 0;
    for (let i = start; i < end; i++) {
      const w = data[i];
      if (w < runMin) runMin = w;
      if (w > runMax) runMax = w;
      const d = w - shift;
      sum += d;
      sumSq += d * d;
    }
    // NaN fails every comparison, so the min/max tests above skip it; the sum carries it to the caller's check.
    if (runMin < min) min = runMin;
    if (runMax > max) max = runMax;
    shiftedSum += sum;
    shiftedSumSq += sumSq;
    groupAbsMax[channel * groupsPerChannel + group] = Math.max(-runMin, runMax);
  });
  return { min, max, shift, shiftedSum, shiftedSumSq, groupAbsMax };
}

function pass1Rows(data: Float32Array, layout: ChannelLayout, groupSize: number, groupsPerChannel: number): Pass1 {
  const channels = layout.channels;
  const groupAbsMax = new Float64Array(groupsPerChannel * channels);
  const shift = data[0];
  let min = Infinity;
  let max = -Infinity;
  let shiftedSum = 0;
  let shiftedSumSq = 0;
  for (let row = 0; row < layout.outer; row++) {
    const base = row * channels;
    const groupBase = Math.floor(row / groupSize) * channels;
    for (let c = 0; c < channels; c++) {
      const w = data[base + c];
      if (w < min) min = w;
      if (w > max) max = w;
      const d = w - shift;
      shiftedSum += d;
      shiftedSumSq += d * d;
      const a = Math.abs(w);
      if (a > groupAbsMax[groupBase + c]) groupAbsMax[groupBase + c] = a;
    }
  }
  return { min, max, shift, shiftedSum, shiftedSumSq, groupAbsMax };
}

/** Per-channel absmax (max over its groups) and the reciprocals and squares pass 2 multiplies by. */
function scales(groupAbsMax: Float64Array, channels: number, groupsPerChannel: number, groupMajor: boolean) {
  const channelAbsMax = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    let max = 0;
    for (let g = 0; g < groupsPerChannel; g++) {
      const value = groupAbsMax[groupMajor ? g * channels + c : c * groupsPerChannel + g];
      if (value > max) max = value;
    }
    channelAbsMax[c] = max;
  }
  // An all-zero block quantizes exactly: a reciprocal of 0 (not Infinity) keeps 0·∞ = NaN out.
  const inverse = (values: Float64Array) => values.map((v) => (v > 0 ? 1 / v : 0));
  const square = (values: Float64Array) => values.map((v) => v * v);
  return {
    channelAbsMax,
    channelInverse: inverse(channelAbsMax),
    channelAbsSq: square(channelAbsMax),
    groupInverse: inverse(groupAbsMax),
    groupAbsSq: square(groupAbsMax),
  };
}

interface Center {
  mean: number;
  outlierLimitSq: number;
}

interface HistogramState {
  min: number;
  binsPerUnit: number;
  lastBin: number;
  counts: Float64Array;
}

/** Pass 2 over one run of elements that share a channel and a group (so both scales are constant). */
function pass2Run(
  data: Float32Array,
  start: number,
  end: number,
  center: Center,
  histogram: HistogramState,
  channelInverse: number,
  channelAbsSq: number,
  groupInverse: number,
  groupAbsSq: number,
  acc: Float64Array,
): void {
  const { mean, outlierLimitSq } = center;
  const { min, binsPerUnit, lastBin, counts } = histogram;
  const L0 = LEVELS[0], L1 = LEVELS[1], L2 = LEVELS[2], L3 = LEVELS[3], L4 = LEVELS[4];
  let m2 = 0, m4 = 0, outliers = 0, energy = 0;
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0;
  let g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0;
  for (let i = start; i < end; i++) {
    const w = data[i];
    const d = w - mean;
    const d2 = d * d;
    m2 += d2;
    m4 += d2 * d2;
    if (d2 > outlierLimitSq) outliers++;
    energy += w * w;
    const bin = Math.floor((w - min) * binsPerUnit);
    counts[bin < lastBin ? bin : lastBin]++;
    // Error in units of the scale: t − round(t) with t = w / scale.
    const uc = w * channelInverse;
    let t = uc * L0, e = t - roundHalfEven(t); c0 += e * e;
    t = uc * L1; e = t - roundHalfEven(t); c1 += e * e;
    t = uc * L2; e = t - roundHalfEven(t); c2 += e * e;
    t = uc * L3; e = t - roundHalfEven(t); c3 += e * e;
    t = uc * L4; e = t - roundHalfEven(t); c4 += e * e;
    const ug = w * groupInverse;
    t = ug * L0; e = t - roundHalfEven(t); g0 += e * e;
    t = ug * L1; e = t - roundHalfEven(t); g1 += e * e;
    t = ug * L2; e = t - roundHalfEven(t); g2 += e * e;
    t = ug * L3; e = t - roundHalfEven(t); g3 += e * e;
    t = ug * L4; e = t - roundHalfEven(t); g4 += e * e;
  }
  acc[M2] += m2;
  acc[M4] += m4;
  acc[OUTLIERS] += outliers;
  acc[ENERGY] += energy;
  // (t − round(t))² · absmax² = (w − ŵ)² · levels²: the caller divides by levels².
  acc[ERR_CHANNEL] += c0 * channelAbsSq;
  acc[ERR_CHANNEL + 1] += c1 * channelAbsSq;
  acc[ERR_CHANNEL + 2] += c2 * channelAbsSq;
  acc[ERR_CHANNEL + 3] += c3 * channelAbsSq;
  acc[ERR_CHANNEL + 4] += c4 * channelAbsSq;
  acc[ERR_GROUP] += g0 * groupAbsSq;
  acc[ERR_GROUP + 1] += g1 * groupAbsSq;
  acc[ERR_GROUP + 2] += g2 * groupAbsSq;
  acc[ERR_GROUP + 3] += g3 * groupAbsSq;
  acc[ERR_GROUP + 4] += g4 * groupAbsSq;
}

/** Pass 2 over stored rows when the channel axis is innermost: every element has its own channel's scales. */
function pass2Rows(
  data: Float32Array,
  layout: ChannelLayout,
  groupSize: number,
  center: Center,
  histogram: HistogramState,
  channelInverse: Float64Array,
  channelAbsSq: Float64Array,
  groupInverse: Float64Array,
  groupAbsSq: Float64Array,
  acc: Float64Array,
): void {
  const { mean, outlierLimitSq } = center;
  const { min, binsPerUnit, lastBin, counts } = histogram;
  const L0 = LEVELS[0], L1 = LEVELS[1], L2 = LEVELS[2], L3 = LEVELS[3], L4 = LEVELS[4];
  const channels = layout.channels;
  let m2 = 0, m4 = 0, outliers = 0, energy = 0;
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0, c4 = 0;
  let g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0;
  for (let row = 0; row < layout.outer; row++) {
    const base = row * channels;
    const groupBase = Math.floor(row / groupSize) * channels;
    for (let c = 0; c < channels; c++) {
      const w = data[base + c];
      const d = w - mean;
      const d2 = d * d;
      m2 += d2;
      m4 += d2 * d2;
      if (d2 > outlierLimitSq) outliers++;
      energy += w * w;
      const bin = Math.floor((w - min) * binsPerUnit);
      counts[bin < lastBin ? bin : lastBin]++;
      const uc = w * channelInverse[c];
      const ac = channelAbsSq[c];
      let t = uc * L0, e = t - roundHalfEven(t); c0 += e * e * ac;
      t = uc * L1; e = t - roundHalfEven(t); c1 += e * e * ac;
      t = uc * L2; e = t - roundHalfEven(t); c2 += e * e * ac;
      t = uc * L3; e = t - roundHalfEven(t); c3 += e * e * ac;
      t = uc * L4; e = t - roundHalfEven(t); c4 += e * e * ac;
      const ug = w * groupInverse[groupBase + c];
      const ag = groupAbsSq[groupBase + c];
      t = ug * L0; e = t - roundHalfEven(t); g0 += e * e * ag;
      t = ug * L1; e = t - roundHalfEven(t); g1 += e * e * ag;
      t = ug * L2; e = t - roundHalfEven(t); g2 += e * e * ag;
      t = ug * L3; e = t - roundHalfEven(t); g3 += e * e * ag;
      t = ug * L4; e = t - roundHalfEven(t); g4 += e * e * ag;
    }
  }
  acc[M2] += m2;
  acc[M4] += m4;
  acc[OUTLIERS] += outliers;
  acc[ENERGY] += energy;
  acc[ERR_CHANNEL] += c0;
  acc[ERR_CHANNEL + 1] += c1;
  acc[ERR_CHANNEL + 2] += c2;
  acc[ERR_CHANNEL + 3] += c3;
  acc[ERR_CHANNEL + 4] += c4;
  acc[ERR_GROUP] += g0;
  acc[ERR_GROUP + 1] += g1;
  acc[ERR_GROUP + 2] += g2;
  acc[ERR_GROUP + 3] += g3;
  acc[ERR_GROUP + 4] += g4;
}

function medianOfSorted(sorted: Float64Array): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function finiteOrZero(data: Float32Array): Float32Array {
  return data.map((v) => (Number.isFinite(v) ? v : 0));
}

function emptyStats(layout: ChannelLayout, outlierSigma: number, bins: number): WeightStats {
  const exact = Object.fromEntries(QUANT_BITS.map((bits) => [bits, sqnrFromEnergies(0, 0)])) as Record<QuantBits, number>;
  return {
    count: 0,
    min: 0,
    max: 0,
    mean: 0,
    std: 0,
    kurtosis: 0,
    absMax: 0,
    outlierSigma,
    outlierShare: 0,
    channels: layout.channels,
    channelAbsMax: { min: 0, median: 0, max: 0 },
    channelSpread: 1,
    histogram: { min: 0, max: 0, counts: new Array<number>(bins).fill(0) },
    quantError: { perChannel: exact, perGroup: { ...exact }, groupSize: QUANT_GROUP_SIZE },
  };
}
