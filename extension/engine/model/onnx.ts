// ONNX models: decode the protobuf, summarize the graph, index stored tensors (initializers and Constant-node values,
// in the file or in external data files beside it) and read them on demand.
import * as fs from 'fs';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import type { Dim, DType, ModelSummary, ValueInfo } from '../../protocol/records';
import { ModelError, quote } from '../errors';
import { SafeFolder, type ResolvedFile } from '../safePath';
import { onnxLayers, type TensorInfo } from './layers';
import {
  decodeHalfWords,
  decodeToF32,
  dtypeByteSize,
  dtypeFromOnnx,
  fileAccessError,
  isNumericDType,
  numElements,
  readByteRange,
} from './tensor';
import { intValue as toNumber, isStandardDomain, type Int64 } from './protoValues';
import type { OpenedModel } from './types';

/** protobuf messages cannot exceed 2 GiB; bigger models keep their weights in external data files. */
const MAX_PROTO_BYTES = 2 ** 31 - 1;

/** Reads and decodes an ONNX file. Tensor raw_data fields are views of the file's bytes. */
export async function loadOnnxModel(filePath: string): Promise<onnx.ModelProto> {
  const file = path.resolve(filePath);
  const stat = await statModelFile(file);
  return decodeOnnx(file, stat.size);
}

/** Stats a model file, refusing what is missing, a directory or not a regular file. */
export async function statModelFile(file: string): Promise<fs.Stats> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch (err) {
    throw fileAccessError(file, err);
  }
  if (stat.isDirectory()) throw new ModelError(file, 'is a directory, not a model file');
  if (!stat.isFile()) throw new ModelError(file, 'is not a regular file');
  return stat;
}

async function decodeOnnx(file: string, size: number): Promise<onnx.ModelProto> {
  if (size > MAX_PROTO_BYTES) {
    throw new ModelError(file, 'not a valid ONNX model (over 2 GiB; models this large keep weights in external data files)');
  }
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (err) {
    throw fileAccessError(file, err);
  }
  let model: onnx.ModelProto;
  try {
    // A plain Uint8Array view, not the Buffer: protobufjs would call the deprecated `new Buffer(0)` for empty fields.
    model = onnx.ModelProto.decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    throw new ModelError(file, `not a valid ONNX model (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!model.graph) throw new ModelError(file, 'not a valid ONNX model (no graph)');
  return model;
}

/** Where a stored tensor's bytes are. */
interface ExternalSource {
  kind: 'external';
  /** Real path of the external data file. */
  file: string;
  offset: number;
  length: number;
}
type TensorSource = { kind: 'proto'; tensor: onnx.ITensorProto } | ExternalSource;

interface StoredTensor extends TensorInfo {
  name: string;
  numel: number;
  bytes: number;
  source: TensorSource;
  /** Why the tensor cannot be read, when it cannot. */
  problem?: string;
}

/** Typed proto field that holds a tensor's values when it has no raw_data (onnx.proto3, TensorProto). */
function typedValues(tensor: onnx.ITensorProto, dtype: DType): ArrayLike<unknown> | undefined {
  switch (dtype) {
    case 'F32':
      return tensor.floatData ?? undefined;
    case 'F64':
      return tensor.doubleData ?? undefined;
    case 'I64':
      return tensor.int64Data ?? undefined;
    case 'U32':
    case 'U64':
      return tensor.uint64Data ?? undefined;
    case 'STRING':
      return tensor.stringData ?? undefined;
    case 'OTHER':
      return undefined;
    default:
      return tensor.int32Data ?? undefined;
  }
}

function decodeTypedValues(tensor: onnx.ITensorProto, dtype: DType): Float32Array {
  switch (dtype) {
    case 'F32':
      return Float32Array.from(tensor.floatData ?? []);
    case 'F64':
      return Float32Array.from(tensor.doubleData ?? []);
    case 'I64':
      return Float32Array.from(tensor.int64Data ?? [], toNumber);
    case 'U32':
    case 'U64':
      return Float32Array.from(tensor.uint64Data ?? [], toNumber);
    case 'F16':
    case 'BF16':
      // 16-bit patterns are stored in the low half of int32_data entries; Uint16Array keeps exactly those bits.
      return decodeHalfWords(Uint16Array.from(tensor.int32Data ?? []), dtype);
    default:
      return Float32Array.from(tensor.int32Data ?? []);
  }
}

function readDims(file: string, name: string, dims: Int64[] | null | undefined): number[] {
  const shape = (dims ?? []).map(toNumber);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || !Number.isSafeInteger(numElements(shape))) {
    throw new ModelError(file, `tensor ${quote(name)} has invalid dimensions [${shape.join(', ')}]`);
  }
  return shape;
}

/** External data locations resolve inside the model's folder; any that leads outside it is refused. */
function externalLocations(modelFile: string): SafeFolder {
  return new SafeFolder(modelFile, {
    what: 'external data location',
    fileWhat: 'external data file',
    folderName: "the model's folder",
  });
}

function parseOffset(file: string, name: string, key: string, text: string): number {
  const value = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new ModelError(file, `tensor ${quote(name)} has an invalid external data ${key} ${quote(text)}`);
  }
  return value;
}

async function externalSource(
  file: string,
  name: string,
  tensor: onnx.ITensorProto,
  expectedBytes: number,
  locations: SafeFolder,
): Promise<{ source: ExternalSource; external: ResolvedFile; problem?: string }> {
  const entries = new Map((tensor.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location');
  if (location === undefined) throw new ModelError(file, `tensor ${quote(name)} has external data without a location`);
  const external = await locations.resolve(location);
  const offsetText = entries.get('offset');
  const lengthText = entries.get('length');
  const offset = offsetText === undefined ? 0 : parseOffset(file, name, 'offset', offsetText);
  const length = lengthText === undefined ? expectedBytes : parseOffset(file, name, 'length', lengthText);
  if (offset + length > external.size) {
    throw new ModelError(
      file,
      `tensor ${quote(name)}: bytes ${offset}–${offset + length} are past the end of external data file ` +
        `${quote(location)} (${external.size} bytes)`,
    );
  }
  const source: ExternalSource = { kind: 'external', file: external.real, offset, length };
  const problem = isNumericDType(dtypeFromOnnx(tensor.dataType ?? 0)) && length !== expectedBytes
    ? `stores ${length} bytes, expected ${expectedBytes}`
    : undefined;
  return { source, external, problem };
}

function inMemoryProblem(tensor: onnx.ITensorProto, dtype: DType, numel: number, expectedBytes: number): string | undefined {
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    if (isNumericDType(dtype) && raw.length !== expectedBytes) return `stores ${raw.length} bytes, expected ${expectedBytes}`;
    return undefined;
  }
  const values = typedValues(tensor, dtype);
  const count = values?.length ?? 0;
  if (count === numel || !isNumericDType(dtype)) return undefined;
  return count === 0 ? 'has no data' : `stores ${count} values, expected ${numel}`;
}

/** Initializers and Constant-node values of the main graph, by name. */
async function collectTensors(
  file: string,
  graph: onnx.IGraphProto,
  locations: SafeFolder,
  warnings: string[],
): Promise<{ tensors: Map<string, StoredTensor>; externalFiles: string[] }> {
  const tensors = new Map<string, StoredTensor>();
  const externalFiles = new Set<string>();
  const duplicates: string[] = [];
  let sparse = graph.sparseInitializer?.length ?? 0;

  const add = async (name: string, tensor: onnx.ITensorProto): Promise<void> => {
    if (tensors.has(name)) {
      duplicates.push(name);
      return;
    }
    const dtype = dtypeFromOnnx(tensor.dataType ?? 0);
    const shape = readDims(file, name, tensor.dims);
    const numel = numElements(shape);
    const expectedBytes = numel * dtypeByteSize(dtype);
    let source: TensorSource = { kind: 'proto', tensor };
    let problem: string | undefined;
    let bytes = expectedBytes;
    if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const external = await externalSource(file, name, tensor, expectedBytes, locations);
      source = external.source;
      problem = external.problem;
      externalFiles.add(external.external.relative);
      if (!isNumericDType(dtype)) bytes = external.source.length;
    } else {
      problem = inMemoryProblem(tensor, dtype, numel, expectedBytes);
      if (!isNumericDType(dtype)) bytes = tensor.rawData?.length ?? 0;
    }
    tensors.set(name, { name, dtype, shape, numel, bytes, source, ...(problem ? { problem } : {}) });
  };

  for (const initializer of graph.initializer ?? []) await add(initializer.name ?? '', initializer);
  for (const node of graph.node ?? []) {
    if (node.opType !== 'Constant' || !isStandardDomain(node.domain)) continue;
    const output = node.output?.[0];
    for (const attribute of node.attribute ?? []) {
      if (attribute.name === 'value' && attribute.t && output) await add(output, attribute.t);
      if (attribute.name === 'sparse_value') sparse++;
    }
  }

  if (duplicates.length > 0) {
    warnings.push(`${duplicates.length} stored tensor name(s) appear more than once; the first is used: ${listNames(duplicates)}`);
  }
  if (sparse > 0) warnings.push(`${sparse} sparse tensor(s) are not read and not counted`);
  const broken = [...tensors.values()].filter((t) => t.problem);
  if (broken.length > 0) {
    warnings.push(
      `${broken.length} tensor(s) cannot be read: ` + broken.slice(0, 5).map((t) => `${quote(t.name)} ${t.problem}`).join('; ') +
        (broken.length > 5 ? '; …' : ''),
    );
  }
  const undecoded = [...tensors.values()].filter((t) => t.dtype === 'OTHER');
  if (undecoded.length > 0) {
    warnings.push(`${undecoded.length} tensor(s) have element types QuantLens does not decode: ${listNames(undecoded.map((t) => t.name))}`);
  }
  return { tensors, externalFiles: [...externalFiles] };
}

function listNames(names: string[]): string {
  return names.slice(0, 5).map(quote).join(', ') + (names.length > 5 ? ', …' : '');
}

function valueInfo(value: onnx.IValueInfoProto): ValueInfo {
  const name = value.name ?? '';
  const tensorType = value.type?.tensorType ?? value.type?.sparseTensorType;
  if (!tensorType) return { name, dtype: 'OTHER', shape: [] };
  const shape: Dim[] = (tensorType.shape?.dim ?? []).map((dim) => {
    if (dim.dimValue !== null && dim.dimValue !== undefined) {
      const size = toNumber(dim.dimValue);
      return Number.isSafeInteger(size) && size >= 0 ? size : null;
    }
    return dim.dimParam ? dim.dimParam : null;
  });
  return { name, dtype: dtypeFromOnnx(tensorType.elemType ?? 0), shape };
}

/** Node count and op histogram over the graph and every subgraph (If/Loop/Scan bodies). */
function countOps(graph: onnx.IGraphProto): { nodeCount: number; histogram: Map<string, number> } {
  const histogram = new Map<string, number>();
  let nodeCount = 0;
  const pending: onnx.IGraphProto[] = [graph];
  for (let current = pending.pop(); current; current = pending.pop()) {
    for (const node of current.node ?? []) {
      nodeCount++;
      const op = isStandardDomain(node.domain) ? node.opType ?? '' : `${node.domain}.${node.opType ?? ''}`;
      histogram.set(op, (histogram.get(op) ?? 0) + 1);
      for (const attribute of node.attribute ?? []) {
        if (attribute.g) pending.push(attribute.g);
        for (const sub of attribute.graphs ?? []) pending.push(sub);
      }
    }
  }
  return { nodeCount, histogram };
}

class OnnxModel implements OpenedModel {
  private readonly handles = new Map<string, Promise<fs.promises.FileHandle>>();
  private closed = false;

  constructor(
    readonly summary: ModelSummary,
    readonly layers: OpenedModel['layers'],
    private readonly tensors: Map<string, StoredTensor>,
  ) {}

  async readTensorF32(name: string): Promise<Float32Array> {
    if (this.closed) throw new Error('readTensorF32 after close()');
    const file = this.summary.path;
    const tensor = this.tensors.get(name);
    if (!tensor) throw new ModelError(file, `no stored tensor named ${quote(name)}`);
    if (tensor.problem) throw new ModelError(file, `tensor ${quote(name)} ${tensor.problem}`);
    if (!isNumericDType(tensor.dtype)) {
      throw new ModelError(file, `tensor ${quote(name)} has element type ${tensor.dtype}, which cannot be read as numbers`);
    }
    const source = tensor.source;
    if (source.kind === 'external') {
      const handle = await this.handle(source.file);
      return decodeToF32(await readByteRange(handle, source.file, source.offset, source.length), tensor.dtype);
    }
    const raw = source.tensor.rawData;
    if (raw && raw.length > 0) {
      const values = decodeToF32(raw, tensor.dtype);
      // An F32 view would alias the model's bytes: hand out a copy the caller may modify.
      return values.buffer === raw.buffer ? values.slice() : values;
    }
    return decodeTypedValues(source.tensor, tensor.dtype);
  }

  private handle(file: string): Promise<fs.promises.FileHandle> {
    let handle = this.handles.get(file);
    if (!handle) {
      handle = fs.promises.open(file, 'r').catch((err: unknown) => {
        this.handles.delete(file);
        throw fileAccessError(file, err, 'external data file');
      });
      this.handles.set(file, handle);
    }
    return handle;
  }

  async close(): Promise<void> {
    this.closed = true;
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map(async (h) => (await h.catch(() => undefined))?.close()));
  }
}

/** Opens an ONNX model: summary, layer index, and tensor reads (external data by byte range). */
export async function openOnnx(filePath: string): Promise<OpenedModel> {
  const file = path.resolve(filePath);
  const stat = await statModelFile(file);
  const model = await decodeOnnx(file, stat.size);
  const graph = model.graph as onnx.IGraphProto;
  const warnings: string[] = [];
  const { tensors, externalFiles } = await collectTensors(file, graph, externalLocations(file), warnings);

  const readable = new Map<string, TensorInfo>();
  for (const t of tensors.values()) if (!t.problem && isNumericDType(t.dtype)) readable.set(t.name, t);
  const layers = onnxLayers(graph, readable);

  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const { nodeCount, histogram } = countOps(graph);
  const producer = [model.producerName, model.producerVersion].filter(Boolean).join(' ');
  const irVersion = toNumber(model.irVersion);
  let parameterCount = 0;
  let parameterBytes = 0;
  for (const t of tensors.values()) {
    parameterCount += t.numel;
    parameterBytes += t.bytes;
  }

  const summary: ModelSummary = {
    path: file,
    fileName: path.basename(file),
    format: 'onnx',
    fileBytes: stat.size,
    ...(irVersion > 0 ? { irVersion } : {}),
    ...(producer ? { producer } : {}),
    opsets: (model.opsetImport ?? []).map((o) => ({
      domain: isStandardDomain(o.domain) ? 'ai.onnx' : (o.domain as string),
      version: toNumber(o.version),
    })),
    inputs: (graph.input ?? []).filter((v) => !initializerNames.has(v.name ?? '')).map(valueInfo),
    outputs: (graph.output ?? []).map(valueInfo),
    // fromEntries defines own properties, so a hostile op name such as "__proto__" stays a plain key.
    opHistogram: Object.fromEntries(histogram),
    nodeCount,
    tensorCount: tensors.size,
    parameterCount,
    parameterBytes,
    layerCount: layers.length,
    layerParameterCount: layers.reduce((sum, l) => sum + l.params, 0),
    externalDataFiles: externalFiles,
    metadata: Object.fromEntries((model.metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? ''])),
    warnings,
  };
  return new OnnxModel(summary, layers, tensors);
}
