// Diffusion timesteps: which input carries the timestep, which timesteps to analyze, and feeds with one filled in.
import type { ValueInfo } from '../../protocol/records';
import { quote } from '../errors';
import { numElements } from '../model/tensor';
import { allocate, floatToHalfBits } from './ndarray';
import { FEED_DTYPES, type FeedDType, type Feeds, type FeedTensor } from './types';

/** A tensor of `shape` with every element `value` (rounded for integer dtypes; nonzero → true for BOOL). */
export function filledTensor(dtype: FeedDType, shape: number[], value: number): FeedTensor {
  const data = allocate(dtype, numElements(shape));
  switch (dtype) {
    case 'F32':
    case 'F64':
      (data as Float32Array | Float64Array).fill(value);
      break;
    case 'F16':
      (data as Uint16Array).fill(floatToHalfBits(value));
      break;
    case 'I64':
      (data as BigInt64Array).fill(BigInt(Math.round(value)));
      break;
    case 'BOOL':
      (data as Uint8Array).fill(value !== 0 ? 1 : 0);
      break;
    default:
      (data as Int32Array | Int8Array | Uint8Array).fill(Math.round(value));
  }
  return { dtype, shape, data };
}

/**
 * The feeds with the timestep input `input` set to `t` in the input's dtype. Its shape is that of the feed it
 * replaces; without one, the model's shape with named or unknown dims taken as the batch size of the other feeds
 * (the leading dim of the first feed of rank ≥ 1): [batch], [] and [batch, 1] all work. The other feeds are shared.
 */
export function withTimestep(feeds: Feeds, input: string, t: number, inputInfo: ValueInfo): Feeds {
  const dtype = inputInfo.dtype as FeedDType;
  if (!FEED_DTYPES.includes(dtype) || dtype === 'BOOL') {
    throw new RangeError(`timestep input ${quote(input)} has dtype ${inputInfo.dtype}, which cannot hold a timestep`);
  }
  if (!Number.isFinite(t)) throw new RangeError(`timestep ${t} is not a finite number`);
  let shape = feeds[input]?.shape;
  if (!shape) {
    const batch = Object.values(feeds).find((f) => f.shape.length > 0)?.shape[0] ?? 1;
    shape = inputInfo.shape.map((d) => (typeof d === 'number' ? d : batch));
  }
  return { ...feeds, [input]: filledTensor(dtype, shape.slice(), t) };
}

/** `count` integer timesteps from `max` down to 0, evenly spaced and rounded (the order samplers visit them). */
export function evenlySpacedTimesteps(count: number, max = 999): number[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`timestep count must be a positive integer (got ${count})`);
  if (!Number.isInteger(max) || max < 0) throw new RangeError(`largest timestep must be a non-negative integer (got ${max})`);
  if (count > max + 1) throw new RangeError(`${count} distinct integer timesteps do not fit in 0..${max}`);
  if (count === 1) return [max];
  // Spacing max/(count-1) ≥ 1 keeps rounded values distinct.
  return Array.from({ length: count }, (_, i) => Math.round((max * (count - 1 - i)) / (count - 1)));
}

const TIMESTEP_NAMES = /^(t|ts|time|times|timestep|timesteps|time_step|time_steps|sigma|sigmas|noise_level|noise_levels)$/i;

/**
 * The model input that carries the diffusion timestep: a numeric input of rank ≤ 1 (or [batch, 1]) whose name is
 * t, timestep(s), time, sigma(s) or noise_level(s).
 */
export function detectTimestepInput(inputs: ValueInfo[]): string | undefined {
  return inputs.find((input) => {
    const numeric = FEED_DTYPES.includes(input.dtype as FeedDType) && input.dtype !== 'BOOL';
    const { shape } = input;
    const small = shape.length <= 1 || (shape.length === 2 && shape[1] === 1);
    return numeric && small && TIMESTEP_NAMES.test(input.name);
  })?.name;
}
