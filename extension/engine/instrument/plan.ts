// The default instrumentation plan: every quantizable layer's weight, and a fake-quant point on each layer's
// activation input (one point per tensor, shared by the layers that read it, such as q/k/v projections).
import type { onnx } from 'onnx-proto';
import { onnxLayers, type TensorInfo } from '../model/layers';
import { dtypeFromOnnx } from '../model/tensor';
import { intValue, isStandardDomain } from './graph';
import type { ActivationPointSpec, InstrumentedModel, InstrumentedPoint, InstrumentPlan } from './instrument';

/** Chains of Transpose/Cast between a stored weight and its layer are followed this far (files are untrusted). */
const MAX_CHAIN = 32;

/** A quantizable node: its weight, and the input that carries activations. */
export interface LayerNode {
  nodeIndex: number;
  weight: string;
  activation: string;
}

export function layerNodes(graph: onnx.IGraphProto): LayerNode[] {
  const nodes = graph.node ?? [];
  const tensors = new Map<string, TensorInfo>();
  for (const tensor of graph.initializer ?? []) {
    if (tensor.name) tensors.set(tensor.name, { dtype: dtypeFromOnnx(tensor.dataType ?? 0), shape: (tensor.dims ?? []).map(intValue) });
  }
  const producers = new Map<string, onnx.INodeProto>();
  for (const node of nodes) {
    for (const output of node.output ?? []) if (output) producers.set(output, node);
    const value = node.opType === 'Constant' && isStandardDomain(node.domain) ? node.attribute?.find((a) => a.name === 'value')?.t : undefined;
    const output = node.output?.[0];
    if (value && output && !tensors.has(output)) {
      tensors.set(output, { dtype: dtypeFromOnnx(value.dataType ?? 0), shape: (value.dims ?? []).map(intValue) });
    }
  }
  const weights = new Set(onnxLayers(graph, tensors).map((layer) => layer.weight));

  /** The layer weight a node input reads, directly or through Transpose/Cast. */
  const weightBehind = (value: string | undefined): string | undefined => {
    for (let depth = 0; value && depth <= MAX_CHAIN; depth++) {
      if (weights.has(value)) return value;
      const producer = producers.get(value);
      if (!producer || !isStandardDomain(producer.domain) || (producer.opType !== 'Transpose' && producer.opType !== 'Cast')) return undefined;
      value = producer.input?.[0];
    }
    return undefined;
  };

  const found: LayerNode[] = [];
  nodes.forEach((node, nodeIndex) => {
    if (!isStandardDomain(node.domain)) return;
    const inputs = node.input ?? [];
    let weightInput: number | undefined;
    if (node.opType === 'Conv' || node.opType === 'ConvTranspose' || node.opType === 'Gemm') weightInput = 1;
    else if (node.opType === 'MatMul') weightInput = weightBehind(inputs[1]) ? 1 : 0;
    if (weightInput === undefined) return;
    const weight = weightBehind(inputs[weightInput]);
    const activation = inputs[1 - weightInput];
    if (weight && activation) found.push({ nodeIndex, weight, activation });
  });
  return found;
}

/**
 * The activation points of the layer whose weight is `weight`: one per input tensor, read by that layer's nodes only
 * (two layers reading one tensor get a point each, so each can be quantized alone).
 */
export function layerPoints(weight: string, nodes: readonly LayerNode[]): { tensor: string; consumers: number[] }[] {
  const byTensor = new Map<string, number[]>();
  for (const node of nodes) {
    if (node.weight !== weight) continue;
    const list = byTensor.get(node.activation);
    if (list) list.push(node.nodeIndex);
    else byTensor.set(node.activation, [node.nodeIndex]);
  }
  return [...byTensor].map(([tensor, consumers]) => ({ tensor, consumers }));
}

/** Every layer weight overridable and a point on every layer's activation input. */
export function layerPlan(model: onnx.IModelProto, withRangeOutputs = false): InstrumentPlan {
  const layers = layerNodes(model.graph ?? {});
  const consumers = new Map<string, number[]>();
  for (const layer of layers) {
    const list = consumers.get(layer.activation);
    if (list) list.push(layer.nodeIndex);
    else consumers.set(layer.activation, [layer.nodeIndex]);
  }
  const activationPoints: ActivationPointSpec[] = [...consumers].map(([tensor, nodes]) => ({ tensor, consumers: nodes }));
  return { weights: [...new Set(layers.map((layer) => layer.weight))], activationPoints, withRangeOutputs };
}

/** Identifies a point spec (its tensor and the consumers it rewires) across instrumentations of the same specs. */
export function pointKey(spec: ActivationPointSpec): string {
  return `${spec.tensor}\u0000${spec.consumers?.join(',') ?? '*'}`;
}

/** Where each spec's point landed (instrumentModel places points in spec order and skips the ones it cannot place). */
export function placedPoints(specs: readonly ActivationPointSpec[], inst: InstrumentedModel): Map<string, InstrumentedPoint> {
  const placed = new Map<string, InstrumentedPoint>();
  let next = 0;
  for (const spec of specs) {
    const point = inst.points[next];
    if (point?.tensor === spec.tensor && (!spec.consumers || point.consumers.every((c) => spec.consumers?.includes(c)))) {
      placed.set(pointKey(spec), point);
      next++;
    }
  }
  return placed;
}
