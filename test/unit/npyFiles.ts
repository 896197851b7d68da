// NumPy .npy files for tests, written from the format's description (magic, version, header length, a dict padded
// with spaces to a multiple of 64, then the data), independent of the engine's reader.

export type Typed = Float32Array | Float64Array | Int32Array | BigInt64Array | Int8Array | Uint8Array | Uint16Array;

export function bytesOf(values: Typed): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** A .npy file of `data` (raw bytes) with dtype `descr` (e.g. '<f4', '<i8') and `shape`. */
export function npy(descr: string, shape: number[], data: Uint8Array, options: { fortran?: boolean; version?: 1 | 2 | 3 } = {}): Buffer {
  const version = options.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': ${options.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const prefix = version === 1 ? 10 : 12;
  while ((prefix + dict.length + 1) % 64 !== 0) dict += ' ';
  dict += '\n';
  const head = Buffer.alloc(prefix);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(dict.length, 8);
  else head.writeUInt32LE(dict.length, 8);
  return Buffer.concat([head, Buffer.from(dict, 'latin1'), data]);
}
