// Small readers of decoded ONNX protobuf values, shared by the model loader, the graph rewriting and the lookups.
import type { onnx } from 'onnx-proto';

/** protobufjs gives int64 fields as numbers or Long objects. */
export type Int64 = number | { toNumber(): number };

export function intValue(value: Int64 | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

/** The default operator set: no domain, or "ai.onnx". */
export function isStandardDomain(domain: string | null | undefined): boolean {
  return !domain || domain === 'ai.onnx';
}

/** The main graph's stored tensors by name: initializers, then Constant nodes' `value` tensors; the first of a name wins. */
export function storedTensorProtos(graph: onnx.IGraphProto): Map<string, onnx.ITensorProto> {
  const stored = new Map<string, onnx.ITensorProto>();
  const add = (name: string | null | undefined, tensor: onnx.ITensorProto) => {
    if (name && !stored.has(name)) stored.set(name, tensor);
  };
  for (const tensor of graph.initializer ?? []) add(tensor.name, tensor);
  for (const node of graph.node ?? []) {
    if (node.opType !== 'Constant' || !isStandardDomain(node.domain)) continue;
    const value = (node.attribute ?? []).find((a) => a.name === 'value' && a.t)?.t;
    if (value) add(node.output?.[0], value);
  }
  return stored;
}
