// The fake-quantization subgraph of one point, emitted with ops valid for the model's own opset.
//
// Definition (float32 throughout; one row of the parameters input holds qmin, qmax, scale, zero point, dynamic,
// symmetric):
//   static:         inv = 1/s;  q = clamp(round(x·inv) + z, qmin, qmax);  y = (q − z)·s
//   dynamic, asym:  per token (the last axis holds a token's features; a scalar is one token) mn, mx;
//                   s = max((mx − mn)·(1/(qmax − qmin)), ε);
//                   z = qmin − round(mn·(1/s)); then as static with that s and z
//   dynamic, sym:   a = max(−mn, mx);  s = max(a·(1/qmax), ε);  z = 0
// round is half to even (ONNX Round, like the weight quantizer). Every division is a multiplication by a reciprocal,
// as in PyTorch's fake_quantize (x · inv_scale), so the result is bit-for-bit the same at every opset: opsets before
// 11 have no Round (emulated exactly with Floor/Ceil), opset 7 has no broadcasting Max/Min (clamped with Relu: exact
// on integers; the ε floor of a scale below 2^25·ε is off by an ulp), and opset 6 has no broadcasting arithmetic
// that onnxruntime implements (Add-6 has no kernel), so there the tensor is viewed as [tokens, features, 1] and
// scalars and per-token values are broadcast with batched MatMul (a product with an inner dimension of 1 is exact)
// and combined with same-shape Sum/Max/Min. Dynamic mode on an empty tensor (and, at opset 6, either mode) fails
// when run, because the token view cannot be formed.
import type { onnx } from 'onnx-proto';
import { DataType, floatTensor, int64Tensor, makeNode, type NameScope, type AttributeValue, type IntAttribute } from './graph';

/** Columns of a row of the fake-quant parameters input. */
export const PARAM_COLUMNS = ['qmin', 'qmax', 'scale', 'zeroPoint', 'dynamic', 'symmetric'] as const;

/** Smallest dynamic scale: keeps a constant token (max = min) from dividing by zero; it then reproduces itself. */
export const DYNAMIC_MIN_SCALE = 1e-20;

/** Oldest default-domain opset whose ops onnxruntime can run for a fake-quant point (Cast takes an int `to`). */
export const MIN_FAKE_QUANT_OPSET = 6;

/** Where a value sits in opset 6's [tokens, features, 1] view: full tensor, one per token, or one scalar. */
type Level = 'full' | 'token' | 'scalar';

interface Value {
  name: string;
  level: Level;
}

const LEVEL_RANK: Record<Level, number> = { scalar: 0, token: 1, full: 2 };

/** Emits elementwise arithmetic into one graph's node list. */
class Arith {
  readonly nodes: onnx.NodeProto[] = [];

  constructor(
    readonly opset: number,
    private readonly names: NameScope,
    /** opset 6 only: tensors of ones to broadcast scalars and per-token values with. */
    readonly ones: Partial<Record<'full' | 'token', string>> = {},
  ) {}

  /** Sub-emitter for a nested branch: same opset and broadcast helpers, its own nodes. */
  branch(): Arith {
    return new Arith(this.opset, this.names, this.ones);
  }

  private get broadcasts(): boolean {
    return this.opset >= 7;
  }

  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue | IntAttribute> = {}, outputs = 1): string[] {
    const names = Array.from({ length: outputs }, () => this.names.fresh(`fq/${opType}`));
    this.nodes.push(makeNode(opType, inputs, names, attributes));
    return names;
  }

  private unary(opType: string, a: Value): Value {
    return { name: this.op(opType, [a.name])[0], level: a.level };
  }

  constant(value: number): Value {
    const dims = this.broadcasts ? [] : [1, 1, 1];
    return { name: this.op('Constant', [], { value: floatTensor([value], dims) })[0], level: 'scalar' };
  }

  /** opset 6: `a` repeated to `level` (exact: each element is a product with 1). */
  private lift(a: Value, level: Level): Value {
    if (this.broadcasts || a.level === level) return a;
    const ones = level === 'scalar' ? undefined : this.ones[level];
    if (!ones) throw new Error(`internal: no ${level} ones to broadcast with`);
    return { name: this.op('MatMul', [ones, a.name])[0], level };
  }

  private binary(opType: 'Sum' | 'Max' | 'Min', broadcastingOp: string, a: Value, b: Value): Value {
    const level = LEVEL_RANK[a.level] >= LEVEL_RANK[b.level] ? a.level : b.level;
    if (this.broadcasts) return { name: this.op(broadcastingOp, [a.name, b.name])[0], level };
    return { name: this.op(opType, [this.lift(a, level).name, this.lift(b, level).name])[0], level };
  }

  add(a: Value, b: Value): Value {
    return this.binary('Sum', 'Add', a, b);
  }

  sub(a: Value, b: Value): Value {
    if (this.broadcasts) return this.binary('Sum', 'Sub', a, b);
    return this.add(a, this.neg(b));
  }

  /** Product where at most one factor is a full tensor. */
  mul(a: Value, b: Value): Value {
    const [high, low] = LEVEL_RANK[a.level] >= LEVEL_RANK[b.level] ? [a, b] : [b, a];
    if (this.broadcasts) return { name: this.op('Mul', [high.name, low.name])[0], level: high.level };
    if (low.level === 'full') throw new Error('internal: opset 6 cannot multiply two full tensors');
    // [t, k, 1] × [t or 1, 1, 1]: inner dimension 1, so each element is one rounded product.
    return { name: this.op('MatMul', [high.name, low.name])[0], level: high.level };
  }

  /**
   * max(a, b). Opset 7's Max does not broadcast: values of different levels take b + relu(a − b), exact when a − b
   * and (a − b) + b are (integers, as in the clamp; for the ε floor of a scale, whenever the scale is ≥ 2^25·ε).
   */
  max(a: Value, b: Value): Value {
    if (this.opset === 7 && a.level !== b.level) return this.add(b, this.relu(this.sub(a, b)));
    return this.binary('Max', 'Max', a, b);
  }

  min(a: Value, b: Value): Value {
    if (this.opset === 7 && a.level !== b.level) return this.sub(b, this.relu(this.sub(b, a)));
    return this.binary('Min', 'Min', a, b);
  }

  neg(a: Value): Value {
    return this.unary('Neg', a);
  }

  relu(a: Value): Value {
    return this.unary('Relu', a);
  }

  reciprocal(a: Value): Value {
    return this.unary('Reciprocal', a);
  }

  /** Both 0/1-valued: a AND b = relu(a + b − 1), exact. */
  and(a: Value, b: Value): Value {
    return this.relu(this.sub(this.add(a, b), this.constant(1)));
  }

  /** Round half to even: ONNX Round from opset 11, an exact emulation before. */
  round(v: Value): Value {
    if (this.opset >= 11) return this.unary('Round', v);
    // fl = ⌊v⌋ and f = v − fl ∈ [0, 1] (f rounds up to 1 only for tiny negative v). ⌊2f⌋ − ⌊f⌋ is 1 exactly when
    // f ≥ ½; a tie (f = ½ exactly) has ⌊2f⌋ − ⌈2f − 1⌉ − ⌊f⌋ = 1 and goes to the even neighbour.
    const fl = this.unary('Floor', v);
    const f = this.sub(v, fl);
    const twice = this.add(f, f);
    const floorF = this.unary('Floor', f);
    const floorTwice = this.unary('Floor', twice);
    const up = this.sub(floorTwice, floorF);
    const tie = this.sub(this.sub(floorTwice, this.unary('Ceil', this.sub(twice, this.constant(1)))), floorF);
    const halfFl = this.unary('Floor', this.mul(fl, this.constant(0.5)));
    const odd = this.sub(fl, this.add(halfFl, halfFl));
    const even = this.sub(this.constant(1), odd);
    return this.sub(this.add(fl, up), this.and(tie, even));
  }

  /** Minimum or maximum over `axis` (every axis when undefined), kept as an axis of size 1. */
  reduce(opType: 'ReduceMin' | 'ReduceMax', x: Value, axis: number | undefined): Value {
    const level: Level = axis === undefined ? 'scalar' : 'token';
    if (axis === undefined) return { name: this.op(opType, [x.name], { keepdims: { int: 1 } })[0], level };
    if (this.opset >= 18) {
      const axes = this.op('Constant', [], { value: int64Tensor([axis], [1]) })[0];
      return { name: this.op(opType, [x.name, axes], { keepdims: { int: 1 } })[0], level };
    }
    return { name: this.op(opType, [x.name], { axes: { int: [axis] }, keepdims: { int: 1 } })[0], level };
  }

  /** The last element of a 1-D int64 tensor, as a 1-D tensor (empty for an empty one). */
  sliceLast(vector: string): string {
    const bounds = { starts: [-1], ends: [2 ** 31 - 1], axes: [0] };
    if (this.opset < 10) {
      return this.op('Slice', [vector], { starts: { int: bounds.starts }, ends: { int: bounds.ends }, axes: { int: bounds.axes } })[0];
    }
    const inputs = [bounds.starts, bounds.ends, bounds.axes].map((values) => this.op('Constant', [], { value: int64Tensor(values, [1]) })[0]);
    return this.op('Slice', [vector, ...inputs])[0];
  }

  castToBool(a: Value): string {
    return this.op('Cast', [a.name], { to: { int: DataType.BOOL } })[0];
  }
}

/**
 * x viewed as [tokens, features] ([tokens, features, 1] at opset 6): features is the last axis, tokens all the others;
 * a scalar is one token of one feature. The view is rank 2 (3) whatever x's rank, so the reduction over axis 1 is
 * valid for onnxruntime's shape inference at every rank; but the result, reshaped back with `shape`, has a shape that
 * shape inference cannot follow, so the view is used only when x's rank is not known to be positive.
 */
function tokenView(a: Arith, x: Value): { x: Value; shape: string } {
  const shape = a.op('Shape', [x.name])[0];
  const one = a.op('Constant', [], { value: int64Tensor([1], [1]) })[0];
  const features = a.sliceLast(a.op('Concat', [one, shape], { axis: { int: 0 } })[0]);
  const dims = [a.op('Constant', [], { value: int64Tensor([-1], [1]) })[0], features];
  if (a.opset < 7) dims.push(one);
  const viewShape = a.op('Concat', dims, { axis: { int: 0 } })[0];
  return { x: { name: a.op('Reshape', [x.name, viewShape])[0], level: 'full' }, shape };
}

interface QuantParams {
  qmin: Value;
  qmax: Value;
  scale: Value;
  zeroPoint: Value;
  dynamic: Value;
  symmetric: Value;
}

/**
 * y = (clamp(round(x·inv) + z, qmin, qmax) − z)·s. z is added even when it is 0: that turns Round's −0 (opset ≥ 11)
 * into +0, as the emulated rounding of older opsets gives, so results are bit-identical across opsets.
 */
function quantizeDequantize(a: Arith, x: Value, scale: Value, zeroPoint: Value, p: QuantParams): Value {
  const inverse = a.reciprocal(scale);
  const q = a.min(a.max(a.add(a.round(a.mul(x, inverse)), zeroPoint), p.qmin), p.qmax);
  return a.mul(a.sub(q, zeroPoint), scale);
}

function graph(name: string, a: Arith, output: Value): onnx.IGraphProto {
  return { name, node: a.nodes, output: [{ name: output.name }] };
}

/** If node on a 0/1 flag choosing between two branch graphs; returns its output. */
function branchOn(a: Arith, flag: Value, thenGraph: onnx.IGraphProto, elseGraph: onnx.IGraphProto, level: Level): Value {
  const cond = a.castToBool(flag);
  return { name: a.op('If', [cond], { then_branch: thenGraph, else_branch: elseGraph })[0], level };
}

/** Per-token fake-quantization; tokens are reduced over `axis` (all axes: the tensor is one token). */
function dynamicBranch(a: Arith, x: Value, p: QuantParams, axis: number | undefined): Value {
  const mn = a.reduce('ReduceMin', x, axis);
  const mx = a.reduce('ReduceMax', x, axis);
  if (a.opset < 7) {
    // ones per token, for broadcasting scalars to [tokens, 1, 1]: exp(mn·0).
    a.ones.token = a.op('Exp', [a.mul(mn, a.constant(0)).name])[0];
  }
  const floor = a.constant(DYNAMIC_MIN_SCALE);

  const sym = a.branch();
  const absMax = sym.max(sym.neg(mn), mx);
  const symScale = sym.max(sym.mul(absMax, sym.reciprocal(p.qmax)), floor);
  const symOut = quantizeDequantize(sym, x, symScale, sym.constant(0), p);

  const asym = a.branch();
  const asymScale = asym.max(asym.mul(asym.sub(mx, mn), asym.reciprocal(asym.sub(p.qmax, p.qmin))), floor);
  const zeroPoint = asym.sub(p.qmin, asym.round(asym.mul(mn, asym.reciprocal(asymScale))));
  const asymOut = quantizeDequantize(asym, x, asymScale, zeroPoint, p);

  return branchOn(a, p.symmetric, graph('symmetric', sym, symOut), graph('asymmetric', asym, asymOut), 'full');
}

/** What is known of a point's rank: 0, at least 1 (a Conv/Gemm/MatMul input, a declared shape), or nothing. */
export type RankKnowledge = 'zero' | 'positive' | 'unknown';

/**
 * The then-branch of a point's switch: fake-quantizes `input` (element type `elemType`, a float type) with row
 * `row` of `paramsInput` ([points, 6] float32). The branch graph's single output has the input's element type and,
 * from opset 7 when the rank is known, a shape that onnxruntime's shape inference follows (so fusions downstream of
 * the point are unaffected).
 */
export function fakeQuantGraph(
  opset: number,
  names: NameScope,
  input: string,
  elemType: number,
  paramsInput: string,
  row: number,
  rank: RankKnowledge,
): onnx.IGraphProto {
  const top = new Arith(opset, names);
  let x: Value = { name: input, level: 'full' };
  if (elemType !== DataType.FLOAT) x = { name: top.op('Cast', [input], { to: { int: DataType.FLOAT } })[0], level: 'full' };

  const index = top.op('Constant', [], { value: int64Tensor([row], []) })[0];
  const paramRow = top.op('Gather', [paramsInput, index])[0];

  if (opset >= 7) {
    // Rank-0 parameters, so that a rank-0 x keeps its rank.
    const column = (k: number): Value => ({
      name: top.op('Gather', [paramRow, top.op('Constant', [], { value: int64Tensor([k], []) })[0]])[0],
      level: 'scalar',
    });
    const [qmin, qmax, scale, zeroPoint, dynamic, symmetric] = PARAM_COLUMNS.map((_, k) => column(k));
    const p: QuantParams = { qmin, qmax, scale, zeroPoint, dynamic, symmetric };
    const dyn = top.branch();
    let dynOut: string;
    if (rank === 'unknown') {
      const view = tokenView(dyn, x);
      dynOut = dyn.op('Reshape', [dynamicBranch(dyn, view.x, p, 1).name, view.shape])[0];
    } else {
      dynOut = dynamicBranch(dyn, x, p, rank === 'zero' ? undefined : -1).name;
    }
    const stat = top.branch();
    const statOut = quantizeDequantize(stat, x, p.scale, p.zeroPoint, p);
    const dynGraph = graph('dynamic', dyn, { name: dynOut, level: 'full' });
    x = branchOn(top, p.dynamic, dynGraph, graph('static', stat, statOut), 'full');
  } else {
    // Both modes on the [tokens, features, 1] view, parameters as [1, 1, 1] scalars.
    const view = tokenView(top, x);
    const rowShape = top.op('Constant', [], { value: int64Tensor([6, 1, 1], [3]) })[0];
    const columns = top.op('Split', [top.op('Reshape', [paramRow, rowShape])[0]], {}, PARAM_COLUMNS.length);
    const [qmin, qmax, scale, zeroPoint, dynamic, symmetric] = columns.map((name): Value => ({ name, level: 'scalar' }));
    const p: QuantParams = { qmin, qmax, scale, zeroPoint, dynamic, symmetric };
    top.ones.full = top.op('Exp', [top.mul(view.x, top.constant(0)).name])[0];
    const dyn = top.branch();
    const dynOut = dynamicBranch(dyn, view.x, p, 1);
    const stat = top.branch();
    const statOut = quantizeDequantize(stat, view.x, p.scale, p.zeroPoint, p);
    const y = branchOn(top, p.dynamic, graph('dynamic', dyn, dynOut), graph('static', stat, statOut), 'full');
    x = { name: top.op('Reshape', [y.name, view.shape])[0], level: 'full' };
  }
  const y = elemType === DataType.FLOAT ? x : { name: top.op('Cast', [x.name], { to: { int: elemType } })[0], level: 'full' as const };
  return graph('fake_quant', top, y);
}
