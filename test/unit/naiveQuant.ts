// Plain float64 weight quantizers, written from the formulas in docs/metrics.md and independent of the engine's
// (extension/engine/quant/weightQuant.ts): the tests rebuild models with these and compare with what the engine does.
// Also the float32 activation fake-quantizer of fakeQuant.ts, one rounding per operation.

/** Round half to even, from Math.floor alone. */
export function roundHalfEven(v: number): number {
  const floor = Math.floor(v);
  const fraction = v - floor;
  if (fraction !== 0.5) return fraction > 0.5 ? floor + 1 : floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** One value fake-quantized as fakeQuant.ts defines it: q = clamp(round(x · (1/s)) + z), x̂ = (q − z) · s, in float32. */
export function fakeQuantValue(x: number, qmin: number, qmax: number, scale: number, zeroPoint: number): number {
  const f32 = Math.fround;
  const q = Math.min(Math.max(f32(roundHalfEven(f32(x * f32(1 / scale))) + zeroPoint), qmin), qmax);
  return f32(f32(q - zeroPoint) * scale);
}

/** Index → its channel along `axis` of a row-major tensor of `shape`. */
function channels(shape: readonly number[], axis: number): { count: number; of: (i: number) => number } {
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const count = shape[axis]!;
  return { count, of: (i) => Math.floor(i / inner) % count };
}

/** Symmetric round-to-nearest, one scale per index along `axis`: L = 2^(b−1) − 1, s = absmax / L, ŵ = clamp(round(w/s), ±L)·s. */
export function naiveSymmetricPerChannel(values: Float32Array, shape: readonly number[], axis: number, bits: number): Float32Array {
  const levels = 2 ** (bits - 1) - 1;
  const channel = channels(shape, axis);
  const absMax = new Float64Array(channel.count);
  values.forEach((v, i) => (absMax[channel.of(i)] = Math.max(absMax[channel.of(i)]!, Math.abs(v))));
  return values.map((v, i) => {
    const scale = absMax[channel.of(i)]! / levels;
    return scale === 0 ? 0 : Math.max(-levels, Math.min(levels, roundHalfEven(v / scale))) * scale;
  });
}

/**
 * Asymmetric round-to-nearest (QLLM-Eval's), one scale and zero point per index along `axis`: L = 2^b − 1,
 * s = (max − min) / L (|c| / L for a constant channel c ≠ 0, 1 for an all-zero one), z = clamp(round(−min / s), 0, L),
 * q = clamp(round(w / s) + z, 0, L).
 */
export function naiveAsymmetricCodes(data: Float32Array, shape: readonly number[], axis: number, bits: number) {
  const top = 2 ** bits - 1;
  const channel = channels(shape, axis);
  const channelOf = channel.of;
  const min = new Float64Array(channel.count).fill(Infinity);
  const max = new Float64Array(channel.count).fill(-Infinity);
  for (let i = 0; i < data.length; i++) {
    min[channelOf(i)] = Math.min(min[channelOf(i)]!, data[i]!);
    max[channelOf(i)] = Math.max(max[channelOf(i)]!, data[i]!);
  }
  const clamp = (q: number) => Math.min(top, Math.max(0, q));
  const scales = Float64Array.from(min, (low, c) => (max[c]! > low ? (max[c]! - low) / top : max[c] !== 0 ? Math.abs(max[c]!) / top : 1));
  const zeroPoints = Float64Array.from(min, (low, c) => clamp(roundHalfEven(-low / scales[c]!)));
  const codes = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) codes[i] = clamp(roundHalfEven(data[i]! / scales[channelOf(i)]!) + zeroPoints[channelOf(i)]!);
  return { codes, scales, zeroPoints, channelOf };
}

/** The asymmetric quantizer's dequantized weights: ŵ = (q − z) · s. */
export function naiveAsymmetricPerChannel(values: Float32Array, shape: readonly number[], axis: number, bits: number): Float32Array {
  const { codes, scales, zeroPoints, channelOf } = naiveAsymmetricCodes(values, shape, axis, bits);
  return values.map((_, i) => (codes[i]! - zeroPoints[channelOf(i)]!) * scales[channelOf(i)]!);
}
