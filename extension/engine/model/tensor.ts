// Tensor element types, their sizes, decoding stored bytes to float32, and reading byte ranges from files.
import * as fs from 'fs';
import * as os from 'os';
import type { DType } from '../../protocol/records';
import { ModelError } from '../errors';

/** ONNX TensorProto.DataType numbers for the element types QuantLens reads; every other number maps to 'OTHER'. */
const ONNX_DTYPES: Readonly<Record<number, DType>> = {
  1: 'F32',
  2: 'U8',
  3: 'I8',
  4: 'U16',
  5: 'I16',
  6: 'I32',
  7: 'I64',
  8: 'STRING',
  9: 'BOOL',
  10: 'F16',
  11: 'F64',
  12: 'U32',
  13: 'U64',
  16: 'BF16',
};

export function dtypeFromOnnx(dataType: number): DType {
  return ONNX_DTYPES[dataType] ?? 'OTHER';
}

const BYTE_SIZES: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U64: 8, U32: 4, U16: 2, U8: 1,
  BOOL: 1,
  // Not fixed-size numbers: nothing QuantLens decodes.
  STRING: 0, OTHER: 0,
};

/** Bytes per element; 0 for STRING and OTHER, which have no fixed numeric layout QuantLens decodes. */
export function dtypeByteSize(dtype: DType): number {
  return BYTE_SIZES[dtype];
}

/** Whether decodeToF32 can read this dtype. */
export function isNumericDType(dtype: DType): boolean {
  return BYTE_SIZES[dtype] > 0;
}

export function isFloatDType(dtype: DType): boolean {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64';
}

/** Number of elements of a shape (1 for a scalar). */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

let f16Table: Float32Array | undefined;

/** float32 value of every IEEE half-precision bit pattern, built once on first use (256 KiB). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) table[bits] = halfBitsToNumber(bits);
  f16Table = table;
  return table;
}

function halfBitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** float32 values of 16-bit F16 or BF16 bit patterns. */
export function decodeHalfWords(words: Uint16Array, dtype: 'F16' | 'BF16'): Float32Array {
  const n = words.length;
  const out = new Float32Array(n);
  if (dtype === 'F16') {
    const table = halfTable();
    for (let i = 0; i < n; i++) out[i] = table[words[i]];
  } else {
    // bfloat16 is the top half of a float32: shift the bits up and reinterpret.
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) outBits[i] = words[i] << 16;
  }
  return out;
}

interface TypedArrayType<T> {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

/**
 * The bytes as an array of little-endian elements: a view when they are aligned for it, else a view of an aligned
 * copy; null on a big-endian host, where callers read through a DataView instead.
 */
function littleEndianArray<T>(bytes: Uint8Array, type: TypedArrayType<T>): T | null {
  if (!LITTLE_ENDIAN_HOST) return null;
  const size = type.BYTES_PER_ELEMENT;
  let source = bytes;
  if (bytes.byteOffset % size !== 0) {
    source = new Uint8Array(bytes.byteLength);
    source.set(bytes);
  }
  return new type(source.buffer, source.byteOffset, source.byteLength / size);
}

function uint16Words(bytes: Uint8Array): Uint16Array {
  const words = littleEndianArray(bytes, Uint16Array);
  if (words) return words;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint16Array.from({ length: bytes.byteLength / 2 }, (_, i) => dv.getUint16(i * 2, true));
}

/**
 * Decodes little-endian stored elements to float32. F32 returns a view of `bytes` when they are aligned (no copy);
 * every other dtype returns a new array. Throws RangeError when the byte count is not a whole number of elements or the
 * dtype has no numeric layout (STRING, OTHER); callers validate sizes first and report ModelErrors themselves.
 */
export function decodeToF32(bytes: Uint8Array, dtype: DType): Float32Array {
  const size = BYTE_SIZES[dtype];
  if (size === 0) throw new RangeError(`cannot decode ${dtype} elements as numbers`);
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  const n = bytes.byteLength / size;
  // Converting constructors (new Float32Array(typedArray)) run natively, far faster than a JS loop or Float32Array.from.
  const widen = <T extends ArrayLike<number>>(type: TypedArrayType<T>, get: (dv: DataView, i: number) => number) => {
    const values = littleEndianArray(bytes, type);
    return values ? new Float32Array(values) : viaDataView(bytes, n, get);
  };
  switch (dtype) {
    case 'F32':
      return littleEndianArray(bytes, Float32Array) ?? viaDataView(bytes, n, (dv, i) => dv.getFloat32(i * 4, true));
    case 'F16':
    case 'BF16':
      return decodeHalfWords(uint16Words(bytes), dtype);
    case 'F64':
      return widen(Float64Array, (dv, i) => dv.getFloat64(i * 8, true));
    case 'I8':
      return new Float32Array(new Int8Array(bytes.buffer, bytes.byteOffset, n));
    case 'U8':
      return new Float32Array(bytes);
    case 'BOOL': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = bytes[i] !== 0 ? 1 : 0;
      return out;
    }
    case 'I16':
      return widen(Int16Array, (dv, i) => dv.getInt16(i * 2, true));
    case 'U16':
      return widen(Uint16Array, (dv, i) => dv.getUint16(i * 2, true));
    case 'I32':
      return widen(Int32Array, (dv, i) => dv.getInt32(i * 4, true));
    case 'U32':
      return widen(Uint32Array, (dv, i) => dv.getUint32(i * 4, true));
    // 64-bit integers: high word × 2^32 + low word is exact as a double up to 2^53, and float32 rounds anyway.
    case 'I64':
      return viaDataView(bytes, n, (dv, i) => dv.getInt32(i * 8 + 4, true) * 4294967296 + dv.getUint32(i * 8, true));
    case 'U64':
      return viaDataView(bytes, n, (dv, i) => dv.getUint32(i * 8 + 4, true) * 4294967296 + dv.getUint32(i * 8, true));
    default:
      throw new RangeError(`cannot decode ${dtype} elements as numbers`);
  }
}

function viaDataView(bytes: Uint8Array, n: number, get: (dv: DataView, i: number) => number): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = get(dv, i);
  return out;
}

/** A ModelError for a failed file-system call on `file`, in words a user understands. */
export function fileAccessError(file: string, err: unknown, what = 'file'): ModelError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return new ModelError(file, `${what} not found`);
    case 'EISDIR':
      return new ModelError(file, `${what} is a directory, not a model file`);
    case 'EACCES':
    case 'EPERM':
      return new ModelError(file, `${what} cannot be read (permission denied)`);
    default:
      return new ModelError(file, `${what} cannot be read (${err instanceof Error ? err.message : String(err)})`);
  }
}

/**
 * Reads exactly `length` bytes at `position` (a plain number: offsets past 2^31 work) into a fresh, aligned buffer.
 * A short read means the file ended early: ModelError naming `file`.
 */
export async function readByteRange(
  handle: fs.promises.FileHandle,
  file: string,
  position: number,
  length: number,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(out, done, length - done, position + done));
    } catch (err) {
      throw fileAccessError(file, err);
    }
    if (bytesRead === 0) {
      throw new ModelError(file, `file ends before byte ${position + length} (read ${done} of ${length} bytes at offset ${position})`);
    }
    done += bytesRead;
  }
  return out;
}
