// Seeded synthetic inputs from the model's input specs: floats ~ N(0, 1), integers uniform in [low, high)
// (a class label by default), BOOL false. Each (input, sample) pair draws from its own stream, so adding an input or a
// sample leaves the others' values unchanged, and the same seed always gives the same bytes.
import type { Dim, ValueInfo } from '../../protocol/records';
import { ModelError, quote } from '../errors';
import { numElements } from '../model/tensor';
import { fnv1a, mulberry32 } from '../random';
import { allocate, floatToHalfBits } from './ndarray';
import type { FeedDType, FeedTensor } from './types';

/** The seed of one (input, sample) stream. */
function streamSeed(seed: number, input: string, sample: number): number {
  return fnv1a(`${seed}\u0000${input}\u0000${sample}`);
}

/** Dim names that mean "batch" wherever they are. */
const BATCH_NAMES = /^(batch|batch_size|batchsize|bs|n|b)$/i;
/** Names exporters generate for dynamic dims, taken as the batch when they are the first dim. */
const GENERATED_NAMES = /^(p2o\.DynamicDimension\.\d+|unk__\d+)$/;

function isBatchLike(dim: string | null, axis: number): boolean {
  if (dim === null) return axis === 0;
  return BATCH_NAMES.test(dim) || (axis === 0 && GENERATED_NAMES.test(dim));
}

export function formatShape(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

export interface DimValues {
  /** From the user's settings: dim names and "input[axis]" keys. */
  dims: Record<string, number>;
  /** Rows per sample for batch-like dims. */
  batch: number;
  /** Sizes already known, e.g. from calibration files. */
  known?: ReadonlyMap<string, number>;
}

/** Key of one axis of one input in the settings' dims, for dims the model leaves unnamed. */
export function axisKey(input: string, axis: number): string {
  return `${input}[${axis}]`;
}

/** dims[key] when the settings set it (own keys only: dim names come from the model file and are untrusted). */
function dimSetting(dims: Record<string, number>, key: string): number | undefined {
  return Object.hasOwn(dims, key) ? dims[key] : undefined;
}

/** The settings' size for one axis of an input: its "input[axis]" key first, then the dim's name. */
export function axisSetting(dims: Record<string, number>, input: string, axis: number, dim: Dim): number | undefined {
  return dimSetting(dims, axisKey(input, axis)) ?? (typeof dim === 'string' ? dimSetting(dims, dim) : undefined);
}

/** The size of every dim of the input; an unnamed or unknown symbolic dim is a ModelError asking to set it. */
export function resolveShape(modelFile: string, input: ValueInfo, values: DimValues): number[] {
  return input.shape.map((dim, axis) => {
    if (typeof dim === 'number') return dim;
    const value = axisSetting(values.dims, input.name, axis, dim) ?? (dim === null ? undefined : values.known?.get(dim));
    if (value !== undefined) return value;
    if (isBatchLike(dim, axis)) return values.batch;
    const where = `input ${quote(input.name)} ${formatShape(input.shape)}`;
    const key = JSON.stringify(dim ?? axisKey(input.name, axis));
    const what = dim === null ? `axis ${axis} has no size and no name` : `symbolic dim ${key} (axis ${axis}) has no size`;
    throw new ModelError(modelFile, `${where}: ${what}; set quantlens.analysis.dims (editor) or --dims (CLI), e.g. {${key}: 16}`);
  });
}

/** Whether `dims` names `key` for one of the inputs (used to warn about settings that match nothing). */
export function dimKeyUsed(inputs: readonly ValueInfo[], key: string): boolean {
  return inputs.some((input) => input.shape.some((dim, axis) => dim === key || axisKey(input.name, axis) === key));
}

/** Random values for one input of one sample. */
export function syntheticTensor(
  dtype: FeedDType,
  shape: number[],
  seed: number,
  input: string,
  sample: number,
  intRange: readonly [number, number],
): FeedTensor {
  const n = numElements(shape);
  const data = allocate(dtype, n);
  const random = mulberry32(streamSeed(seed, input, sample));
  if (dtype === 'F32' || dtype === 'F64' || dtype === 'F16') {
    const normal = new Float64Array(n);
    // Box–Muller: two uniforms give two independent N(0, 1) values; 1 − u keeps the logarithm's argument in (0, 1].
    for (let i = 0; i < n; i += 2) {
      const radius = Math.sqrt(-2 * Math.log(1 - random()));
      const angle = 2 * Math.PI * random();
      normal[i] = radius * Math.cos(angle);
      if (i + 1 < n) normal[i + 1] = radius * Math.sin(angle);
    }
    if (dtype === 'F16') for (let i = 0; i < n; i++) (data as Uint16Array)[i] = floatToHalfBits(normal[i]);
    else (data as Float32Array | Float64Array).set(normal);
  } else if (dtype !== 'BOOL') {
    const [low, high] = intRange;
    const span = high - low;
    for (let i = 0; i < n; i++) {
      const value = low + Math.floor(random() * span);
      if (dtype === 'I64') (data as BigInt64Array)[i] = BigInt(value);
      else (data as Int32Array | Int8Array | Uint8Array)[i] = value;
    }
  }
  return { dtype, shape, data };
}

/** Inclusive limits of each integer feed dtype, to refuse an intRange that would wrap. */
export const INT_LIMITS: Readonly<Partial<Record<FeedDType, [number, number]>>> = {
  I64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  I32: [-(2 ** 31), 2 ** 31 - 1],
  I8: [-128, 127],
  U8: [0, 255],
};
