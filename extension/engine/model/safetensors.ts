// safetensors checkpoints: read and validate only the JSON header, then read each tensor by byte range on demand.
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data region that data_offsets index.
import * as fs from 'fs';
import * as path from 'path';
import Ajv from 'ajv';
import type { DType, ModelSummary } from '../../protocol/records';
import { ModelError, quote } from '../errors';
import { checkpointLayers } from './layers';
import { decodeToF32, fileAccessError, numElements, readByteRange } from './tensor';
import type { OpenedModel } from './types';

/** Larger headers are refused rather than parsed (the reference implementation's limit). */
const MAX_HEADER_BYTES = 100_000_000;

/** Bits per element of every dtype the safetensors format defines, and the DType QuantLens reads it as. */
const SAFETENSORS_DTYPES: Readonly<Record<string, { bits: number; dtype: DType }>> = {
  F64: { bits: 64, dtype: 'F64' },
  F32: { bits: 32, dtype: 'F32' },
  F16: { bits: 16, dtype: 'F16' },
  BF16: { bits: 16, dtype: 'BF16' },
  I64: { bits: 64, dtype: 'I64' },
  I32: { bits: 32, dtype: 'I32' },
  I16: { bits: 16, dtype: 'I16' },
  I8: { bits: 8, dtype: 'I8' },
  U64: { bits: 64, dtype: 'U64' },
  U32: { bits: 32, dtype: 'U32' },
  U16: { bits: 16, dtype: 'U16' },
  U8: { bits: 8, dtype: 'U8' },
  BOOL: { bits: 8, dtype: 'BOOL' },
  // Defined by the format, not decoded by QuantLens.
  F8_E4M3: { bits: 8, dtype: 'OTHER' },
  F8_E5M2: { bits: 8, dtype: 'OTHER' },
  F8_E8M0: { bits: 8, dtype: 'OTHER' },
  F6_E2M3: { bits: 6, dtype: 'OTHER' },
  F6_E3M2: { bits: 6, dtype: 'OTHER' },
  F4: { bits: 4, dtype: 'OTHER' },
  C64: { bits: 64, dtype: 'OTHER' },
};

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const ajv = new Ajv({ allErrors: false });
const validateEntry = ajv.compile<HeaderEntry>({
  type: 'object',
  // Extra keys are tolerated, as the reference implementation does.
  required: ['dtype', 'shape', 'data_offsets'],
  properties: {
    dtype: { enum: Object.keys(SAFETENSORS_DTYPES) },
    shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
    data_offsets: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'integer', minimum: 0 } },
  },
});
const validateMetadata = ajv.compile<Record<string, string>>({
  type: 'object',
  additionalProperties: { type: 'string' },
});

/** One tensor of the header, validated: offsets are relative to the data region. */
export interface SafetensorsEntry {
  name: string;
  storedType: string;
  dtype: DType;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

/** Parses and checks the header; every problem is a ModelError naming the file (and the tensor). */
function parseHeader(file: string, headerBytes: Uint8Array, dataBytes: number): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new ModelError(file, 'safetensors header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw new ModelError(file, `safetensors header is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new ModelError(file, 'safetensors header is not a JSON object');
  }

  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (!validateMetadata(value)) throw new ModelError(file, '__metadata__ must map strings to strings');
      metadata = Object.fromEntries(Object.entries(value));
      continue;
    }
    const where = `tensor ${quote(name)}`;
    if (!validateEntry(value)) {
      const dtype = (value as { dtype?: unknown } | null)?.dtype;
      if (typeof dtype === 'string' && !Object.hasOwn(SAFETENSORS_DTYPES, dtype)) {
        throw new ModelError(file, `${where}: unknown dtype ${quote(dtype)}`);
      }
      throw new ModelError(file, `${where}: invalid header entry (${ajv.errorsText(validateEntry.errors, { dataVar: 'entry' })})`);
    }
    const [begin, end] = value.data_offsets;
    const numel = numElements(value.shape);
    const { bits, dtype } = SAFETENSORS_DTYPES[value.dtype];
    const expectedBits = numel * bits;
    if (!Number.isSafeInteger(expectedBits) || !Number.isSafeInteger(end)) {
      throw new ModelError(file, `${where}: shape [${value.shape.join(', ')}] is too large`);
    }
    if (end < begin) throw new ModelError(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataBytes) {
      throw new ModelError(file, `${where}: data_offsets [${begin}, ${end}] run past the data region (${dataBytes} bytes)`);
    }
    if (expectedBits % 8 !== 0 || end - begin !== expectedBits / 8) {
      throw new ModelError(
        file,
        `${where}: ${value.dtype} shape [${value.shape.join(', ')}] needs ${expectedBits / 8} bytes but data_offsets span ${end - begin}`,
      );
    }
    entries.push({ name, storedType: value.dtype, dtype, shape: value.shape, numel, begin, end });
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < entries.length; i++) {
    const previous = entries[i - 1];
    const current = entries[i];
    if (current.begin < previous.end) {
      throw new ModelError(file, `tensor ${quote(current.name)} overlaps tensor ${quote(previous.name)} in the data region`);
    }
  }
  return { entries, metadata };
}

class SafetensorsModel implements OpenedModel {
  private readonly byName: Map<string, SafetensorsEntry>;
  private closed = false;

  constructor(
    readonly summary: ModelSummary,
    readonly layers: OpenedModel['layers'],
    entries: SafetensorsEntry[],
    private readonly handle: fs.promises.FileHandle,
    private readonly dataStart: number,
  ) {
    this.byName = new Map(entries.map((e) => [e.name, e]));
  }

  async readTensorF32(name: string): Promise<Float32Array> {
    if (this.closed) throw new Error('readTensorF32 after close()');
    const file = this.summary.path;
    const entry = this.byName.get(name);
    if (!entry) throw new ModelError(file, `no tensor named ${quote(name)}`);
    if (entry.dtype === 'OTHER') {
      throw new ModelError(file, `tensor ${quote(name)} has dtype ${entry.storedType}, which QuantLens does not decode`);
    }
    const bytes = await readByteRange(this.handle, file, this.dataStart + entry.begin, entry.end - entry.begin);
    return decodeToF32(bytes, entry.dtype);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/** Opens a safetensors checkpoint, reading only its header. */
export async function openSafetensors(filePath: string): Promise<OpenedModel> {
  const file = path.resolve(filePath);
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    throw fileAccessError(file, err);
  }
  try {
    return await openWithHandle(file, handle);
  } catch (err) {
    await handle.close();
    throw err;
  }
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** File offset of the data region. */
  dataStart: number;
  fileBytes: number;
}

/** Reads and validates the header of an open safetensors file; every problem is a ModelError naming `file`. */
export async function readSafetensorsHeader(file: string, handle: fs.promises.FileHandle): Promise<SafetensorsHeader> {
  const stat = await handle.stat();
  if (stat.isDirectory()) throw new ModelError(file, 'is a directory, not a model file');
  if (!stat.isFile()) throw new ModelError(file, 'is not a regular file');
  if (stat.size < 8) throw new ModelError(file, `too short for a safetensors file (${stat.size} bytes)`);

  const lengthBytes = await readByteRange(handle, file, 0, 8);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, stat.size - 8))) {
    throw new ModelError(
      file,
      `safetensors header length ${headerLength} is impossible (file has ${stat.size} bytes; the limit is ${MAX_HEADER_BYTES})`,
    );
  }
  const headerBytes = await readByteRange(handle, file, 8, Number(headerLength));
  const dataStart = 8 + Number(headerLength);
  const { entries, metadata } = parseHeader(file, headerBytes, stat.size - dataStart);
  return { entries, metadata, dataStart, fileBytes: stat.size };
}

async function openWithHandle(file: string, handle: fs.promises.FileHandle): Promise<OpenedModel> {
  const { entries, metadata, dataStart, fileBytes } = await readSafetensorsHeader(file, handle);

  const warnings: string[] = [];
  const undecoded = entries.filter((e) => e.dtype === 'OTHER');
  if (undecoded.length > 0) {
    const types = [...new Set(undecoded.map((e) => e.storedType))].join(', ');
    warnings.push(`${undecoded.length} tensor(s) of dtype ${types} are not decoded and not listed as layers`);
  }
  const used = entries.reduce((sum, e) => sum + (e.end - e.begin), 0);
  const unused = fileBytes - dataStart - used;
  if (unused > 0) warnings.push(`${unused} bytes of the data region belong to no tensor`);

  const layers = checkpointLayers(entries);
  const summary: ModelSummary = {
    path: file,
    fileName: path.basename(file),
    format: 'safetensors',
    fileBytes,
    inputs: [],
    outputs: [],
    opHistogram: {},
    nodeCount: 0,
    tensorCount: entries.length,
    parameterCount: entries.reduce((sum, e) => sum + e.numel, 0),
    parameterBytes: used,
    layerCount: layers.length,
    layerParameterCount: layers.reduce((sum, l) => sum + l.params, 0),
    externalDataFiles: [],
    metadata,
    warnings,
  };
  return new SafetensorsModel(summary, layers, entries, handle, dataStart);
}
