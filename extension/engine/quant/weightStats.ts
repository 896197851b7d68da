// Weight statistics of one tensor in two passes over memory, accumulated in float64:
//   pass 1: min, max, first and second sums (shifted by the first value so the variance does not cancel), and the
//           absmax of every (channel, group) block;
//   pass 2: central moments, histogram, outliers, signal energy, and the quantization error of every bit width at
//           both granularities at once.
// The tensor is streamed through a small window of WebAssembly memory where SIMD kernels (statsKernels.ts) do the
// arithmetic; the quantizer is the one defined in weightQuant.ts (same layout, same (w · (1/absmax)) · levels, same
// round-half-to-even), and the tests hold the two to the same numbers.
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
  if (!(outlierSigma > 0) || !Number.isFinite(outlierSigma)) {
    throw new RangeError(`outlierSigma must be a positive number, got ${outlierSigma}`);
  }
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_HISTOGRAM_BINS) {
    throw new RangeError(`histogramBins must be an integer from 1 to ${MAX_HISTOGRAM_BINS}, got ${bins}`);
  }
  const layout = channelLayout(shape, channelAxis, data.length);
  if (data.length === 0 || layout.channels === 0) return emptyStats(layout, outlierSigma, bins);

  const pass = new TensorPass(data, layout, bins);
  pass.first();
  if (!pass.firstIsFinite()) {
    pass.data = data.map((v) => (Number.isFinite(v) ? v : 0));
    pass.first();
  }
  return pass.second(outlierSigma);
}

/** Walks one tensor through the kernels; holds the views of kernel memory for this call. */
class TensorPass {
  private readonly kernels: StatsKernels = statsKernels();
  private readonly n: number;
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
    public data: Float32Array,
    private readonly layout: ChannelLayout,
    private readonly bins: number,
  ) {
    this.n = data.length;
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

  first(): void {
    const { kernels, f64, groupSize, groupsPerChannel } = this;
    f64.fill(0, 0, SLOTS_END / 8);
    f64[SLOT.min / 8] = Infinity;
    f64[SLOT.max / 8] = -Infinity;
    this.f32.fill(0, this.groupAbsMax / 4, this.groupAbsMax / 4 + this.blocks);
    const shift = this.data[0];
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

  second(outlierSigma: number): WeightStats {
    const { kernels, f64, n, layout, groupsPerChannel, bins } = this;
    const min = f64[SLOT.min / 8];
    const max = f64[SLOT.max / 8];
    const shiftedSum = f64[SLOT.shiftedSum / 8];
    const shiftedSumSq = f64[SLOT.shiftedSumSq / 8];
    const constant = min === max;
    const mean = constant ? min : this.data[0] + shiftedSum / n;
    // The outlier limit needs the spread before pass 2 measures it: the shifted sums give it to within rounding.
    const firstVariance = constant ? 0 : Math.max(0, (shiftedSumSq - (shiftedSum * shiftedSum) / n) / n);
    const outlierLimit = outlierSigma * Math.sqrt(firstVariance);

    const channels = layout.channels;
    const { f32 } = this;
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
      count: n,
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
   * stretch of it that lies in one unit (`offset` elements into unit number `unit`).
   */
  private walk(
    whole: (ptr: number, len: number) => void,
    span: (ptr: number, len: number, unit: number, offset: number) => void,
  ): void {
    const { data, n, unitLength, window } = this;
    for (let start = 0; start < n; start += WINDOW) {
      const end = Math.min(n, start + WINDOW);
      this.f32.set(data.subarray(start, end), window / 4);
      whole(window, end - start);
      for (let pos = start; pos < end; ) {
        const unit = Math.floor(pos / unitLength);
        const offset = pos - unit * unitLength;
        const len = Math.min(unitLength - offset, end - pos);
        span(window + (pos - start) * 4, len, unit, offset);
        pos += len;
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

function emptyStats(layout: ChannelLayout, outlierSigma: number, bins: number): WeightStats {
  const exact = () => Object.fromEntries(QUANT_BITS.map((bits) => [bits, sqnrFromEnergies(0, 0)])) as Record<QuantBits, number>;
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
    quantError: { perChannel: exact(), perGroup: exact(), groupSize: QUANT_GROUP_SIZE },
  };
}
