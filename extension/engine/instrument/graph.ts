// Small tools for rewriting ONNX graphs: fresh names, node and tensor builders, element types of values.
import { onnx } from 'onnx-proto';
import { intValue, isStandardDomain } from '../model/protoValues';

export const DataType = onnx.TensorProto.DataType;
const AttributeType = onnx.AttributeProto.AttributeType;

// Shared with the model loader; re-exported for the graph rewriting's users.
export { intValue, isStandardDomain };

/** Version of the default (ai.onnx) operator set the model imports, or undefined when it imports none. */
export function defaultOpset(model: onnx.IModelProto): number | undefined {
  const entry = (model.opsetImport ?? []).find((o) => isStandardDomain(o.domain));
  return entry ? intValue(entry.version) : undefined;
}

/** Every subgraph held by a node's attributes (If branches, Loop and Scan bodies). */
export function subgraphsOf(node: onnx.INodeProto): onnx.IGraphProto[] {
  const graphs: onnx.IGraphProto[] = [];
  for (const attribute of node.attribute ?? []) {
    if (attribute.g) graphs.push(attribute.g);
    for (const graph of attribute.graphs ?? []) graphs.push(graph);
  }
  return graphs;
}

/** Hands out value names that no graph of the model uses yet (outer-scope names are visible in subgraphs). */
export class NameScope {
  private readonly used = new Set<string>();
  private counter = 0;

  constructor(graph: onnx.IGraphProto) {
    const pending = [graph];
    for (let current = pending.pop(); current; current = pending.pop()) {
      for (const value of [...(current.input ?? []), ...(current.output ?? []), ...(current.valueInfo ?? [])]) {
        if (value.name) this.used.add(value.name);
      }
      for (const tensor of current.initializer ?? []) if (tensor.name) this.used.add(tensor.name);
      for (const node of current.node ?? []) {
        for (const name of [...(node.input ?? []), ...(node.output ?? [])]) if (name) this.used.add(name);
        if (node.name) this.used.add(node.name);
        pending.push(...subgraphsOf(node));
      }
    }
  }

  /** `quantlens/<base>`, with a number added when that is taken. */
  fresh(base: string): string {
    let name = `quantlens/${base}`;
    while (this.used.has(name)) name = `quantlens/${base}~${++this.counter}`;
    this.used.add(name);
    return name;
  }
}

export type AttributeValue = number | number[] | onnx.ITensorProto | onnx.IGraphProto;

export interface IntAttribute {
  int: number | number[];
}

/** One attribute: integers are passed as { int }, floats as plain numbers, tensors and graphs as messages. */
function attribute(name: string, value: AttributeValue | IntAttribute): onnx.IAttributeProto {
  if (typeof value === 'number') return { name, type: AttributeType.FLOAT, f: value };
  if (Array.isArray(value)) return { name, type: AttributeType.FLOATS, floats: value };
  if ('int' in value) {
    return Array.isArray(value.int) ? { name, type: AttributeType.INTS, ints: value.int } : { name, type: AttributeType.INT, i: value.int };
  }
  if ('node' in value || 'output' in value) return { name, type: AttributeType.GRAPH, g: value as onnx.IGraphProto };
  return { name, type: AttributeType.TENSOR, t: value as onnx.ITensorProto };
}

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: Record<string, AttributeValue | IntAttribute> = {},
  name?: string,
): onnx.NodeProto {
  return onnx.NodeProto.create({
    opType,
    input: inputs,
    output: outputs,
    attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
    ...(name ? { name } : {}),
  });
}

export function floatTensor(values: number[], dims: number[]): onnx.TensorProto {
  return onnx.TensorProto.create({ dataType: DataType.FLOAT, dims, floatData: values });
}

export function int64Tensor(values: number[], dims: number[]): onnx.TensorProto {
  return onnx.TensorProto.create({ dataType: DataType.INT64, dims, int64Data: values });
}

/** A value with only an element type (shape left to onnxruntime's inference), or no type at all. */
export function valueInfo(name: string, elemType?: number, dims?: number[]): onnx.ValueInfoProto {
  if (elemType === undefined) return onnx.ValueInfoProto.create({ name });
  const tensorType: onnx.TypeProto.ITensor = { elemType };
  if (dims) tensorType.shape = { dim: dims.map((d) => ({ dimValue: d })) };
  return onnx.ValueInfoProto.create({ name, type: { tensorType } });
}

export function isFloatElemType(elemType: number | undefined): boolean {
  return elemType === DataType.FLOAT || elemType === DataType.FLOAT16 || elemType === DataType.DOUBLE || elemType === DataType.BFLOAT16;
}

/** Ops whose every output has the element type of their first input. */
const SAME_AS_FIRST_INPUT = new Set([
  'Abs', 'Acos', 'Acosh', 'Add', 'AffineGrid', 'Asin', 'Asinh', 'Atan', 'Atanh', 'AveragePool', 'BatchNormalization',
  'Celu', 'Ceil', 'Clip', 'Col2Im', 'Compress', 'Concat', 'Conv', 'ConvTranspose', 'Cos', 'Cosh', 'CumSum',
  'DepthToSpace', 'Det', 'Div', 'Einsum', 'Elu', 'Erf', 'Exp', 'Expand', 'Flatten', 'Floor', 'Gather', 'GatherElements',
  'GatherND', 'Gelu', 'Gemm', 'GlobalAveragePool', 'GlobalLpPool', 'GlobalMaxPool', 'GridSample', 'GroupNormalization',
  'HardSigmoid', 'HardSwish', 'Hardmax', 'Identity', 'InstanceNormalization', 'LRN', 'LeakyRelu', 'Log', 'LogSoftmax',
  'LpNormalization', 'LpPool', 'MatMul', 'Max', 'MaxRoiPool', 'MaxUnpool', 'Mean', 'MeanVarianceNormalization', 'Min',
  'Mish', 'Mod', 'Mul', 'Neg', 'PRelu', 'Pad', 'Pow', 'Reciprocal', 'ReduceL1', 'ReduceL2', 'ReduceLogSum',
  'ReduceLogSumExp', 'ReduceMax', 'ReduceMean', 'ReduceMin', 'ReduceProd', 'ReduceSum', 'ReduceSumSquare', 'Relu',
  'Reshape', 'Resize', 'ReverseSequence', 'RoiAlign', 'Round', 'ScatterElements', 'ScatterND', 'Selu', 'Shrink',
  'Sigmoid', 'Sign', 'Sin', 'Sinh', 'Slice', 'Softmax', 'Softplus', 'Softsign', 'SpaceToDepth', 'Split', 'Sqrt',
  'Squeeze', 'Sub', 'Sum', 'Tan', 'Tanh', 'ThresholdedRelu', 'Tile', 'Transpose', 'Trilu', 'Unsqueeze', 'Upsample',
]);

/** Ops whose first output has the element type of their first input (other outputs are indices, masks, stats). */
const FIRST_OUTPUT_AS_FIRST_INPUT = new Set(['Dropout', 'LayerNormalization', 'MaxPool', 'TopK', 'Unique']);

const BOOLEAN_RESULT = new Set([
  'And', 'Or', 'Xor', 'Not', 'Equal', 'Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'IsNaN', 'IsInf',
]);
const INT64_RESULT = new Set(['Shape', 'Size', 'NonZero', 'ArgMax', 'ArgMin']);

/** Ops whose typed inputs all share one element type, so a known one tells the others (Conv's X and W, ...). */
const SHARED_INPUT_TYPE: Record<string, number[]> = {
  Conv: [0, 1], ConvTranspose: [0, 1], Gemm: [0, 1], MatMul: [0, 1], Add: [0, 1], Sub: [0, 1], Mul: [0, 1], Div: [0, 1],
};

/**
 * Element types of the main graph's values, from declared types (inputs, outputs, value_info, initializers,
 * Constant nodes) and one forward pass of per-op rules; values no rule covers are absent.
 */
export function inferElemTypes(graph: onnx.IGraphProto): Map<string, number> {
  const types = new Map<string, number>();
  const declare = (name: string | null | undefined, elemType: number | null | undefined) => {
    if (name && elemType && !types.has(name)) types.set(name, elemType);
  };
  for (const value of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    declare(value.name, value.type?.tensorType?.elemType);
  }
  for (const tensor of graph.initializer ?? []) declare(tensor.name, tensor.dataType);

  for (const node of graph.node ?? []) {
    if (!isStandardDomain(node.domain)) continue;
    const inputs = node.input ?? [];
    const outputs = node.output ?? [];
    const op = node.opType ?? '';
    const first = types.get(inputs[0] ?? '');
    const shared = SHARED_INPUT_TYPE[op];
    if (shared) {
      const known = shared.map((i) => types.get(inputs[i] ?? '')).find((t) => t !== undefined);
      for (const i of shared) declare(inputs[i], known);
    }
    if (op === 'Constant') {
      declare(outputs[0], constantElemType(node));
    } else if (op === 'Cast') {
      declare(outputs[0], intValue(node.attribute?.find((a) => a.name === 'to')?.i));
    } else if (op === 'CastLike') {
      declare(outputs[0], types.get(inputs[1] ?? ''));
    } else if (op === 'Where') {
      declare(outputs[0], types.get(inputs[1] ?? ''));
    } else if (op === 'DequantizeLinear') {
      declare(outputs[0], types.get(inputs[1] ?? '') ?? DataType.FLOAT);
    } else if (BOOLEAN_RESULT.has(op)) {
      declare(outputs[0], DataType.BOOL);
    } else if (INT64_RESULT.has(op)) {
      declare(outputs[0], DataType.INT64);
    } else if (SAME_AS_FIRST_INPUT.has(op) || shared) {
      const elemType = types.get(inputs[0] ?? '');
      for (const output of outputs) declare(output, elemType);
    } else if (FIRST_OUTPUT_AS_FIRST_INPUT.has(op)) {
      declare(outputs[0], first);
    }
  }
  return types;
}

/** Declared dimensions of the main graph's values (inputs, outputs, value_info, initializers); null when symbolic. */
export function declaredDims(graph: onnx.IGraphProto): Map<string, (number | null)[]> {
  const dims = new Map<string, (number | null)[]>();
  for (const value of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) {
    const shape = value.type?.tensorType?.shape;
    if (value.name && shape && !dims.has(value.name)) {
      dims.set(value.name, (shape.dim ?? []).map((d) => (d.dimValue !== null && d.dimValue !== undefined ? intValue(d.dimValue) : null)));
    }
  }
  for (const tensor of graph.initializer ?? []) if (tensor.name) dims.set(tensor.name, (tensor.dims ?? []).map(intValue));
  return dims;
}

function constantElemType(node: onnx.INodeProto): number | undefined {
  for (const a of node.attribute ?? []) {
    if (a.name === 'value' && a.t) return a.t.dataType ?? undefined;
    if (a.name === 'value_float' || a.name === 'value_floats') return DataType.FLOAT;
    if (a.name === 'value_int' || a.name === 'value_ints') return DataType.INT64;
  }
  return undefined;
}
