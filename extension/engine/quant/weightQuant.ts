// Round-to-nearest weight quantization: the definition every part of QuantLens uses. quantizeWeight implements it
// here (fake-quantized weights for instrumented runs); the SIMD kernels of weight statistics (statsKernels.ts) do the
// same float64 arithmetic in bulk for the symmetric quantizer, and the tests hold the two to the same SQNR.
//
// A weight tensor is viewed as [outer, channels, inner] around its output-channel axis. The input elements of a
// channel are all other axes flattened in storage order (index j = o·inner + i, K = outer·inner of them). A scale
// covers either a whole channel or a group of `size` consecutive input elements of one channel (the last group of a
// channel may be short). Two quantizers, per block:
//   symmetric:  levels = 2^(b−1) − 1,  scale = absmax / levels,  q = clamp(round(w / scale), −levels, levels),
//               ŵ = q · scale.
//     w / scale is evaluated as (w · (1 / absmax)) · levels, so one reciprocal per block serves every bit width.
//     The clamp never binds because the scale comes from the absmax of the very elements it quantizes
//     (|w / scale| ≤ levels up to one rounding error, far from levels + ½), so the code omits it.
//   asymmetric (zero point, QLLM-Eval's weight-only setting, as AWQ's pseudo-quantizer): L = 2^b − 1,
//               s = (max − min) / L,  z = clamp(round(−min / s), 0, L),  q = clamp(round(w / s) + z, 0, L),
//               ŵ = (q − z) · s.
//     A block whose range excludes 0 gets z clamped to 0 (or L), so its values beyond L·s (or below −L·s) clip, as
//     in QLLM-Eval. A constant block (max = min = c) takes s = |c| / L, which reproduces c exactly (z = 0 and q = L
//     for c > 0, z = L and q = 0 for c < 0), and s = 1 when c = 0 (codes and zero point 0).
// Rounding is half to even, like ONNX Round and QuantizeLinear.

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

/** Largest |q| for b bits, symmetric: 2^(b−1) − 1. */
export function quantLevels(bits: number): number {
  if (!Number.isInteger(bits) || bits < 2 || bits > 16) throw new RangeError(`bits must be an integer from 2 to 16, got ${bits}`);
  return 2 ** (bits - 1) - 1;
}

/** Largest code for b bits, asymmetric (codes 0…L): 2^b − 1. */
export function asymmetricLevels(bits: number): number {
  return 2 * quantLevels(bits) + 1;
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
 * Fake-quantized copy of a weight (ŵ = (q − z) · scale, stored as float32), round-to-nearest with one scale (and, when
 * asymmetric, one zero point) per output channel or per group of consecutive input elements of each channel.
 */
export function quantizeWeight(
  data: Float32Array,
  shape: readonly number[],
  channelAxis: number,
  bits: number,
  granularity: Granularity,
  symmetric = true,
): Float32Array {
  const { codes, scales, zeroPoints, blocksPerChannel } = weightCodes(data, shape, channelAxis, bits, granularity, symmetric);
  const layout = channelLayout(shape, channelAxis, data.length);
  const out = new Float32Array(data.length);
  forEachRun(layout, scaleBlockSize(layout, granularity), (start, end, channel, block) => {
    const slot = channel * blocksPerChannel + block;
    const scale = scales[slot];
    const zeroPoint = zeroPoints[slot];
    for (let i = start; i < end; i++) out[i] = (codes[i] - zeroPoint) * scale;
  });
  return out;
}

/** Integer codes of a weight (storage order), one scale and one zero point per channel × block: what quantizeWeight
 *  dequantizes. */
export interface WeightCodes {
  /** Symmetric: −levels…levels; asymmetric: 0…2^b − 1. */
  codes: Int32Array;
  /** Per (channel, block), channel-major, in float64. Symmetric: absmax / levels (an all-zero block has scale 0);
   *  asymmetric: (max − min) / (2^b − 1), always positive. */
  scales: Float64Array;
  /** Per (channel, block), like scales: 0 when symmetric, 0…2^b − 1 when asymmetric. */
  zeroPoints: Int32Array;
  blocksPerChannel: number;
  symmetric: boolean;
}

/**
 * Symmetric: q = round(w · (1/absmax) · levels), half to even; an all-zero block gets codes 0 and scale 0 (no 0/0).
 * Asymmetric: q = clamp(round(w / s) + z, 0, L) with s and z from the block's min and max (see the file comment).
 */
export function weightCodes(
  data: Float32Array,
  shape: readonly number[],
  channelAxis: number,
  bits: number,
  granularity: Granularity,
  symmetric = true,
): WeightCodes {
  const layout = channelLayout(shape, channelAxis, data.length);
  const blockSize = scaleBlockSize(layout, granularity);
  const blocksPerChannel = Math.max(1, Math.ceil(layout.inputs / blockSize));
  return symmetric
    ? symmetricCodes(data, layout, blockSize, blocksPerChannel, quantLevels(bits))
    : asymmetricCodes(data, layout, blockSize, blocksPerChannel, asymmetricLevels(bits));
}

function symmetricCodes(data: Float32Array, layout: ChannelLayout, blockSize: number, blocksPerChannel: number, levels: number): WeightCodes {
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
  const scales = absMax.map((max) => max / levels);
  return { codes, scales, zeroPoints: new Int32Array(absMax.length), blocksPerChannel, symmetric: true };
}

function asymmetricCodes(data: Float32Array, layout: ChannelLayout, blockSize: number, blocksPerChannel: number, levels: number): WeightCodes {
  const blocks = layout.channels * blocksPerChannel;
  const min = new Float64Array(blocks).fill(Infinity);
  const max = new Float64Array(blocks).fill(-Infinity);
  forEachRun(layout, blockSize, (start, end, channel, block) => {
    const slot = channel * blocksPerChannel + block;
    let low = min[slot];
    let high = max[slot];
    for (let i = start; i < end; i++) {
      low = Math.min(low, data[i]);
      high = Math.max(high, data[i]);
    }
    min[slot] = low;
    max[slot] = high;
  });
  const scales = new Float64Array(blocks);
  const zeroPoints = new Int32Array(blocks);
  for (let slot = 0; slot < blocks; slot++) {
    const [low, high] = [min[slot], max[slot]];
    // A constant nonzero block: |c| / L reproduces it; an all-zero or empty block: any positive scale does.
    const scale = high > low ? (high - low) / levels : high === low && high !== 0 ? Math.abs(high) / levels : 1;
    scales[slot] = scale;
    zeroPoints[slot] = clampCode(roundHalfEven(-low / scale), levels);
  }
  const codes = new Int32Array(data.length);
  forEachRun(layout, blockSize, (start, end, channel, block) => {
    const slot = channel * blocksPerChannel + block;
    const scale = scales[slot];
    const zeroPoint = zeroPoints[slot];
    for (let i = start; i < end; i++) codes[i] = clampCode(roundHalfEven(data[i] / scale) + zeroPoint, levels);
  });
  return { codes, scales, zeroPoints, blocksPerChannel, symmetric: false };
}

/** clamp(q, 0, levels); NaN (from a non-finite weight) becomes 0. */
function clampCode(q: number, levels: number): number {
  return q > 0 ? (q < levels ? q : levels) : 0;
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
