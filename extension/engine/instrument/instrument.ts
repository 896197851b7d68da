// Instrumentation: rewrite an ONNX model once so that one onnxruntime session evaluates every quantization
// configuration of a sweep, chosen per run through feeds.
//
// onnxruntime-node only passes feeds named in session.inputNames, and those exclude initializers, so an initializer
// listed as a graph input ("overridable") cannot be fed from Node: such a feed is silently dropped. Everything the
// sweep controls is therefore a required graph input, and "off" is a cheap value to feed (instrumentFeeds builds them):
//   - `quantlens/enable` (bool [S]): one switch per fake-quant point, then one per overridable weight. One Split
//     node turns it into the If conditions.
//   - `quantlens/fq_params` (float [P, 6]): per point qmin, qmax, scale, zero point, dynamic (0/1), symmetric (0/1);
//     read only inside a switched-on point.
//   - one override input per weight (`quantlens/override/<weight>`, the weight's element type, any shape): fed the
//     replacement (stored shape) when the weight's switch is on, an empty tensor otherwise.
// A fake-quant point on x is If(switch) { FQ(x) } else { Identity(x) } (fakeQuant.ts), and the chosen consumers read
// its output. A weight's consumers (directly or through Transpose/Cast chains), together with the successors
// onnxruntime fuses into them (BatchNormalization, Mul/Add by constants, residual Adds, activations), stay in the main
// graph as they were, so onnxruntime pre-packs, fuses and lays them out (NCHWc at level "all") exactly as in the
// original; their result is renamed and passed on by If(switch) { the nodes recomputed on the override } else
// { Identity(stored result) }, which takes the original name. Off costs one If per window; on, the window runs twice
// (once per sweep step, a single layer). No initializer is added, so IR < 4 models (whose initializers must all be
// graph inputs) need nothing special. With every switch off the model computes what the original computes, bit for
// bit at every optimization level, except where a point sits on a stored tensor a node reads (a Conv's bias): the
// value is then computed rather than constant, and at "all" onnxruntime may pick another kernel (~1e-7 relative).
// Nodes inside subgraphs that read a weight keep the stored value.
import * as fs from 'fs';
import { onnx } from 'onnx-proto';
import { floatToHalfBits } from '../calib/ndarray';
import { ModelError, quote } from '../errors';
import { storedTensorProtos } from '../model/protoValues';
import { quantLevels, roundHalfEven } from '../quant/weightQuant';
import { DYNAMIC_MIN_SCALE, MIN_FAKE_QUANT_OPSET, PARAM_COLUMNS, fakeQuantGraph, type RankKnowledge } from './fakeQuant';
import {
  DataType,
  NameScope,
  declaredDims,
  defaultOpset,
  inferElemTypes,
  int64Tensor,
  intValue,
  isFloatElemType,
  isStandardDomain,
  makeNode,
  subgraphsOf,
  valueInfo,
} from './graph';

export { DYNAMIC_MIN_SCALE, PARAM_COLUMNS } from './fakeQuant';

/** A tensor to fake-quantize. */
export interface ActivationPointSpec {
  /** Name of a value of the main graph (a graph input, an initializer or a node output). */
  tensor: string;
  /** Indexes (into graph.node) of the nodes that should read the quantized value; default: every consumer. */
  consumers?: number[];
}

export interface InstrumentPlan {
  /** Stored tensors (initializers or Constant-node outputs) whose consumers can be fed a replacement. */
  weights: string[];
  activationPoints: ActivationPointSpec[];
  /** Also output each point's min and max (scalars, before quantization), for calibrating static scales. */
  withRangeOutputs?: boolean;
  /** Also output each point's whole tensor (before quantization), for percentile calibration. */
  withTensorOutputs?: boolean;
}

export interface InstrumentOptions {
  /** The model's file, for error messages. */
  file?: string;
}

export interface InstrumentedPoint {
  /** Row in `paramsInput`; switch index in `enableInput`. */
  index: number;
  tensor: string;
  /** ONNX element type of the tensor (a float type). */
  elemType: number;
  /** Name of the switched value the consumers now read. */
  output: string;
  /** The rewired nodes (indexes into the original graph.node). */
  consumers: number[];
  /** Graph outputs holding the tensor's min and max, when asked for. */
  rangeOutputs?: { min: string; max: string };
  /** Graph output holding the tensor itself, when asked for. */
  tensorOutput?: string;
}

export interface InstrumentedWeight {
  weight: string;
  /** Switch index in `enableInput`. */
  index: number;
  /** Graph input to feed the replacement to (stored shape, stored element type). */
  overrideInput: string;
  elemType: number;
  shape: number[];
  /** Nodes wrapped in the switch (indexes into the original graph.node). */
  consumers: number[];
}

export interface SkippedPoint {
  tensor: string;
  reason: string;
}

export interface InstrumentedModel {
  model: onnx.ModelProto;
  /** bool [points + weights]; absent when there is nothing to switch. */
  enableInput?: string;
  /** float [points, 6] (PARAM_COLUMNS); absent without points. */
  paramsInput?: string;
  points: InstrumentedPoint[];
  weights: InstrumentedWeight[];
  /** Requested points that were not placed, and why. */
  skipped: SkippedPoint[];
}

interface PlacedPoint extends InstrumentedPoint {
  switchName: string;
  rank: RankKnowledge;
}

/** Weight element types an override can be fed as, and the typed array holding it. */
const FEED_TYPES: Partial<Record<number, { type: FeedTensor['type']; array: new (n: number) => WeightOverride }>> = {
  [DataType.FLOAT]: { type: 'float32', array: Float32Array },
  [DataType.DOUBLE]: { type: 'float64', array: Float64Array },
  [DataType.FLOAT16]: { type: 'float16', array: Uint16Array },
};

/** Layer weight dtypes (LayerInfo.dtype) an override can be fed for: those of FEED_TYPES. */
export const FEEDABLE_WEIGHT_DTYPES: ReadonlySet<string> = new Set(['F32', 'F16', 'F64']);

/** Ops whose data input has rank ≥ 1 (Conv ≥ 3, Gemm 2, MatMul ≥ 1). */
const POSITIVE_RANK_READERS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/** The weight's value and the values its Transpose/Cast chains derive from it, with the node producing each. */
interface WeightChains {
  /** derived value → index of the Transpose/Cast node producing it. */
  producers: Map<string, number>;
  /** Indexes of the non-chain nodes reading the weight or a derived value. */
  consumers: number[];
}

function weightChains(weight: string, nodes: onnx.INodeProto[], readers: Map<string, number[]>): WeightChains {
  const producers = new Map<string, number>();
  const consumers = new Set<number>();
  const pending = [weight];
  for (let value = pending.pop(); value !== undefined; value = pending.pop()) {
    for (const index of readers.get(value) ?? []) {
      const node = nodes[index];
      const output = node.output?.[0];
      const isChain = isStandardDomain(node.domain) && (node.opType === 'Transpose' || node.opType === 'Cast') && output;
      if (isChain && !producers.has(output)) {
        producers.set(output, index);
        pending.push(output);
      } else if (!isChain) {
        consumers.add(index);
      }
    }
  }
  return { producers, consumers: [...consumers].sort((a, b) => a - b) };
}

/** Successor ops that onnxruntime fuses into a Conv/MatMul/Gemm, and how many of them a weight switch waits for. */
const FUSED_SUCCESSORS = new Set([
  'BatchNormalization', 'Add', 'Sub', 'Mul', 'Div', 'Relu', 'LeakyRelu', 'Clip', 'Sigmoid', 'HardSigmoid', 'HardSwish',
  'Tanh', 'Softplus', 'Elu', 'Selu', 'PRelu',
]);
const MAX_FUSED_SUCCESSORS = 3;

/**
 * Groups each switched node (a start) with the single-reader successors onnxruntime folds into it (BatchNormalization,
 * Mul/Add by constants, residual Adds, activations), so that the switch reading the group's result sits after the
 * whole fused chain and does not cut it. Returns the windows by the index of their last member, where the switch is
 * emitted (all the members' inputs exist there).
 */
function fusionWindows(
  nodes: onnx.NodeProto[],
  starts: number[],
  pinned: ReadonlySet<string>,
  stored: ReadonlyMap<string, unknown>,
): Map<number, number[]> {
  const readers = readersOf(nodes);
  const startSet = new Set(starts);
  const windows = new Map<number, number[]>();
  const inWindow = new Set<number>();
  for (const start of [...starts].sort((a, b) => a - b)) {
    const members = [start];
    inWindow.add(start);
    for (let current = start; members.length <= MAX_FUSED_SUCCESSORS; ) {
      const outputs = nodes[current].output.filter((o) => o);
      if (outputs.length !== 1 || pinned.has(outputs[0])) break;
      const next = readers.get(outputs[0]) ?? [];
      if (next.length !== 1 || inWindow.has(next[0]) || startSet.has(next[0])) break;
      const successor = nodes[next[0]];
      // onnxruntime folds an Add of a computed value (a residual) into a convolution too (NCHWc "sum").
      const foldable =
        isStandardDomain(successor.domain) &&
        FUSED_SUCCESSORS.has(successor.opType) &&
        successor.input.every((input) => !input || input === outputs[0] || stored.has(input) || successor.opType === 'Add');
      if (!foldable) break;
      members.push(next[0]);
      inWindow.add(next[0]);
      current = next[0];
    }
    windows.set(members[members.length - 1], members);
  }
  return windows;
}

/** Names that nodes inside subgraphs read (possibly from the main graph's scope). */
function namesReadInSubgraphs(nodes: onnx.INodeProto[]): string[] {
  const read: string[] = [];
  const pending = nodes.flatMap(subgraphsOf);
  for (let graph = pending.pop(); graph; graph = pending.pop()) {
    for (const node of graph.node ?? []) {
      read.push(...(node.input ?? []));
      pending.push(...subgraphsOf(node));
    }
    for (const output of graph.output ?? []) if (output.name) read.push(output.name);
  }
  return read;
}

/** Main-graph nodes reading each value. */
function readersOf(nodes: onnx.INodeProto[]): Map<string, number[]> {
  const readers = new Map<string, number[]>();
  nodes.forEach((node, index) => {
    for (const input of new Set(node.input ?? [])) {
      if (!input) continue;
      const list = readers.get(input);
      if (list) list.push(index);
      else readers.set(input, [index]);
    }
  });
  return readers;
}

/**
 * Rewrites `model` (left unchanged) so that one session evaluates every configuration: see the file comment.
 * Throws ModelError for names that do not exist, weights that are not stored float tensors, and opsets the
 * emitted ops cannot serve; points that cannot be placed are listed in `skipped`.
 */
export function instrumentModel(model: onnx.IModelProto, plan: InstrumentPlan, options: InstrumentOptions = {}): InstrumentedModel {
  const file = options.file ?? 'model';
  const graph = model.graph;
  if (!graph) throw new ModelError(file, 'not a valid ONNX model (no graph)');
  const opset = defaultOpset(model);
  const originalNodes = (graph.node ?? []) as onnx.INodeProto[];
  const nodes = originalNodes.map((node) => onnx.NodeProto.create({ ...node, input: [...(node.input ?? [])] }));
  const readers = readersOf(nodes);
  const stored = storedTensorProtos(graph);
  const names = new NameScope(graph);
  const elemTypes = inferElemTypes(graph);
  const dims = declaredDims(graph);

  // Weights and the values derived from them.
  const weightNames = [...new Set(plan.weights)];
  const chains = new Map<string, WeightChains>();
  for (const weight of weightNames) {
    const tensor = stored.get(weight);
    if (!tensor) throw new ModelError(file, `no stored tensor (initializer or Constant) named ${quote(weight)}`);
    if (!FEED_TYPES[tensor.dataType ?? 0]) {
      const type = DataType[tensor.dataType ?? 0] ?? tensor.dataType;
      throw new ModelError(file, `weight ${quote(weight)} is ${type}; only float32, float16 and float64 weights can be fed from Node`);
    }
    chains.set(weight, weightChains(weight, nodes, readers));
  }
  const weightDerived = new Set<string>();
  for (const [weight, chain] of chains) {
    weightDerived.add(weight);
    for (const value of chain.producers.keys()) weightDerived.add(value);
  }
  if (weightNames.length > 0 && (opset === undefined || opset < 2)) {
    throw new ModelError(file, `weight switches need the default ONNX opset 2 or newer (Split); the model imports ${opset ?? 'none'}`);
  }

  // Points.
  const producedBy = new Map<string, number>();
  nodes.forEach((node, index) => node.output?.forEach((output) => output && producedBy.set(output, index)));
  const graphInputs = new Set((graph.input ?? []).map((v) => v.name ?? ''));
  const skipped: SkippedPoint[] = [];
  const placed: PlacedPoint[] = [];
  const rewired = new Set<string>();
  const enableName = names.fresh('enable');
  const paramsName = names.fresh('fq_params');
  for (const spec of plan.activationPoints) {
    const tensor = spec.tensor;
    if (!producedBy.has(tensor) && !graphInputs.has(tensor) && !stored.has(tensor)) {
      throw new ModelError(file, `no value named ${quote(tensor)} in the main graph`);
    }
    const skip = (reason: string) => skipped.push({ tensor, reason });
    const elemType = elemTypes.get(tensor);
    if (opset === undefined || opset < MIN_FAKE_QUANT_OPSET) {
      skip(`fake-quant points need opset ${MIN_FAKE_QUANT_OPSET} or newer, the model has ${opset ?? 'none'}`);
      continue;
    }
    if (elemType === undefined) {
      skip('its element type is not declared and cannot be inferred');
      continue;
    }
    if (!isFloatElemType(elemType) || (elemType === DataType.BFLOAT16 && opset < 13)) {
      skip(`its element type (${DataType[elemType] ?? elemType}) is not a floating-point type the opset can fake-quantize`);
      continue;
    }
    if (dims.get(tensor)?.includes(0)) {
      skip('it is empty (a dimension of size 0)');
      continue;
    }
    if (weightDerived.has(tensor)) {
      skip('it is an overridable weight (or derived from one): quantize it by feeding an override');
      continue;
    }
    const readersOfTensor = readers.get(tensor) ?? [];
    const wanted = spec.consumers ?? readersOfTensor;
    const consumers = wanted.filter((index) => readersOfTensor.includes(index) && !rewired.has(`${index}:${tensor}`));
    if (consumers.length === 0) {
      skip(spec.consumers ? 'none of the given consumers reads it (or an earlier point already rewired them)' : 'no node reads it');
      continue;
    }
    const index = placed.length;
    const output = names.fresh(`fq/${index}/out`);
    for (const consumer of consumers) {
      const node = nodes[consumer];
      node.input = node.input.map((input) => (input === tensor ? output : input));
      rewired.add(`${consumer}:${tensor}`);
    }
    const declaredRank = dims.get(tensor)?.length;
    const rank: RankKnowledge =
      declaredRank === 0 ? 'zero'
      : declaredRank !== undefined || consumers.some((c) => POSITIVE_RANK_READERS.has(nodes[c].opType)) ? 'positive'
      : 'unknown';
    placed.push({ index, tensor, elemType, output, consumers, switchName: names.fresh(`enable/${index}`), rank });
  }

  const pointCount = placed.length;
  const instrumentedWeights: InstrumentedWeight[] = weightNames.map((weight, i) => {
    const tensor = stored.get(weight) as onnx.ITensorProto;
    return {
      weight,
      index: pointCount + i,
      overrideInput: names.fresh(`override/${weight}`),
      elemType: tensor.dataType as number,
      shape: (tensor.dims ?? []).map(intValue),
      consumers: (chains.get(weight) as WeightChains).consumers,
    };
  });
  const switchNames = [...placed.map((p) => p.switchName), ...instrumentedWeights.map((w) => names.fresh(`enable/${w.index}`))];

  // Which weights each wrapped node reads.
  const weightsOfNode = new Map<number, InstrumentedWeight[]>();
  for (const weight of instrumentedWeights) {
    for (const consumer of weight.consumers) {
      const list = weightsOfNode.get(consumer);
      if (list) list.push(weight);
      else weightsOfNode.set(consumer, [weight]);
    }
  }

  const pinned = new Set<string>([
    ...(graph.output ?? []).map((v) => v.name ?? ''),
    ...placed.map((p) => p.tensor),
    ...namesReadInSubgraphs(nodes),
  ]);
  const windows = fusionWindows(nodes, [...weightsOfNode.keys()], pinned, stored);

  /**
   * A copy of `members` computed with the override of `weight` (and its Transpose/Cast chain recomputed on it), and
   * with `rest` switched inside. Returns the branch graph; its outputs stand for the last member's outputs.
   */
  const overrideBranch = (members: onnx.NodeProto[], weight: InstrumentedWeight, rest: InstrumentedWeight[]): onnx.IGraphProto => {
    const chain = chains.get(weight.weight) as WeightChains;
    const outputs = (members[members.length - 1].output ?? []).filter((o) => o);
    const branchNodes: onnx.NodeProto[] = [];
    const renamed = new Map<string, string>();
    // The input takes any shape (empty when off); reshaped to the stored one, shape inference can follow it.
    const shape = names.fresh(`override/${weight.weight}/shape`);
    const reshaped = names.fresh(`override/${weight.weight}/reshaped`);
    branchNodes.push(makeNode('Constant', [], [shape], { value: int64Tensor(weight.shape, [weight.shape.length]) }));
    branchNodes.push(makeNode('Reshape', [weight.overrideInput, shape], [reshaped]));
    renamed.set(weight.weight, reshaped);
    // Recompute, on the override, the chain values the members read.
    const resolve = (value: string): string => {
      const known = renamed.get(value);
      if (known !== undefined) return known;
      const producer = chain.producers.get(value);
      if (producer === undefined) return value;
      const chainNode = nodes[producer];
      const out = names.fresh(`override/${weight.weight}/${chainNode.opType}`);
      branchNodes.push(onnx.NodeProto.create({ ...chainNode, input: chainNode.input.map(resolve), output: [out] }));
      renamed.set(value, out);
      return out;
    };
    const copies = members.map((member) =>
      onnx.NodeProto.create({
        ...member,
        input: member.input.map(resolve),
        output: member.output.map((o) => {
          if (!o) return o;
          const fresh = names.fresh(`override/${weight.weight}/${o}`);
          renamed.set(o, fresh);
          return fresh;
        }),
      }),
    );
    branchNodes.push(...wrapAll(copies, rest));
    return { name: 'override', node: branchNodes, output: outputs.map((o) => valueInfo(renamed.get(o) as string)) };
  };

  /** `members` with every weight switched: nested Ifs computing both paths inside (used only within an override). */
  const wrapAll = (members: onnx.NodeProto[], weights: InstrumentedWeight[]): onnx.NodeProto[] => {
    if (weights.length === 0) return members;
    const [weight, ...rest] = weights;
    const outputs = (members[members.length - 1].output ?? []).filter((o) => o);
    const stored = members.map((member) =>
      onnx.NodeProto.create({ ...member, output: member.output.map((o) => (o ? names.fresh(`stored/${weight.weight}/${o}`) : o)) }),
    );
    // The copies read each other's renamed outputs.
    const rename = new Map(members.flatMap((m, i) => m.output.map((o, j) => [o, stored[i].output[j]] as const)));
    for (const copy of stored) copy.input = copy.input.map((i) => rename.get(i) ?? i);
    const storedGraph: onnx.IGraphProto = {
      name: 'stored',
      node: wrapAll(stored, rest),
      output: outputs.map((o) => valueInfo(rename.get(o) as string)),
    };
    return [makeNode('If', [switchNames[weight.index]], outputs, { then_branch: overrideBranch(members, weight, rest), else_branch: storedGraph })];
  };

  /**
   * The switch after a window whose nodes stay in the main graph, where onnxruntime fuses and lays them out as in the
   * original: If(switch) { the members recomputed on the override } else { their stored result, passed through },
   * producing the last member's original output names (its own outputs are renamed to `fallbacks`).
   */
  const select = (members: onnx.NodeProto[], weights: InstrumentedWeight[], fallbacks: string[], outputs: string[]): onnx.NodeProto => {
    const [weight, ...rest] = weights;
    let elseBranch: onnx.IGraphProto;
    if (rest.length === 0) {
      const passed = fallbacks.map((f) => names.fresh(`${f}/passed`));
      elseBranch = { name: 'stored', node: fallbacks.map((f, i) => makeNode('Identity', [f], [passed[i]])), output: passed.map((p) => valueInfo(p)) };
    } else {
      const inner = outputs.map((o) => names.fresh(`stored/${weight.weight}/${o}`));
      elseBranch = { name: 'stored', node: [select(members, rest, fallbacks, inner)], output: inner.map((o) => valueInfo(o)) };
    }
    return makeNode('If', [switchNames[weight.index]], outputs, { then_branch: overrideBranch(members, weight, rest), else_branch: elseBranch });
  };

  // Assemble: the switches first, each point right after its tensor is available, wrapped nodes in place.
  const newNodes: onnx.INodeProto[] = [];
  const extraOutputs: onnx.ValueInfoProto[] = [];
  if (switchNames.length > 0) {
    newNodes.push(makeNode('Split', [enableName], switchNames, opset !== undefined && opset >= 18 ? { num_outputs: { int: switchNames.length } } : {}));
  }
  const pointsAfter = new Map<number, PlacedPoint[]>();
  for (const point of placed) {
    const at = producedBy.get(point.tensor) ?? -1;
    const list = pointsAfter.get(at);
    if (list) list.push(point);
    else pointsAfter.set(at, [point]);
  }
  const emitPoints = (at: number) => {
    for (const point of pointsAfter.get(at) ?? []) {
      const identity = names.fresh(`fq/${point.index}/identity`);
      newNodes.push(
        makeNode('If', [point.switchName], [point.output], {
          then_branch: fakeQuantGraph(opset as number, names, point.tensor, point.elemType, paramsName, point.index, point.rank),
          else_branch: { name: 'identity', node: [makeNode('Identity', [point.tensor], [identity])], output: [valueInfo(identity)] },
        }),
      );
      if (plan.withRangeOutputs) {
        const min = names.fresh(`range/${point.index}/min`);
        const max = names.fresh(`range/${point.index}/max`);
        newNodes.push(makeNode('ReduceMin', [point.tensor], [min], { keepdims: { int: 0 } }));
        newNodes.push(makeNode('ReduceMax', [point.tensor], [max], { keepdims: { int: 0 } }));
        extraOutputs.push(valueInfo(min, point.elemType, []), valueInfo(max, point.elemType, []));
        point.rangeOutputs = { min, max };
      }
      if (plan.withTensorOutputs) {
        const copy = names.fresh(`tensor/${point.index}`);
        newNodes.push(makeNode('Identity', [point.tensor], [copy]));
        extraOutputs.push(valueInfo(copy, point.elemType));
        point.tensorOutput = copy;
      }
    }
  };
  emitPoints(-1);
  nodes.forEach((node, index) => {
    const members = windows.get(index);
    if (members) {
      const windowNodes = members.map((i) => nodes[i]);
      const outputs = node.output.filter((o) => o);
      const fallbacks = outputs.map((o) => names.fresh(`stored/${o}`));
      const rename = new Map(outputs.map((o, i) => [o, fallbacks[i]]));
      newNodes.push(onnx.NodeProto.create({ ...node, output: node.output.map((o) => rename.get(o) ?? o) }));
      newNodes.push(select(windowNodes, weightsOfNode.get(members[0]) ?? [], fallbacks, outputs));
    } else {
      newNodes.push(node);
    }
    emitPoints(index);
  });

  const newInputs: onnx.IValueInfoProto[] = [...(graph.input ?? [])];
  if (switchNames.length > 0) newInputs.push(valueInfo(enableName, DataType.BOOL, [switchNames.length]));
  if (pointCount > 0) newInputs.push(valueInfo(paramsName, DataType.FLOAT, [pointCount, PARAM_COLUMNS.length]));
  for (const weight of instrumentedWeights) newInputs.push(valueInfo(weight.overrideInput, weight.elemType));

  const newGraph = onnx.GraphProto.create({
    ...graph,
    node: newNodes,
    input: newInputs,
    output: [...(graph.output ?? []), ...extraOutputs],
  });
  return {
    model: onnx.ModelProto.create({ ...model, graph: newGraph }),
    ...(switchNames.length > 0 ? { enableInput: enableName } : {}),
    ...(pointCount > 0 ? { paramsInput: paramsName } : {}),
    points: placed.map(({ switchName: _switch, rank: _rank, ...point }) => point),
    weights: instrumentedWeights,
    skipped,
  };
}

/** A tensor to feed, in the shape onnxruntime's `new Tensor(type, data, dims)` takes. */
export interface FeedTensor {
  type: 'bool' | 'float32' | 'float16' | 'float64';
  data: Uint8Array | Float32Array | Uint16Array | Float64Array;
  dims: number[];
}

/** Fake-quantization of one point: a fed per-tensor scale, or per-token scales computed in the graph. */
export type ActivationQuant =
  | { mode: 'static'; bits: number; symmetric: boolean; scale: number; zeroPoint?: number }
  | { mode: 'dynamic'; bits: number; symmetric: boolean };

/** A weight replacement: the stored shape, as float32 (float32 weights), float64 or raw float16 bits. */
export type WeightOverride = Float32Array | Float64Array | Uint16Array;

export interface QuantConfig {
  /** By point index; points not listed are off. */
  activations?: ReadonlyMap<number, ActivationQuant>;
  /** By weight name; weights not listed use their stored values. */
  weights?: ReadonlyMap<string, WeightOverride>;
}

/** Integer range of b-bit codes: symmetric ±(2^(b−1) − 1) like the weight quantizer, asymmetric 0…2^b − 1. */
export function quantRange(bits: number, symmetric: boolean): { qmin: number; qmax: number } {
  const levels = quantLevels(bits);
  return symmetric ? { qmin: -levels, qmax: levels } : { qmin: 0, qmax: 2 * levels + 1 };
}

/**
 * Static per-tensor scale and zero point from a calibrated range, by the formulas the graph uses per token in dynamic
 * mode (symmetric: s = max(−min, max) / qmax, z = 0; asymmetric: s = (max − min) / (qmax − qmin),
 * z = qmin − round(min / s)), evaluated in float64.
 */
export function staticQuantParams(min: number, max: number, bits: number, symmetric: boolean): { scale: number; zeroPoint: number } {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) throw new RangeError(`invalid calibration range [${min}, ${max}]`);
  const { qmin, qmax } = quantRange(bits, symmetric);
  if (symmetric) return { scale: Math.max(Math.max(-min, max) / qmax, DYNAMIC_MIN_SCALE), zeroPoint: 0 };
  const scale = Math.max((max - min) / (qmax - qmin), DYNAMIC_MIN_SCALE);
  return { scale, zeroPoint: qmin - roundHalfEven(min / scale) };
}

/** A replacement computed in float32, as an override of a weight of ONNX element type `elemType` takes it. */
export function weightOverride(values: Float32Array, elemType: number): WeightOverride {
  if (elemType === DataType.DOUBLE) return Float64Array.from(values);
  if (elemType === DataType.FLOAT16) return Uint16Array.from(values, floatToHalfBits);
  return values;
}

/**
 * The control feeds for one configuration: switches, parameters and weight overrides (empty tensors for weights
 * left alone). Merge them with the model's own inputs.
 */
export function instrumentFeeds(instrumented: InstrumentedModel, config: QuantConfig = {}): Record<string, FeedTensor> {
  const feeds: Record<string, FeedTensor> = {};
  const switchCount = instrumented.points.length + instrumented.weights.length;
  const enable = new Uint8Array(switchCount);
  const params = new Float32Array(instrumented.points.length * PARAM_COLUMNS.length);
  for (const point of instrumented.points) {
    const setting = config.activations?.get(point.index);
    // Switched-off rows are never read; keep them finite anyway.
    let row = [-127, 127, 1, 0, 0, 1];
    if (setting) {
      const { qmin, qmax } = quantRange(setting.bits, setting.symmetric);
      if (setting.mode === 'static') {
        if (!(setting.scale > 0) || !Number.isFinite(setting.scale)) throw new RangeError(`point ${point.index}: scale must be positive, got ${setting.scale}`);
        const zeroPoint = setting.symmetric ? 0 : setting.zeroPoint ?? 0;
        if (!Number.isInteger(zeroPoint)) throw new RangeError(`point ${point.index}: zero point must be an integer, got ${zeroPoint}`);
        row = [qmin, qmax, setting.scale, zeroPoint, 0, setting.symmetric ? 1 : 0];
      } else {
        row = [qmin, qmax, 1, 0, 1, setting.symmetric ? 1 : 0];
      }
      enable[point.index] = 1;
    }
    params.set(row, point.index * PARAM_COLUMNS.length);
  }
  for (const name of config.activations?.keys() ?? []) {
    if (!instrumented.points.some((p) => p.index === name)) throw new RangeError(`no fake-quant point with index ${name}`);
  }
  for (const name of config.weights?.keys() ?? []) {
    if (!instrumented.weights.some((w) => w.weight === name)) throw new RangeError(`weight ${quote(name)} is not overridable in this model`);
  }
  for (const weight of instrumented.weights) {
    // instrumentModel admits only weights of these types.
    const feedType = FEED_TYPES[weight.elemType] as NonNullable<(typeof FEED_TYPES)[number]>;
    const data = config.weights?.get(weight.weight);
    if (!data) {
      feeds[weight.overrideInput] = { type: feedType.type, data: new feedType.array(0), dims: [0] };
      continue;
    }
    const count = weight.shape.reduce((a, b) => a * b, 1);
    if (!(data instanceof feedType.array) || data.length !== count) {
      throw new RangeError(
        `override for ${quote(weight.weight)} must be a ${feedType.array.name} of ${count} values, got ${data.constructor.name} of ${data.length}`,
      );
    }
    feeds[weight.overrideInput] = { type: feedType.type, data, dims: weight.shape };
    enable[weight.index] = 1;
  }
  if (instrumented.enableInput) feeds[instrumented.enableInput] = { type: 'bool', data: enable, dims: [switchCount] };
  if (instrumented.paramsInput) {
    feeds[instrumented.paramsInput] = { type: 'float32', data: params, dims: [instrumented.points.length, PARAM_COLUMNS.length] };
  }
  return feeds;
}

/** The instrumented model as ONNX bytes. */
export function encodeModel(model: onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Writes the instrumented model to `file` (for debugging it in Netron or another runtime). */
export async function writeInstrumentedModel(file: string, instrumented: InstrumentedModel): Promise<void> {
  await fs.promises.writeFile(file, encodeModel(instrumented.model));
}
