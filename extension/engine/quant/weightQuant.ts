// Symmetric round-to-nearest weight quantization: the definition every part of QuantLens uses. quantizeWeight
// implements it here (fake-quantized weights for instrumented runs); the SIMD kernels of weight statistics
// (statsKernels.ts) do the same float64 arithmetic in bulk, and the tests hold the two to the same SQNR.
//
// A weight tensor is viewed as [outer, channels, inner] around its output-channel axis. The input elements of a
// channel are all other axes flattened in storage order (index j = o·inner + i, K = outer·inner of them). A scale
// covers either a whole channel or a group of `size` consecutive input elements of one channel (the last group of a
// channel may be short):
//   levels = 2^(b−1) − 1,  scale = absmax / levels,  q = clamp(round(w / scale), −levels, levels),  ŵ = q · scale.
// w / scale is evaluated as (w · (1 / absmax)) · levels, so one reciprocal per block serves every bit width.
// Rounding is half to even, like ONNX Round and QuantizeLinear. The clamp never binds because the scale comes from the
// absmax of the very elements it quantizes (|w / scale| ≤ levels up to one rounding error, far from levels + ½), so
// the code omits it.

/** A tensor seen around its output-channel axis. */
export interface ChannelLayout {
  /** Product of the axes before the channel axis. */
  outer: number;
  channels: number;
  /** Product of the axes after the channel axis. */
  inner: number;
  /** Input elements per channel: outer · inner. */
  inputs: number;
}

export type Granularity = { kind: 'channel' } | { kind: 'group'; size: number };

/** SQNR reported for an exactly reproduced tensor (no error at all): JSON has no Infinity, and 200 dB is far above
 *  anything a real quantizer reaches (float32 rounding alone caps near 150 dB). */
export const SQNR_CAP_DB = 200;

/** Adding and subtracting 1.5·2^52 rounds a float64 of magnitude < 2^51 to an integer, ties to even. */
const ROUND_MAGIC = 6755399441055744;

export function roundHalfEven(x: number): number {
  return x + ROUND_MAGIC - ROUND_MAGIC;
}

/** Largest |q| for b bits: 2^(b−1) − 1. */
export function quantLevels(bits: number): number {
  if (!Number.isInteger(bits) || bits < 2 || bits > 16) throw new RangeError(`bits must be an integer from 2 to 16, got ${bits}`);
  return 2 ** (bits - 1) - 1;
}

/**
 * How a tensor of `length` values with `shape` splits around `channelAxis`. Tensors of rank 0 or 1 are one channel.
 * Throws RangeError when the shape does not describe `length` values or the axis is out of range.
 */
export function channelLayout(shape: readonly number[], channelAxis: number, length: number): ChannelLayout {
  let size = 1;
  for (const dim of shape) {
    if (!Number.isInteger(dim) || dim < 0) throw new RangeError(`shape [${shape.join(', ')}] has an invalid dimension`);
    size *= dim;
  }
  if (size !== length) throw new RangeError(`shape [${shape.join(', ')}] holds ${size} values, the data has ${length}`);
  if (shape.length <= 1) return { outer: 1, channels: 1, inner: length, inputs: length };
  if (!Number.isInteger(channelAxis) || channelAxis < 0 || channelAxis >= shape.length) {
    throw new RangeError(`channel axis ${channelAxis} is out of range for shape [${shape.join(', ')}]`);
  }
  let outer = 1;
  for (let axis = 0; axis < channelAxis; axis++) outer *= shape[axis];
  const channels = shape[channelAxis];
  const inner = channels === 0 ? 0 : length / (outer * channels);
  // A single channel is one contiguous run whatever the axis: say so, so loops see long runs.
  if (channels === 1) return { outer: 1, channels: 1, inner: length, inputs: length };
  return { outer, channels, inner, inputs: outer * inner };
}

/** Input elements per scale for a granularity: a whole channel, or a group. */
export function scaleBlockSize(layout: ChannelLayout, granularity: Granularity): number {
  if (granularity.kind === 'channel') return Math.max(layout.inputs, 1);
  if (!Number.isInteger(granularity.size) || granularity.size < 1) {
    throw new RangeError(`group size must be a positive integer, got ${granularity.size}`);
  }
  return granularity.size;
}

/**
 * Calls `visit` for every maximal run of consecutive stored elements that share one channel and one scale block, in
 * storage order. `block` is the block's index within its channel.
 */
export function forEachRun(
  layout: ChannelLayout,
  blockSize: number,
  visit: (start: number, end: number, channel: number, block: number) => void,
): void {
  const { outer, channels, inner } = layout;
  let start = 0;
  for (let o = 0; o < outer; o++) {
    const firstInput = o * inner;
    for (let channel = 0; channel < channels; channel++) {
      let input = firstInput;
      const endInput = firstInput + inner;
      while (input < endInput) {
        const block = Math.floor(input / blockSize);
        const runEnd = Math.min(endInput, (block + 1) * blockSize);
        const end = start + (runEnd - input);
        visit(start, end, channel, block);
        start = end;
        input = runEnd;
      }
    }
  }
}

/**
 * Fake-quantized copy of a weight (ŵ = q · scale, stored as float32), symmetric round-to-nearest with one scale per
 * output channel or per group of consecutive input elements of each channel.
 */
export function quantizeWeight(
  data: Float32Array,
  shape: readonly number[],
  channelAxis: number,
  bits: number,
  granularity: Granularity,
): Float32Array {
  const { codes, scales, blocksPerChannel } = weightCodes(data, shape, channelAxis, bits, granularity);
  const layout = channelLayout(shape, channelAxis, data.length);
  const out = new Float32Array(data.length);
  forEachRun(layout, scaleBlockSize(layout, granularity), (start, end, channel, block) => {
    const scale = scales[channel * blocksPerChannel + block];
    for (let i = start; i < end; i++) out[i] = codes[i] * scale;
  });
  return out;
}

/** Integer codes of a weight (storage order) and one scale per channel × block: what quantizeWeight dequantizes. */
export interface WeightCodes {
  codes: Int32Array;
  /** absmax / levels per (channel, block), channel-major, in float64 (an all-zero block has scale 0). */
  scales: Float64Array;
  blocksPerChannel: number;
}

/** q = round(w · (1/absmax) · levels), half to even; an all-zero block gets codes 0 and scale 0 (no 0/0). */
export function weightCodes(data: Float32Array, shape: readonly number[], channelAxis: number, bits: number, granularity: Granularity): WeightCodes {
  const levels = quantLevels(bits);
  const layout = channelLayout(shape, channelAxis, data.length);
  const blockSize = scaleBlockSize(layout, granularity);
  const blocksPerChannel = Math.max(1, Math.ceil(layout.inputs / blockSize));
  const absMax = new Float64Array(layout.channels * blocksPerChannel);
  forEachRun(layout, blockSize, (start, end, channel, block) => {
    const slot = channel * blocksPerChannel + block;
    let max = absMax[slot];
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(data[i]));
    absMax[slot] = max;
  });
  const codes = new Int32Array(data.length);
  forEachRun(layout, blockSize, (start, end, channel, block) => {
    const max = absMax[channel * blocksPerChannel + block];
    if (max === 0) return;
    const inverse = 1 / max;
    for (let i = start; i < end; i++) codes[i] = roundHalfEven(data[i] * inverse * levels);
  });
  return { codes, scales: absMax.map((max) => max / levels), blocksPerChannel };
}

/** 10·log10(signal / noise) from the two energies, capped at SQNR_CAP_DB (also when both are zero). */
export function sqnrFromEnergies(signal: number, noise: number): number {
  if (noise === 0) return SQNR_CAP_DB;
  if (signal === 0) return -SQNR_CAP_DB;
  return Math.min(SQNR_CAP_DB, Math.max(-SQNR_CAP_DB, 10 * Math.log10(signal / noise)));
}

/** SQNR in dB of `approx` against `reference`: 10·log10(Σ ref² / Σ (ref − approx)²), accumulated in float64. */
export function sqnrDb(reference: ArrayLike<number>, approx: ArrayLike<number>): number {
  if (reference.length !== approx.length) {
    throw new RangeError(`SQNR needs equal lengths, got ${reference.length} and ${approx.length}`);
  }
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < reference.length; i++) {
    const r = reference[i];
    const e = r - approx[i];
    signal += r * r;
    noise += e * e;
  }
  return sqnrFromEnergies(signal, noise);
}
