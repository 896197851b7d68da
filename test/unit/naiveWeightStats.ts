// Independent, deliberately plain float64 reference for the weight-statistics tests: explicit transposes, division by
// the scale, an explicit clamp and a tie check written out, one statistic per loop. Shares no code with the engine.
// NaN and ±Infinity are left out of every statistic here, each loop skipping them itself: a quantization group keeps
// its positions, and its scale, signal and error come from its finite members.
import { roundHalfEven } from './naiveQuant';

/** Seeded uniform [0, 1) generator (mulberry32), so test data is the same on every run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` values uniform in [−1, 1), from seededRandom(seed). */
export function uniformSigned(count: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => random() * 2 - 1);
}

export function gaussian(count: number, seed: number, std = 1): Float32Array {
  const random = seededRandom(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = 1 - random();
    const v = random();
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}

/**
 * channels[c] = the elements whose index on `channelAxis` is c, in storage order of the other axes (a transposed
 * copy built one element at a time from its multi-index). Rank below 2: one channel.
 */
export function channelsOf(data: ArrayLike<number>, shape: number[], channelAxis: number): number[][] {
  if (shape.length < 2) return [Array.from(data)];
  const channels: number[][] = Array.from({ length: shape[channelAxis] }, () => []);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < data.length; flat++) {
    channels[index[channelAxis]].push(data[flat]);
    for (let axis = shape.length - 1; axis >= 0; axis--) {
      if (++index[axis] < shape[axis]) break;
      index[axis] = 0;
    }
  }
  return channels;
}

/** Fake-quantized copies of every channel: one scale per `groupSize` consecutive values (null: whole channel). */
export function naiveQuantizeChannels(channels: number[][], bits: number, groupSize: number | null): number[][] {
  const levels = 2 ** (bits - 1) - 1;
  return channels.map((values) => {
    const out: number[] = [];
    const size = groupSize ?? Math.max(values.length, 1);
    for (let start = 0; start < values.length; start += size) {
      const group = values.slice(start, start + size);
      let absMax = 0;
      for (const w of group) if (Number.isFinite(w)) absMax = Math.max(absMax, Math.abs(w));
      const scale = absMax / levels;
      for (const w of group) {
        if (!Number.isFinite(w)) {
          out.push(w);
          continue;
        }
        if (scale === 0) {
          out.push(0);
          continue;
        }
        const q = Math.min(levels, Math.max(-levels, roundHalfEven(w / scale)));
        out.push(q * scale);
      }
    }
    return out;
  });
}

/** Over the pairs whose reference value is finite. */
export function naiveSqnrDb(reference: number[], approx: number[]): number {
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < reference.length; i++) {
    if (!Number.isFinite(reference[i])) continue;
    signal += reference[i] ** 2;
    noise += (reference[i] - approx[i]) ** 2;
  }
  return 10 * Math.log10(signal / noise);
}

export function naiveQuantSqnr(data: ArrayLike<number>, shape: number[], channelAxis: number, bits: number, groupSize: number | null): number {
  const channels = channelsOf(data, shape, channelAxis);
  const quantized = naiveQuantizeChannels(channels, bits, groupSize);
  return naiveSqnrDb(channels.flat(), quantized.flat());
}

export interface NaiveMoments {
  mean: number;
  std: number;
  kurtosis: number;
  min: number;
  max: number;
}

/** Moments of the finite values. */
export function naiveMoments(all: ArrayLike<number>): NaiveMoments {
  const data = finiteValues(all);
  const n = data.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += data[i];
  const mean = sum / n;
  let m2 = 0;
  for (let i = 0; i < n; i++) m2 += (data[i] - mean) ** 2;
  let m4 = 0;
  for (let i = 0; i < n; i++) m4 += (data[i] - mean) ** 4;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    min = Math.min(min, data[i]);
    max = Math.max(max, data[i]);
  }
  m2 /= n;
  m4 /= n;
  return { mean, std: Math.sqrt(m2), kurtosis: m4 / (m2 * m2) - 3, min, max };
}

/** Bin i holds [min + i·w, min + (i+1)·w), the last bin also max; found by walking the edges. Finite values only. */
export function naiveHistogram(data: ArrayLike<number>, bins: number, min: number, max: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  const width = (max - min) / bins;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) continue;
    let bin = 0;
    while (bin < bins - 1 && data[i] >= min + (bin + 1) * width) bin++;
    counts[bin]++;
  }
  return counts;
}

export function naiveChannelAbsMax(data: ArrayLike<number>, shape: number[], channelAxis: number): { min: number; median: number; max: number } {
  const absMax = channelsOf(data, shape, channelAxis).map((values) => finiteValues(values).reduce((m, w) => Math.max(m, Math.abs(w)), 0));
  absMax.sort((a, b) => a - b);
  const mid = Math.floor(absMax.length / 2);
  const median = absMax.length % 2 === 1 ? absMax[mid] : (absMax[mid - 1] + absMax[mid]) / 2;
  return { min: absMax[0], median, max: absMax[absMax.length - 1] };
}

export function finiteValues(data: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < data.length; i++) if (Number.isFinite(data[i])) out.push(data[i]);
  return out;
}

export function naiveNonFiniteCounts(data: ArrayLike<number>): { nan: number; posInf: number; negInf: number } {
  let nan = 0;
  let posInf = 0;
  let negInf = 0;
  for (let i = 0; i < data.length; i++) {
    if (Number.isNaN(data[i])) nan++;
    if (data[i] === Infinity) posInf++;
    if (data[i] === -Infinity) negInf++;
  }
  return { nan, posInf, negInf };
}
