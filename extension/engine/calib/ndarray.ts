// Arrays read from calibration files: typed arrays from little-endian bytes, slices along an axis, C-order copies of
// Fortran-order data, the dtype conversions calibration allows, and float → half-precision bits.
import { decodeHalfWords, LITTLE_ENDIAN_HOST, numElements } from '../model/tensor';
import type { FeedData, FeedDType, FeedTensor } from './types';

/** What a file may store: every feed dtype, plus bfloat16 (widened to float32 on load, exactly). */
export type StoredDType = FeedDType | 'BF16';

export interface StoredArray {
  dtype: StoredDType;
  shape: number[];
  data: FeedData;
}

export const ITEM_BYTES: Readonly<Record<StoredDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I8: 1, U8: 1, BOOL: 1,
};

/** numpy's names, for messages users recognise. */
export const NUMPY_NAMES: Readonly<Record<StoredDType, string>> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16',
  I64: 'int64', I32: 'int32', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};

/** A typed array over a copy of `bytes`, which hold `count` little-endian elements of `dtype`. */
export function fromLittleEndian(bytes: Uint8Array, dtype: StoredDType, count: number): FeedData {
  const size = ITEM_BYTES[dtype];
  // A fresh, aligned copy: `bytes` may be a Buffer, whose slice() would be a view into a shared pool.
  const copy = new Uint8Array(count * size);
  copy.set(bytes.subarray(0, count * size));
  if (!LITTLE_ENDIAN_HOST && size > 1) {
    for (let i = 0; i < copy.length; i += size) copy.subarray(i, i + size).reverse();
  }
  const buffer = copy.buffer;
  switch (dtype) {
    case 'F64': return new Float64Array(buffer, 0, count);
    case 'F32': return new Float32Array(buffer, 0, count);
    case 'F16':
    case 'BF16': return new Uint16Array(buffer, 0, count);
    case 'I64': return new BigInt64Array(buffer, 0, count);
    case 'I32': return new Int32Array(buffer, 0, count);
    case 'I8': return new Int8Array(buffer, 0, count);
    case 'U8': return copy;
    case 'BOOL':
      for (let i = 0; i < count; i++) copy[i] = copy[i] !== 0 ? 1 : 0;
      return copy;
  }
}

/** An empty typed array of the right class for `dtype`. */
export function allocate(dtype: FeedDType, count: number): FeedData {
  switch (dtype) {
    case 'F64': return new Float64Array(count);
    case 'F32': return new Float32Array(count);
    case 'F16': return new Uint16Array(count);
    case 'I64': return new BigInt64Array(count);
    case 'I32': return new Int32Array(count);
    case 'I8': return new Int8Array(count);
    case 'U8':
    case 'BOOL': return new Uint8Array(count);
  }
}

/** Generic element access across typed-array classes (numbers and bigints alike). */
type AnyArray = { [index: number]: number | bigint; length: number };

/** C-order copy of Fortran-order (column-major) data of `shape`. */
export function fortranToC(data: FeedData, shape: number[]): FeedData {
  const rank = shape.length;
  const n = data.length;
  if (rank < 2 || n === 0) return data;
  const out = data.slice() as FeedData;
  const input = data as unknown as AnyArray;
  const output = out as unknown as AnyArray;
  // Column-major strides: axis 0 varies fastest.
  const stride = new Array<number>(rank);
  stride[0] = 1;
  for (let axis = 1; axis < rank; axis++) stride[axis] = stride[axis - 1] * shape[axis - 1];
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  for (let c = 0; c < n; c++) {
    output[c] = input[source];
    // Advance the C-order multi-index, last axis fastest, keeping the column-major offset in step.
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]++;
      source += stride[axis];
      if (index[axis] < shape[axis]) break;
      source -= shape[axis] * stride[axis];
      index[axis] = 0;
    }
  }
  return out;
}

/** Rows [start, start + rows) along `axis`, copied. */
export function sliceAxis(tensor: FeedTensor, axis: number, start: number, rows: number): FeedTensor {
  const { shape, data } = tensor;
  const outer = numElements(shape.slice(0, axis));
  const inner = numElements(shape.slice(axis + 1));
  const block = rows * inner;
  const out = allocate(tensor.dtype, outer * block);
  for (let o = 0; o < outer; o++) {
    const from = (o * shape[axis] + start) * inner;
    (out as Uint8Array).set((data as Uint8Array).subarray(from, from + block), o * block);
  }
  const outShape = shape.slice();
  outShape[axis] = rows;
  return { dtype: tensor.dtype, shape: outShape, data: out };
}

/** Conversions done on load without asking: numpy's float64 and int32 defaults, and exact widenings of halves. */
const CONVERSIONS: ReadonlySet<string> = new Set(['F64>F32', 'I32>I64', 'F16>F32', 'BF16>F32']);

export function canConvert(from: StoredDType, to: FeedDType): boolean {
  return from === to || CONVERSIONS.has(`${from}>${to}`);
}

/** The array as `to`; `canConvert(array.dtype, to)` must hold. */
export function convert(array: StoredArray, to: FeedDType): FeedTensor {
  const { dtype, shape, data } = array;
  if (dtype === to) return { dtype: to, shape, data };
  if (to === 'F32' && (dtype === 'F16' || dtype === 'BF16')) {
    return { dtype: to, shape, data: decodeHalfWords(data as Uint16Array, dtype) };
  }
  if (to === 'F32' && dtype === 'F64') return { dtype: to, shape, data: new Float32Array(data as Float64Array) };
  if (to === 'I64' && dtype === 'I32') {
    const source = data as Int32Array;
    const out = new BigInt64Array(source.length);
    for (let i = 0; i < source.length; i++) out[i] = BigInt(source[i]);
    return { dtype: to, shape, data: out };
  }
  throw new RangeError(`no conversion from ${dtype} to ${to}`);
}

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** IEEE half-precision bits of `value`, rounded to nearest even (as numpy's astype(float16) does). */
export function floatToHalfBits(value: number): number {
  f32[0] = value;
  const x = f32Bits[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with its implicit bit into place, rounding to nearest even.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    const rounded = rest > midpoint || (rest === midpoint && (half & 1) === 1) ? half + 1 : half;
    return sign | rounded;
  }
  const half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // Rounding may carry into the exponent, which is still the right half (up to infinity).
  const rounded = rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half;
  return sign | rounded;
}
