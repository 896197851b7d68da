// Checkpoint files for the tests that feed NaN and infinite weights through the readers: safetensors with F32 and F16
// tensors, written byte by byte here (float16 by its bit layout, independent of the engine's decoder).
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import { seededRandom } from './naiveWeightStats';

/** float16 bits of a value that float16 holds exactly (normal or zero), or of NaN / ±Infinity. */
export function halfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  const exponent = Math.floor(Math.log2(a));
  const mantissa = (a / 2 ** exponent - 1) * 1024;
  assert.ok(Number.isInteger(mantissa) && exponent >= -14 && exponent <= 15, `${x} is not an exact float16`);
  return sign | ((exponent + 15) << 10) | mantissa;
}

export interface FileTensor {
  dtype: 'F32' | 'F16';
  shape: number[];
  values: Float32Array;
}

export function writeSafetensors(file: string, tensors: Record<string, FileTensor>): void {
  const header: Record<string, unknown> = {};
  const blobs: Buffer[] = [];
  let offset = 0;
  for (const [name, { dtype, shape, values }] of Object.entries(tensors)) {
    const blob = Buffer.alloc(values.length * (dtype === 'F32' ? 4 : 2));
    values.forEach((v, i) => (dtype === 'F32' ? blob.writeFloatLE(v, i * 4) : blob.writeUInt16LE(halfBits(v), i * 2)));
    header[name] = { dtype, shape, data_offsets: [offset, offset + blob.length] };
    offset += blob.length;
    blobs.push(blob);
  }
  const json = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8, ' '));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([length, json, ...blobs]));
}

/** Values float16 holds exactly: multiples of 1/256 in [−2, 2]. */
export function halfExact(count: number, seed: number): Float32Array {
  const random = seededRandom(seed);
  return Float32Array.from({ length: count }, () => Math.round((random() * 4 - 2) * 256) / 256);
}
