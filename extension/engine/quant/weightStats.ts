// Weight statistics of one tensor in two passes over memory, accumulated in float64:
//   pass 1: min, max, first and second sums (shifted by the first value so the variance does not cancel), and the
//           absmax of every (channel, group) block;
//   pass 2: central moments, histogram, outliers, signal energy, and the quantization error of every bit width at
//           both granularities at once.
// The tensor is streamed through a small window of WebAssembly memory where SIMD kernels (statsKernels.ts) do the
// arithmetic; the quantizer is the one defined in weightQuant.ts (same layout, same (w · (1/absmax)) · levels, same
// round-half-to-even), and the tests hold the two to the same numbers.
// NaN and ±Infinity weights are counted and left out: every statistic and the SQNR cover the finite weights only.
// The kernels have no per-element check for that; NaN and infinities reach pass 1's sums, so a tensor whose sums come
// out finite is all finite and pays nothing, and only one that is not is counted and measured again (TensorPass.walk).
import {
  DEFAULT_HISTOGRAM_BINS,
  DEFAULT_OUTLIER_SIGMA,
  QUANT_BITS,
  QUANT_GROUP_SIZE,
  type QuantBits,
  type WeightStats,
} from '../../protocol/records';
import { HISTOGRAM_TABLES, SLOT, SLOTS_END, ensureMemory, statsKernels, type StatsKernels } from './statsKernels';
import { channelLayout, quantLevels, sqnrFromEnergies, type ChannelLayout } from './weightQuant';

export interface WeightStatsOptions {
  /** k in |w − mean| > k·std; default DEFAULT_OUTLIER_SIGMA. */
  outlierSigma?: number;
  /** Histogram bins; default DEFAULT_HISTOGRAM_BINS. */
  histogramBins?: number;
}

/** Spread reported when the median channel is all zero but some channel is not: JSON has no Infinity. */
export const CHANNEL_SPREAD_CAP = 1e6;

const MAX_HISTOGRAM_BINS = 4096;
/** Elements copied into kernel memory at a time: 256 KB, so both passes' kernels re-read it from cache. */
const WINDOW = 65536;

/**
 * Statistics of one weight tensor. `channelAxis` indexes output channels in `shape` (ignored below rank 2, where the
 * tensor is one channel). Groups are QUANT_GROUP_SIZE consecutive input elements of a channel.
 * Non-finite values (NaN, ±Infinity) are counted in `nonFinite` and named in `warnings`; every other number (moments,
 * min/max, histogram, outliers, channel absmax, SQNR) is computed over the finite values only.
 */
export function computeWeightStats(
  data: Float32Array,
  shape: readonly number[],
  channelAxis: number,
  options: WeightStatsOptions = {},
): WeightStats {
  const outlierSigma = options.outlierSigma ?? DEFAULT_OUTLIER_SIGMA;
  const bins = options.histogramBins ?? DEFAULT_HISTOGRAM_BINS;
  if (!(outlierSigma > 0) || !Number.isFinite(outlierSigma)) {
    throw new RangeError(`outlierSigma must be a positive number, got ${outlierSigma}`);
  }
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_HISTOGRAM_BINS) {
    throw new RangeError(`histogramBins must be an integer from 1 to ${MAX_HISTOGRAM_BINS}, got ${bins}`);
  }
  const layout = channelLayout(shape, channelAxis, data.length);
  if (data.length === 0 || layout.channels === 0) return emptyStats(data.length, layout, outlierSigma, bins, ALL_FINITE);

  const pass = new TensorPass(data, layout, bins);
  pass.first();
  if (pass.firstIsFinite()) return pass.second(outlierSigma, ALL_FINITE);
  const nonFinite = findNonFinite(data);
  if (nonFinite.positions.length === data.length) return emptyStats(data.length, layout, outlierSigma, bins, nonFinite);
  pass.skipNonFinite(nonFinite.positions);
  pass.first();
  return pass.second(outlierSigma, nonFinite);
}

interface NonFiniteCounts {
  nan: number;
  posInf: number;
  negInf: number;
}

const ALL_FINITE: NonFiniteCounts = { nan: 0, posInf: 0, negInf: 0 };

/** The non-finite values by kind, and their positions in ascending order. */
function findNonFinite(data: Float32Array): NonFiniteCounts & { positions: Uint32Array } {
  const counts = { nan: 0, posInf: 0, negInf: 0 };
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v !== v) counts.nan++;
    else if (v === Infinity) counts.posInf++;
    else if (v === -Infinity) counts.negInf++;
  }
  const positions = new Uint32Array(counts.nan + counts.posInf + counts.negInf);
  for (let i = 0, k = 0; k < positions.length; i++) if (!Number.isFinite(data[i])) positions[k++] = i;
  return { ...counts, positions };
}

/** The fields that report non-finite weights: the counts and, when there are any, the sentence that names them. */
function nonFiniteFields(count: number, counts: NonFiniteCounts): Pick<WeightStats, 'nonFinite' | 'nan' | 'posInf' | 'negInf' | 'warnings'> {
  const nonFinite = counts.nan + counts.posInf + counts.negInf;
  const warnings: string[] = [];
  if (nonFinite > 0) {
    const kinds = ([[counts.nan, 'NaN'], [counts.posInf, '+Inf'], [counts.negInf, '−Inf']] as const)
      .filter(([n]) => n > 0)
      .map(([n, kind]) => `${n} ${kind}`)
      .join(', ');
    warnings.push(
      nonFinite === count
        ? `all ${count} weights are non-finite (${kinds}): no statistic applies`
        : `${nonFinite} of ${count} weights are non-finite (${kinds}); the statistics and SQNR cover the ${count - nonFinite} finite ones`,
    );
  }
  return { nonFinite, ...counts, warnings };
}

/** Walks one tensor through the kernels; holds the views of kernel memory for this call. */
class TensorPass {
  private readonly kernels: StatsKernels = statsKernels();
  /** Values the moments cover: every element, or the finite ones after skipNonFinite. */
  private n: number;
  /** Subtracted before summing, so the variance does not cancel: the first value (the first finite one, skipping). */
  private shift: number;
  /** Ascending positions of the non-finite values, once skipNonFinite was called. */
  private skipped: Uint32Array | undefined;
  private readonly groupSize = QUANT_GROUP_SIZE;
  private readonly groupsPerChannel: number;
  /** The channel axis is the innermost one (MatMul [K, N]): each stored row holds one element of every channel. */
  private readonly rows: boolean;
  /** Elements of a unit: a channel's run of `inner` elements, or a stored row of `channels`. */
  private readonly unitLength: number;
  /** (channel, group) pairs. */
  private readonly blocks: number;
  /** Kernel memory: accumulators, the histogram tables, the window, then the scale arrays. */
  private readonly histTables: number;
  private readonly histTableBytes: number;
  private readonly window: number;
  private readonly channelInverse: number;
  private readonly channelAbsSq: number;
  /** Per (channel, group) arrays: channel-major [C][G] for runs, group-major [G][C] for rows. */
  private readonly groupInverse: number;
  private readonly groupAbsSq: number;
  private readonly groupAbsMax: number;
  private readonly f32: Float32Array;
  private readonly f64: Float64Array;
  private readonly u32: Uint32Array;

  constructor(
    private readonly data: Float32Array,
    private readonly layout: ChannelLayout,
    private readonly bins: number,
  ) {
    this.n = data.length;
    this.shift = data[0];
    this.groupsPerChannel = Math.ceil(layout.inputs / this.groupSize);
    this.rows = layout.inner === 1;
    this.unitLength = this.rows ? layout.channels : layout.inner;
    this.blocks = layout.channels * this.groupsPerChannel;
    const align = (bytes: number) => Math.ceil(bytes / 16) * 16;
    this.histTableBytes = align(bins * 4);
    this.histTables = SLOTS_END;
    this.window = this.histTables + HISTOGRAM_TABLES * this.histTableBytes;
    this.channelInverse = this.window + WINDOW * 4;
    this.channelAbsSq = this.channelInverse + align(layout.channels * 8);
    this.groupInverse = this.channelAbsSq + align(layout.channels * 8);
    this.groupAbsSq = this.groupInverse + this.blocks * 8;
    this.groupAbsMax = this.groupAbsSq + this.blocks * 8;
    ensureMemory(this.kernels, this.groupAbsMax + this.blocks * 4);
    const buffer = this.kernels.memory.buffer;
    this.f32 = new Float32Array(buffer);
    this.f64 = new Float64Array(buffer);
    this.u32 = new Uint32Array(buffer);
  }

  /**
   * From now on the moments, extremes and histogram see only the finite values, and the quantizer sees each value at
   * `positions` (the non-finite ones, ascending) as 0, which adds nothing to a block's absmax, the signal energy or the
   * error: the same numbers as for a tensor without them.
   */
  skipNonFinite(positions: Uint32Array): void {
    this.skipped = positions;
    this.n = this.data.length - positions.length;
    this.shift = this.data.find((v) => Number.isFinite(v)) ?? 0;
  }

  first(): void {
    const { kernels, f64, groupSize, groupsPerChannel, shift } = this;
    f64.fill(0, 0, SLOTS_END / 8);
    f64[SLOT.min / 8] = Infinity;
    f64[SLOT.max / 8] = -Infinity;
    this.f32.fill(0, this.groupAbsMax / 4, this.groupAbsMax / 4 + this.blocks);
    const channels = this.layout.channels;
    const moments = (ptr: number, len: number) => kernels.moments1(ptr, len, shift);
    if (this.rows) {
      this.walk(moments, (ptr, len, row, column) => {
        kernels.absMaxInto(ptr, len, this.groupAbsMax + (Math.floor(row / groupSize) * channels + column) * 4);
      });
    } else {
      this.walk(moments, (ptr, len, unit, offset) => {
        const { channel, input } = this.runStart(unit, offset);
        const group = Math.floor(input / groupSize);
        const out = this.groupAbsMax + (channel * groupsPerChannel + group) * 4;
        kernels.blockAbsMax(ptr, len, (group + 1) * groupSize - input, groupSize, out);
      });
    }
  }

  firstIsFinite(): boolean {
    const f64 = this.f64;
    return [SLOT.min, SLOT.max, SLOT.shiftedSum].every((slot) => Number.isFinite(f64[slot / 8]));
  }

  second(outlierSigma: number, nonFinite: NonFiniteCounts): WeightStats {
    const { kernels, f32, f64, n, layout, groupsPerChannel, bins } = this;
    const min = f64[SLOT.min / 8];
    const max = f64[SLOT.max / 8];
    const shiftedSum = f64[SLOT.shiftedSum / 8];
    const shiftedSumSq = f64[SLOT.shiftedSumSq / 8];
    const constant = min === max;
    const mean = constant ? min : this.shift + shiftedSum / n;
    // The outlier limit needs the spread before pass 2 measures it: the shifted sums give it to within rounding.
    const firstVariance = constant ? 0 : Math.max(0, (shiftedSumSq - (shiftedSum * shiftedSum) / n) / n);
    const outlierLimit = outlierSigma * Math.sqrt(firstVariance);

    const channels = layout.channels;
    const groupAbsMax = this.groupAbsMax / 4;
    const groupInverse = this.groupInverse / 8;
    const groupAbsSq = this.groupAbsSq / 8;
    const channelAbsMax = new Float64Array(channels);
    for (let block = 0; block < this.blocks; block++) {
      const absMax = f32[groupAbsMax + block];
      // An all-zero block quantizes exactly: a reciprocal of 0 (not Infinity) keeps 0·∞ = NaN out.
      f64[groupInverse + block] = absMax > 0 ? 1 / absMax : 0;
      f64[groupAbsSq + block] = absMax * absMax;
      const channel = this.rows ? block % channels : Math.floor(block / groupsPerChannel);
      if (absMax > channelAbsMax[channel]) channelAbsMax[channel] = absMax;
    }
    const channelInverse = channelAbsMax.map((absMax) => (absMax > 0 ? 1 / absMax : 0));
    const channelAbsSq = channelAbsMax.map((absMax) => absMax * absMax);
    f64.set(channelInverse, this.channelInverse / 8);
    f64.set(channelAbsSq, this.channelAbsSq / 8);

    f64.fill(0, SLOT.m2 / 8, SLOTS_END / 8);
    this.u32.fill(0, this.histTables / 4, this.window / 4);
    const binsPerUnit = constant ? 0 : bins / (max - min);
    const limitSq = outlierLimit * outlierLimit;
    const moments = (ptr: number, len: number) =>
      kernels.moments2(ptr, len, mean, limitSq, min, binsPerUnit, bins - 1, this.histTables, this.histTableBytes);
    const { groupSize } = this;
    if (this.rows) {
      this.walk(moments, (ptr, len, row, column) => {
        const groupColumn = Math.floor(row / groupSize) * channels + column;
        kernels.quantPerElement(
          ptr, len,
          this.channelInverse + column * 8, this.channelAbsSq + column * 8,
          this.groupInverse + groupColumn * 8, this.groupAbsSq + groupColumn * 8,
        );
      });
    } else {
      this.walk(moments, (ptr, len, unit, offset) => {
        const { channel, input } = this.runStart(unit, offset);
        const group = Math.floor(input / groupSize);
        const slot = (channel * groupsPerChannel + group) * 8;
        kernels.quantBlocks(
          ptr, len, (group + 1) * groupSize - input, groupSize, channelInverse[channel], channelAbsSq[channel],
          this.groupInverse + slot, this.groupAbsSq + slot,
        );
      });
    }

    const m2 = f64[SLOT.m2 / 8] / n;
    const m4 = f64[SLOT.m4 / 8] / n;
    const counts = new Array<number>(bins).fill(0);
    for (let table = 0; table < HISTOGRAM_TABLES; table++) {
      const first = (this.histTables + table * this.histTableBytes) / 4;
      for (let b = 0; b < bins; b++) counts[b] += this.u32[first + b];
    }
    const sorted = channelAbsMax.slice().sort();
    const median = medianOfSorted(sorted);
    const channelMax = sorted[sorted.length - 1];
    const energy = f64[SLOT.energy / 8];
    const perChannel = {} as Record<QuantBits, number>;
    const perGroup = {} as Record<QuantBits, number>;
    QUANT_BITS.forEach((bits, b) => {
      const levelsSq = quantLevels(bits) ** 2;
      perChannel[bits] = sqnrFromEnergies(energy, f64[SLOT.errChannel / 8 + b] / levelsSq);
      perGroup[bits] = sqnrFromEnergies(energy, f64[SLOT.errGroup / 8 + b] / levelsSq);
    });
    return {
      count: this.data.length,
      ...nonFiniteFields(this.data.length, nonFinite),
      min,
      max,
      mean,
      std: Math.sqrt(m2),
      // A constant tensor has no shape to its distribution: report 0 rather than 0/0.
      kurtosis: m2 > 0 ? m4 / (m2 * m2) - 3 : 0,
      absMax: Math.max(-min, max),
      outlierSigma,
      outlierShare: f64[SLOT.outliers / 8] / n,
      channels,
      channelAbsMax: { min: sorted[0], median, max: channelMax },
      channelSpread: median > 0 ? channelMax / median : channelMax > 0 ? CHANNEL_SPREAD_CAP : 1,
      histogram: { min, max, counts },
      quantError: { perChannel, perGroup, groupSize: this.groupSize },
    };
  }

  /**
   * Copies the tensor window by window into kernel memory, runs `whole` over each window, then `span` over each
   * stretch of it that lies in one unit (`offset` elements into unit number `unit`). Skipping non-finite values, the
   * spans see them as 0 and `whole` runs after them, over the window's finite values only.
   */
  private walk(
    whole: (ptr: number, len: number) => void,
    span: (ptr: number, len: number, unit: number, offset: number) => void,
  ): void {
    const { data, unitLength, window, f32, skipped } = this;
    const n = data.length;
    const first = window / 4;
    // Skipped positions in this window: skipped[from] up to skipped[to].
    let from = 0;
    let to = 0;
    for (let start = 0; start < n; start += WINDOW) {
      const end = Math.min(n, start + WINDOW);
      f32.set(data.subarray(start, end), first);
      if (skipped) {
        // The spans below keep every position (the layout needs it) with non-finite values as 0; `whole` runs last,
        // over the finite values packed to the front of the window.
        from = to;
        while (to < skipped.length && skipped[to] < end) f32[first + skipped[to++] - start] = 0;
      } else {
        whole(window, end - start);
      }
      for (let pos = start; pos < end; ) {
        const unit = Math.floor(pos / unitLength);
        const offset = pos - unit * unitLength;
        const len = Math.min(unitLength - offset, end - pos);
        span(window + (pos - start) * 4, len, unit, offset);
        pos += len;
      }
      if (skipped) {
        let kept = first;
        let runStart = start;
        for (let k = from; k <= to; k++) {
          const runEnd = k < to ? skipped[k] : end;
          f32.copyWithin(kept, first + runStart - start, first + runEnd - start);
          kept += runEnd - runStart;
          runStart = runEnd + 1;
        }
        whole(window, kept - first);
      }
    }
  }

  /** The channel of a run unit and the input index (within the channel) of the element `offset` into it. */
  private runStart(unit: number, offset: number): { channel: number; input: number } {
    const { channels, inner } = this.layout;
    return { channel: unit % channels, input: Math.floor(unit / channels) * inner + offset };
  }
}

function medianOfSorted(sorted: Float64Array): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Statistics of a tensor without a finite value: empty, or all NaN / ±Infinity. */
function emptyStats(count: number, layout: ChannelLayout, outlierSigma: number, bins: number, nonFinite: NonFiniteCounts): WeightStats {
  const exact = () => Object.fromEntries(QUANT_BITS.map((bits) => [bits, sqnrFromEnergies(0, 0)])) as Record<QuantBits, number>;
  return {
    count,
    ...nonFiniteFields(count, nonFinite),
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
    quantError: { perChannel: exact(), perGroup: exact(), groupSize: QUANT_GROUP_SIZE },
  };
}
