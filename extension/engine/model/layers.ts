// The layer index: which stored tensors are quantizable weights, how they are used, and how they group by name.
import type { onnx } from 'onnx-proto';
import type { DType, LayerInfo } from '../../protocol/records';
import { isFloatDType, numElements } from './tensor';

/** What the layer index needs to know about a stored tensor. */
export interface TensorInfo {
  dtype: DType;
  shape: number[];
}

/** Root wrappers that carry no structure: `model.` (Hugging Face), `module.` (DataParallel), `p2o.` (paddle2onnx)... */
const WRAPPER_SEGMENTS = new Set(['model', 'module', '_orig_mod', 'base_model', 'p2o']);

/** Trailing segments that name a parameter or the exported op rather than a module. */
const PARAMETER_SEGMENT = /^(weight|bias|[wb]_\d+)$/;
const OP_SEGMENT = /^(Conv|ConvTranspose|Gemm|MatMul)(_\d+)?$/;

function singular(word: string): string {
  if (word.endsWith('ies') && word.length > 3) return `${word.slice(0, -3)}y`;
  if (/(ss|sh|ch|x)es$/.test(word)) return word.slice(0, -2);
  if (word.endsWith('s') && !word.endsWith('ss') && word.length > 1) return word.slice(0, -1);
  return word;
}

/**
 * Group path of a layer from its name: `blocks.3.attn.qkv` → ['block 3', 'attn'];
 * `model.layers.12.self_attn.q_proj.weight` → ['layer 12', 'self_attn']; `/blocks.3/attn/qkv/MatMul` →
 * ['block 3', 'attn']. A numeric segment joins the one before it ("<singular> N"); the layer's own name, a trailing
 * parameter name (`weight`, `bias`) or exported op name, and a leading wrapper such as `model` are dropped.
 */
export function groupPath(name: string): string[] {
  const groups: string[] = [];
  let previousWasName = false;
  for (const segment of name.split(/[./:]+/)) {
    if (segment === '') continue;
    if (/^\d+$/.test(segment) && previousWasName) {
      groups[groups.length - 1] = `${singular(groups[groups.length - 1])} ${segment}`;
      previousWasName = false;
    } else {
      groups.push(segment);
      previousWasName = !/^\d+$/.test(segment);
    }
  }
  while (groups.length > 1 && (PARAMETER_SEGMENT.test(groups[groups.length - 1]) || OP_SEGMENT.test(groups[groups.length - 1]))) {
    groups.pop();
  }
  groups.pop();
  while (groups.length > 0 && WRAPPER_SEGMENTS.has(groups[0])) groups.shift();
  return groups;
}

/** A stored weight found behind a node input, and for each axis of the value the node sees, the stored tensor's axis. */
interface ResolvedWeight {
  weight: string;
  storedAxis: number[];
}

/** Transpose/Cast chains longer than this are not followed (graphs are acyclic, but files are untrusted). */
const MAX_CHAIN = 32;

/** protobufjs gives int64 fields as numbers or Long objects. */
type Int64 = number | { toNumber(): number };

function intValue(value: Int64 | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

function intAttribute(node: onnx.INodeProto, name: string, fallback: number): number {
  const attribute = node.attribute?.find((a) => a.name === name);
  return attribute ? intValue(attribute.i) : fallback;
}

function transposePerm(node: onnx.INodeProto, rank: number): number[] | null {
  const attribute = node.attribute?.find((a) => a.name === 'perm');
  if (!attribute) return Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const perm = (attribute.ints ?? []).map(intValue);
  const isPermutation = perm.length === rank && perm.every((p, i) => p >= 0 && p < rank && perm.indexOf(p) === i);
  return isPermutation ? perm : null;
}

/**
 * Quantizable layers of an ONNX graph: Conv, ConvTranspose, Gemm and MatMul whose weight input is a stored floating
 * tensor of rank ≥ 2, directly or through a chain of Transpose/Cast nodes. `channelAxis` indexes the stored tensor's
 * shape. A weight shared by several nodes is listed once, for its first consumer.
 */
export function onnxLayers(graph: onnx.IGraphProto, tensors: ReadonlyMap<string, TensorInfo>): LayerInfo[] {
  const producers = new Map<string, onnx.INodeProto>();
  for (const node of graph.node ?? []) {
    for (const output of node.output ?? []) if (output) producers.set(output, node);
  }

  const resolve = (value: string | undefined, depth = 0): ResolvedWeight | null => {
    if (!value || depth > MAX_CHAIN) return null;
    const stored = tensors.get(value);
    if (stored) {
      if (!isFloatDType(stored.dtype) || stored.shape.length < 2) return null;
      return { weight: value, storedAxis: stored.shape.map((_, i) => i) };
    }
    const producer = producers.get(value);
    if (!producer) return null;
    if (producer.opType === 'Cast') return resolve(producer.input?.[0], depth + 1);
    if (producer.opType === 'Transpose') {
      const inner = resolve(producer.input?.[0], depth + 1);
      if (!inner) return null;
      const perm = transposePerm(producer, inner.storedAxis.length);
      // Output axis i of a Transpose is its input axis perm[i].
      return perm ? { weight: inner.weight, storedAxis: perm.map((p) => inner.storedAxis[p]) } : null;
    }
    return null;
  };

  const layers: LayerInfo[] = [];
  const seen = new Set<string>();
  for (const node of graph.node ?? []) {
    const found = weightOf(node, resolve);
    if (!found || seen.has(found.resolved.weight)) continue;
    const { resolved, axis } = found;
    const info = tensors.get(resolved.weight) as TensorInfo;
    seen.add(resolved.weight);
    const name = node.name || resolved.weight;
    layers.push({
      name,
      opType: node.opType as string,
      weight: resolved.weight,
      shape: info.shape,
      dtype: info.dtype,
      params: numElements(info.shape),
      channelAxis: resolved.storedAxis[axis],
      group: groupPath(name),
    });
  }
  return layers;
}

/** The weight of a quantizable node and the output-channel axis of the value the node sees. */
function weightOf(
  node: onnx.INodeProto,
  resolve: (value: string | undefined) => ResolvedWeight | null,
): { resolved: ResolvedWeight; axis: number } | null {
  const inputs = node.input ?? [];
  const withAxis = (resolved: ResolvedWeight | null, axis: (rank: number) => number) =>
    resolved ? { resolved, axis: axis(resolved.storedAxis.length) } : null;
  switch (node.opType) {
    case 'Conv':
      return withAxis(resolve(inputs[1]), () => 0);
    case 'ConvTranspose':
      // Weight is [C_in, C_out / group, k...].
      return withAxis(resolve(inputs[1]), () => 1);
    case 'Gemm': {
      // B is [K, N], or [N, K] when transB = 1.
      const transB = intAttribute(node, 'transB', 0);
      return withAxis(resolve(inputs[1]), () => (transB ? 0 : 1));
    }
    case 'MatMul': {
      // Y = X·W with W [..., K, N]: N is the last axis. Y = W·X with W [..., M, K]: M is the second to last.
      const right = resolve(inputs[1]);
      if (right) return withAxis(right, (rank) => rank - 1);
      return withAxis(resolve(inputs[0]), (rank) => rank - 2);
    }
    default:
      return null;
  }
}

/** Every floating tensor of rank ≥ 2 in a checkpoint, output channels on axis 0 (PyTorch's [out, in, ...]). */
export function checkpointLayers(tensors: Iterable<{ name: string } & TensorInfo>): LayerInfo[] {
  const layers: LayerInfo[] = [];
  for (const tensor of tensors) {
    if (!isFloatDType(tensor.dtype) || tensor.shape.length < 2) continue;
    layers.push({
      name: tensor.name,
      opType: 'Tensor',
      weight: tensor.name,
      shape: tensor.shape,
      dtype: tensor.dtype,
      params: numElements(tensor.shape),
      channelAxis: 0,
      group: groupPath(tensor.name),
    });
  }
  return layers;
}
