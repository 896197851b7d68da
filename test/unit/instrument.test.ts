// Instrumentation: switched-off points and weights change nothing (ONNX's conformance corpus, PP-OCRv4 rec, the
// sample), switched-on points compute the fake-quantization a plain float32 loop computes, weight overrides equal a
// separately built model, at opsets 6 to 18. Prints coverage counts and the overhead of switched-off points.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../../extension/engine/errors';
import {
  type ActivationQuant,
  type FeedTensor,
  type InstrumentedModel,
  type QuantConfig,
  encodeModel,
  instrumentFeeds,
  instrumentModel,
  staticQuantParams,
  writeInstrumentedModel,
} from '../../extension/engine/instrument/instrument';
import { layerPlan } from '../../extension/engine/instrument/plan';
import { fakeQuantValue, naiveSymmetricPerChannel, roundHalfEven } from './naiveQuant';
import { uniformSigned } from './naiveWeightStats';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const SAMPLE = path.join(repoRoot, 'resources', 'sample', 'dit-sample.onnx');
const REC = path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
const CORPUS = '/usr/share/libonnx-testdata/data';

const DataType = onnx.TensorProto.DataType;
const f32 = Math.fround;
type Feeds = Record<string, ort.Tensor>;
type SessionOptions = ort.InferenceSession.SessionOptions;
const QUIET: SessionOptions = { logSeverityLevel: 3 };

function toOrt(feeds: Record<string, FeedTensor>): Feeds {
  return Object.fromEntries(Object.entries(feeds).map(([name, f]) => [name, new ort.Tensor(f.type, f.data, f.dims)]));
}

async function session(model: onnx.IModelProto | Uint8Array, options: SessionOptions = QUIET): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model instanceof Uint8Array ? model : encodeModel(model), { ...QUIET, ...options });
}

async function runConfig(s: ort.InferenceSession, inst: InstrumentedModel, inputs: Feeds, config: QuantConfig = {}) {
  return s.run({ ...inputs, ...toOrt(instrumentFeeds(inst, config)) });
}

function bytesOf(data: ort.Tensor['data']): Buffer {
  if (Array.isArray(data)) return Buffer.from(JSON.stringify(data));
  const view = data as ArrayBufferView;
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function absMax(values: Float32Array): number {
  return values.reduce((max, v) => Math.max(max, Math.abs(v)), 0);
}

function floats(tensor: ort.Tensor): Float32Array {
  return tensor.data as Float32Array;
}

/** Largest |a − b| and how many elements differ at all. */
function difference(a: Float32Array, b: Float32Array): { max: number; count: number } {
  assert.equal(a.length, b.length);
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i] || (Number.isNaN(a[i]) && Number.isNaN(b[i]))) continue;
    count++;
    max = Math.max(max, Math.abs(a[i] - b[i]));
  }
  return { max, count };
}

// ---------------------------------------------------------------------------------------------------------------
// An independent float32 fake-quantizer: the definition in fakeQuant.ts, one Math.fround per operation.

function rangeOf(bits: number, symmetric: boolean): { qmin: number; qmax: number } {
  const levels = 2 ** (bits - 1) - 1;
  return symmetric ? { qmin: -levels, qmax: levels } : { qmin: 0, qmax: 2 ** bits - 1 };
}

/** Fake-quantized copy of x (tokens along the last axis, `features` long). */
function fakeQuantJs(x: Float32Array, features: number, setting: ActivationQuant): Float32Array {
  const { qmin, qmax } = rangeOf(setting.bits, setting.symmetric);
  const out = new Float32Array(x.length);
  if (setting.mode === 'static') {
    const scale = f32(setting.scale);
    const zeroPoint = setting.symmetric ? 0 : setting.zeroPoint ?? 0;
    for (let i = 0; i < x.length; i++) out[i] = fakeQuantValue(x[i], qmin, qmax, scale, zeroPoint);
    return out;
  }
  const floor = f32(1e-20);
  for (let start = 0; start < x.length; start += features) {
    let mn = Infinity;
    let mx = -Infinity;
    for (let i = start; i < start + features; i++) {
      mn = Math.min(mn, x[i]);
      mx = Math.max(mx, x[i]);
    }
    let scale: number;
    let zeroPoint = 0;
    if (setting.symmetric) {
      scale = Math.max(f32(Math.max(-mn, mx) * f32(1 / qmax)), floor);
    } else {
      scale = Math.max(f32(f32(mx - mn) * f32(1 / f32(qmax - qmin))), floor);
      zeroPoint = f32(qmin - roundHalfEven(f32(mn * f32(1 / scale))));
    }
    for (let i = start; i < start + features; i++) out[i] = fakeQuantValue(x[i], qmin, qmax, scale, zeroPoint);
  }
  return out;
}

/** float32 → IEEE half bits (normal numbers rounded to the nearest half; the test's values are far from ties). */
function toHalfBits(value: number): number {
  if (value === 0) return Object.is(value, -0) ? 0x8000 : 0;
  const sign = value < 0 ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  const exponent = Math.floor(Math.log2(magnitude));
  if (exponent < -14) return sign | Math.round(magnitude / 2 ** -24);
  // A mantissa that rounds up to 1024 carries into the exponent.
  return sign | (((exponent + 15) << 10) + Math.round((magnitude / 2 ** exponent - 1) * 1024));
}

function fromHalfBits(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// ---------------------------------------------------------------------------------------------------------------
// A tiny model built here: y = MatMul(x, W), z = Identity(x), r = Relu(x); the point on x feeds MatMul and Identity.

const TOKENS = [2, 3];
const FEATURES = 8;
const OUTPUTS = 5;

function tinyModel(opset: number): onnx.ModelProto {
  const irVersion = opset < 9 ? 3 : opset < 13 ? 6 : 8;
  const weight = onnx.TensorProto.create({
    name: 'W',
    dataType: DataType.FLOAT,
    dims: [FEATURES, OUTPUTS],
    floatData: Array.from(uniformSigned(FEATURES * OUTPUTS, 7)),
  });
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
  });
  const inputs = [{ name: 'x', type: tensorType(['batch', 'tokens', FEATURES]) }];
  // IR 3 requires every initializer to be listed as a graph input.
  if (irVersion < 4) inputs.push({ name: 'W', type: tensorType([FEATURES, OUTPUTS]) });
  return onnx.ModelProto.create({
    irVersion,
    opsetImport: [{ domain: '', version: opset }],
    graph: {
      name: 'tiny',
      node: [
        { opType: 'MatMul', input: ['x', 'W'], output: ['y'], name: 'linear' },
        { opType: 'Identity', input: ['x'], output: ['z'] },
        { opType: 'Relu', input: ['x'], output: ['r'] },
      ],
      initializer: [weight],
      input: inputs,
      output: [{ name: 'y', type: tensorType(['batch', 'tokens', OUTPUTS]) }, { name: 'z' }, { name: 'r' }],
    },
  });
}

/** Activations with exact ties for a scale of 1/8 (multiples of 1/16) and tokens of very different ranges. */
function tinyInput(): Float32Array {
  const count = TOKENS[0] * TOKENS[1] * FEATURES;
  const noise = uniformSigned(count, 11);
  const x = new Float32Array(count);
  const ties = [5 / 16, -5 / 16, 3 / 16, -3 / 16, 1 / 16, -1 / 16, 7 / 16, -7 / 16];
  for (let i = 0; i < count; i++) {
    const token = Math.floor(i / FEATURES);
    x[i] = i % 3 === 0 ? ties[(i / 3) % ties.length] : noise[i] * 2 ** ((token % 4) - 1);
  }
  return x;
}

function matmul64(x: Float32Array, w: ArrayLike<number>): { values: Float64Array; magnitude: Float64Array } {
  const rows = x.length / FEATURES;
  const values = new Float64Array(rows * OUTPUTS);
  const magnitude = new Float64Array(rows * OUTPUTS);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < OUTPUTS; j++) {
      let sum = 0;
      let abs = 0;
      for (let k = 0; k < FEATURES; k++) {
        sum += x[r * FEATURES + k] * w[k * OUTPUTS + j];
        abs += Math.abs(x[r * FEATURES + k] * w[k * OUTPUTS + j]);
      }
      values[r * OUTPUTS + j] = sum;
      magnitude[r * OUTPUTS + j] = abs;
    }
  }
  return { values, magnitude };
}

function assertCloseToMatmul(actual: Float32Array, x: Float32Array, w: ArrayLike<number>, label: string): void {
  const { values, magnitude } = matmul64(x, w);
  for (let i = 0; i < values.length; i++) {
    // float32 accumulation of FEATURES products: a few ulps of the sum of magnitudes.
    assert.ok(Math.abs(actual[i] - values[i]) <= 4e-7 * FEATURES * magnitude[i] + 1e-30, `${label}: y[${i}] = ${actual[i]}, expected ${values[i]}`);
  }
}

describe('fake-quant points and weight overrides on a tiny model, per opset', () => {
  const x = tinyInput();
  const settings: [string, ActivationQuant][] = [
    ['static symmetric 4-bit (clips)', { mode: 'static', bits: 4, symmetric: true, scale: 0.125 }],
    ['static asymmetric 8-bit', { mode: 'static', bits: 8, symmetric: false, scale: 0.125, zeroPoint: 128 }],
    ['static asymmetric 4-bit (clips)', { mode: 'static', bits: 4, symmetric: false, scale: 0.0625, zeroPoint: 9 }],
    ['dynamic symmetric 8-bit', { mode: 'dynamic', bits: 8, symmetric: true }],
    ['dynamic asymmetric 4-bit', { mode: 'dynamic', bits: 4, symmetric: false }],
    ['dynamic asymmetric 3-bit', { mode: 'dynamic', bits: 3, symmetric: false }],
  ];

  it('the test data exercises ties that round-half-up would get wrong, and clipping', () => {
    // 5/16 · 8 = 2.5: half to even gives 2, half up 3.
    assert.ok(x.includes(f32(5 / 16)) && x.includes(f32(-3 / 16)));
    const clipped = fakeQuantJs(x, FEATURES, settings[0][1]);
    assert.ok(clipped.some((v, i) => Math.abs(v - x[i]) > 0.125), 'the 4-bit symmetric case clips');
  });

  for (const opset of [6, 7, 9, 11, 13, 18]) {
    it(`opset ${opset}: matches a float32 JS fake-quantizer, MatMul in float64, and a weight override`, async () => {
      const model = tinyModel(opset);
      const inst = instrumentModel(model, { weights: ['W'], activationPoints: [{ tensor: 'x', consumers: [0, 1] }] });
      assert.equal(inst.points.length, 1);
      assert.deepEqual(inst.skipped, []);
      assert.equal(inst.model.opsetImport?.[0].version, opset, 'the opset is kept');
      const s = await session(inst.model);
      const original = await session(model);
      const inputs = { x: new ort.Tensor('float32', x, [...TOKENS, FEATURES]) };
      const reference = await original.run(inputs);
      const w = (model.graph?.initializer?.[0].floatData ?? []) as number[];

      const off = await runConfig(s, inst, inputs);
      for (const name of ['y', 'z', 'r']) assert.ok(bytesOf(off[name].data).equals(bytesOf(reference[name].data)), `${name} unchanged when off`);

      for (const [label, setting] of settings) {
        const out = await runConfig(s, inst, inputs, { activations: new Map([[0, setting]]) });
        const expected = fakeQuantJs(x, FEATURES, setting);
        assert.deepEqual(floats(out.z), expected, `${label}: FQ(x) bit for bit`);
        assert.ok(difference(expected, x).count > 0, `${label} changes x`);
        assertCloseToMatmul(floats(out.y), expected, w, label);
        assert.ok(bytesOf(out.r.data).equals(bytesOf(reference.r.data)), `${label}: Relu, not a consumer, reads x unquantized`);
      }

      const doubled = Float32Array.from(w, (v) => v * 2);
      const overridden = await runConfig(s, inst, inputs, {
        weights: new Map([['W', doubled]]),
        activations: new Map([[0, settings[3][1]]]),
      });
      assertCloseToMatmul(floats(overridden.y), fakeQuantJs(x, FEATURES, settings[3][1]), doubled, 'override');
    });
  }

  it('dynamic per-token beats static per-tensor on tokens of ranges 0.01 to 100; on one token they agree', async () => {
    const model = tinyModel(17);
    const inst = instrumentModel(model, { weights: [], activationPoints: [{ tensor: 'x', consumers: [1] }] });
    const s = await session(inst.model);
    const tokens = 5;
    const noise = uniformSigned(tokens * FEATURES, 5);
    const known = noise.map((v, i) => f32(v * 10 ** (Math.floor(i / FEATURES) - 2)));
    const inputs = { x: new ort.Tensor('float32', known, [1, tokens, FEATURES]) };
    const mse = (y: Float32Array) => y.reduce((sum, v, i) => sum + (v - known[i]) ** 2, 0) / y.length;
    const report: string[] = [];
    for (const symmetric of [true, false]) {
      const range = [known.reduce((a, b) => Math.min(a, b)), known.reduce((a, b) => Math.max(a, b))];
      const perTensorSetting: ActivationQuant = { mode: 'static', bits: 8, symmetric, ...staticQuantParams(range[0], range[1], 8, symmetric) };
      const perTokenSetting: ActivationQuant = { mode: 'dynamic', bits: 8, symmetric };
      const perTensor = floats((await runConfig(s, inst, inputs, { activations: new Map([[0, perTensorSetting]]) })).z);
      const perToken = floats((await runConfig(s, inst, inputs, { activations: new Map([[0, perTokenSetting]]) })).z);
      assert.deepEqual(perTensor, fakeQuantJs(known, FEATURES, perTensorSetting));
      assert.deepEqual(perToken, fakeQuantJs(known, FEATURES, perTokenSetting));
      // The ±0.01 token is below half a per-tensor step: per-tensor quantization zeroes it, per-token keeps it to
      // half of its own 8-bit step.
      assert.ok(perTensor.subarray(0, FEATURES).every((v) => v === 0), 'per-tensor: the smallest token is lost');
      assert.ok(difference(perToken.subarray(0, FEATURES), known.subarray(0, FEATURES)).max <= 0.01 / 127, 'per-token keeps it');
      assert.ok(mse(perToken) < mse(perTensor) / 2, 'per-token is more accurate overall');
      report.push(`${symmetric ? 'symmetric' : 'asymmetric'}: per-tensor ${mse(perTensor).toExponential(2)}, per-token ${mse(perToken).toExponential(2)}`);

      // One token: per-tensor statistics are that token's, so the modes agree up to the scale's float64 → float32 rounding.
      const token = known.subarray(FEATURES * 3, FEATURES * 4);
      const one = { x: new ort.Tensor('float32', token, [1, 1, FEATURES]) };
      const fed = staticQuantParams(Math.min(...token), Math.max(...token), 4, symmetric);
      const asStatic = await runConfig(s, inst, one, { activations: new Map([[0, { mode: 'static', bits: 4, symmetric, ...fed }]]) });
      const asDynamic = await runConfig(s, inst, one, { activations: new Map([[0, { mode: 'dynamic', bits: 4, symmetric }]]) });
      assert.ok(difference(floats(asStatic.z), floats(asDynamic.z)).max <= 1e-6 * absMax(token));
    }
    console.log(`# 8-bit MSE on tokens of ranges 0.01…100: ${report.join('; ')}`);
  });

  it('dynamic mode on a value of unknown rank (token view) and on a scalar', async () => {
    const values = tinyInput();
    for (const opset of [6, 9, 18]) {
      // n = Neg(x) has no declared shape and only an Identity reads it: its rank is unknown to the instrumentation.
      const model = onnx.ModelProto.create({
        irVersion: opset < 9 ? 3 : 8,
        opsetImport: [{ domain: '', version: opset }],
        graph: {
          name: 'ranks',
          node: [
            { opType: 'Neg', input: ['x'], output: ['n'] },
            { opType: 'Identity', input: ['n'], output: ['z'] },
            { opType: 'Identity', input: ['s'], output: ['u'] },
          ],
          input: [
            { name: 'x', type: { tensorType: { elemType: DataType.FLOAT } } },
            { name: 's', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [] } } } },
          ],
          output: [{ name: 'z' }, { name: 'u' }],
        },
      });
      const inst = instrumentModel(model, { weights: [], activationPoints: [{ tensor: 'n' }, { tensor: 's' }] });
      const s = await session(inst.model);
      for (const symmetric of [true, false]) {
        const setting: ActivationQuant = { mode: 'dynamic', bits: 4, symmetric };
        const inputs = { x: new ort.Tensor('float32', values, [...TOKENS, FEATURES]), s: new ort.Tensor('float32', Float32Array.from([-2.75]), []) };
        const out = await runConfig(s, inst, inputs, { activations: new Map([[0, setting], [1, setting]]) });
        assert.deepEqual(out.z.dims, [...TOKENS, FEATURES]);
        assert.deepEqual(floats(out.z), fakeQuantJs(values.map((v) => -v), FEATURES, setting), `opset ${opset}`);
        assert.deepEqual(out.u.dims, []);
        assert.deepEqual(floats(out.u), fakeQuantJs(Float32Array.from([-2.75]), 1, setting), `opset ${opset} scalar`);
      }
    }
  });

  it('float16 and float64 points quantize in float32 and cast back', async () => {
    const values = tinyInput().subarray(0, 16);
    for (const [elemType, type, data] of [
      [DataType.FLOAT16, 'float16', Uint16Array.from(values, toHalfBits)],
      [DataType.DOUBLE, 'float64', Float64Array.from(values)],
    ] as const) {
      const model = onnx.ModelProto.create({
        irVersion: 8,
        opsetImport: [{ domain: '', version: 13 }],
        graph: {
          name: 'cast',
          node: [{ opType: 'Identity', input: ['x'], output: ['z'] }],
          input: [{ name: 'x', type: { tensorType: { elemType, shape: { dim: [{ dimValue: 2 }, { dimValue: 8 }] } } } }],
          output: [{ name: 'z', type: { tensorType: { elemType } } }],
        },
      });
      const inst = instrumentModel(model, { weights: [], activationPoints: [{ tensor: 'x' }] });
      const s = await session(inst.model);
      const setting: ActivationQuant = { mode: 'static', bits: 4, symmetric: true, scale: 0.125 };
      const out = await runConfig(s, inst, { x: new ort.Tensor(type, data, [2, 8]) }, { activations: new Map([[0, setting]]) });
      // Multiples of 1/8 within ±7/8: exact in float16 and float64 alike.
      const decoded = Array.from(out.z.data as Uint16Array | Float64Array, (v) => (type === 'float16' ? fromHalfBits(v) : v));
      const stored = type === 'float16' ? Float32Array.from(data as Uint16Array, fromHalfBits) : Float32Array.from(data as Float64Array);
      assert.deepEqual(decoded, Array.from(fakeQuantJs(stored, FEATURES, setting)), type);
    }
  });

  it('refuses unknown names, skips what it cannot quantize, checks feeds', () => {
    const model = tinyModel(13);
    assert.throws(() => instrumentModel(model, { weights: ['nope'], activationPoints: [] }, { file: 'tiny.onnx' }), (err: unknown) => {
      assert.ok(err instanceof ModelError && err.message.includes('tiny.onnx') && err.message.includes('"nope"'));
      return true;
    });
    assert.throws(() => instrumentModel(model, { weights: [], activationPoints: [{ tensor: 'ghost' }] }), /"ghost"/);
    const inst = instrumentModel(model, {
      weights: ['W'],
      activationPoints: [{ tensor: 'W' }, { tensor: 'r' }, { tensor: 'x', consumers: [2] }, { tensor: 'x', consumers: [2] }],
    });
    assert.deepEqual(
      inst.skipped.map((s) => [s.tensor, s.reason.split(' ').slice(0, 4).join(' ')]),
      [['W', 'it is an overridable'], ['r', 'no node reads it'], ['x', 'none of the given']],
    );
    assert.throws(() => instrumentFeeds(inst, { weights: new Map([['W', new Float32Array(3)]]) }), /Float32Array of 40 values/);
    assert.throws(() => instrumentFeeds(inst, { activations: new Map([[5, { mode: 'dynamic', bits: 8, symmetric: true }]]) }), /no fake-quant point/);
    assert.throws(() => instrumentFeeds(inst, { activations: new Map([[0, { mode: 'static', bits: 1, symmetric: true, scale: 1 }]]) }), /bits/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The real models.

interface RealModel {
  name: string;
  file: string;
  inputs: Feeds;
}

const realModels: RealModel[] = [
  {
    name: 'PP-OCRv4 rec',
    file: REC,
    inputs: { x: new ort.Tensor('float32', uniformSigned(3 * 48 * 320, 1), [1, 3, 48, 320]) },
  },
  {
    name: 'dit-sample',
    file: SAMPLE,
    inputs: {
      x: new ort.Tensor('float32', uniformSigned(2 * 4 * 16 * 16, 2), [2, 4, 16, 16]),
      t: new ort.Tensor('float32', Float32Array.from([37, 901]), [2]),
      y: new ort.Tensor('int64', BigInt64Array.from([3n, 7n]), [2]),
    },
  },
];

/** The stored float32 values of an initializer or Constant-node weight. */
function storedWeight(model: onnx.IModelProto, name: string): { tensor: onnx.ITensorProto; values: Float32Array } {
  const graph = model.graph as onnx.IGraphProto;
  const tensor =
    graph.initializer?.find((t) => t.name === name) ??
    graph.node?.find((n) => n.opType === 'Constant' && n.output?.[0] === name)?.attribute?.find((a) => a.name === 'value')?.t;
  assert.ok(tensor, `weight ${name}`);
  const raw = tensor.rawData as Uint8Array;
  const values = raw.length > 0 ? new Float32Array(Uint8Array.from(raw).buffer) : Float32Array.from(tensor.floatData ?? []);
  return { tensor, values };
}

function sqnr(reference: Float32Array, test: Float32Array): number {
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < reference.length; i++) {
    signal += reference[i] ** 2;
    noise += (reference[i] - test[i]) ** 2;
  }
  return 10 * Math.log10(signal / noise);
}

/** Points switched by arithmetic instead of If: y = x + on·(FQ(x) − x), the FQ subgraph inlined (always computed). */
function maskVariant(inst: InstrumentedModel): onnx.ModelProto {
  const graph = inst.model.graph as onnx.IGraphProto;
  const byOutput = new Map(inst.points.map((p) => [p.output, p]));
  const nodes: onnx.INodeProto[] = [];
  for (const node of graph.node ?? []) {
    const point = node.opType === 'If' ? byOutput.get(node.output?.[0] ?? '') : undefined;
    if (!point) {
      nodes.push(node);
      continue;
    }
    const thenBranch = node.attribute?.find((a) => a.name === 'then_branch')?.g as onnx.IGraphProto;
    nodes.push(...(thenBranch.node ?? []));
    const fq = thenBranch.output?.[0].name as string;
    const tag = `mask/${point.index}`;
    nodes.push(
      { opType: 'Cast', input: [node.input?.[0] as string], output: [`${tag}/on`], attribute: [{ name: 'to', type: 2, i: DataType.FLOAT }] },
      { opType: 'Sub', input: [fq, point.tensor], output: [`${tag}/delta`] },
      { opType: 'Mul', input: [`${tag}/on`, `${tag}/delta`], output: [`${tag}/masked`] },
      { opType: 'Add', input: [point.tensor, `${tag}/masked`], output: [point.output] },
    );
  }
  return onnx.ModelProto.create({ ...inst.model, graph: onnx.GraphProto.create({ ...graph, node: nodes }) });
}

async function forwardMs(s: ort.InferenceSession, feeds: Feeds, runs: number): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) await s.run(feeds);
  return Number(process.hrtime.bigint() - start) / 1e6 / runs;
}

for (const real of realModels) {
  describe(`${real.name}: instrumented with every layer's weight and input`, () => {
    const model = onnx.ModelProto.decode(fs.readFileSync(real.file));
    const plan = layerPlan(model, true);
    const inst = instrumentModel(model, { ...plan, withTensorOutputs: true }, { file: real.file });
    const pointsOnly = instrumentModel(model, { ...plan, weights: [], withRangeOutputs: false });
    const withoutRanges = instrumentModel(model, { ...plan, withRangeOutputs: false });

    it('places a point on every layer input and a switch on every layer weight', () => {
      assert.deepEqual(inst.skipped, []);
      assert.ok(inst.points.length >= 20 && inst.weights.length >= 20, `${inst.points.length} points, ${inst.weights.length} weights`);
      assert.equal(inst.model.opsetImport?.find((o) => !o.domain)?.version, model.opsetImport?.find((o) => !o.domain)?.version);
      console.log(`# ${real.name}: ${inst.points.length} points, ${inst.weights.length} weights, ${inst.model.graph?.node?.length} top-level nodes`);
    });

    it('switched off, outputs equal the original bit for bit at every optimization level', async () => {
      const results: string[] = [];
      for (const level of ['disabled', 'extended', 'all'] as const) {
        const options: SessionOptions = { graphOptimizationLevel: level };
        const reference = await (await session(model, options)).run(real.inputs);
        const points = await runConfig(await session(pointsOnly.model, options), pointsOnly, real.inputs);
        const both = await runConfig(await session(inst.model, options), inst, real.inputs);
        for (const name of Object.keys(reference)) {
          assert.ok(bytesOf(points[name].data).equals(bytesOf(reference[name].data)), `points only, ${level}: ${name} identical`);
          const d = difference(floats(both[name]), floats(reference[name]));
          results.push(`${level}: ${d.count === 0 ? 'identical' : `${d.count} of ${floats(reference[name]).length} differ, max ${d.max.toExponential(1)}`}`);
          // The stored path stays in the main graph, so even "all"'s NCHWc layout and fusions apply to it as before.
          assert.equal(d.count, 0, `points and weights, ${level}: ${name} identical`);
        }
        // The range outputs of the first point (the model's input x) are its min and max.
        const first = inst.points.find((p) => p.tensor === 'x');
        assert.ok(first?.rangeOutputs);
        const xs = floats(real.inputs.x);
        assert.equal(floats(both[first.rangeOutputs.min])[0], xs.reduce((a, b) => Math.min(a, b)));
        assert.equal(floats(both[first.rangeOutputs.max])[0], xs.reduce((a, b) => Math.max(a, b)));
        // And every range output brackets the point's whole tensor.
        for (const point of inst.points) {
          const values = floats(both[point.tensorOutput as string]);
          assert.equal(floats(both[point.rangeOutputs?.min as string])[0], values.reduce((a, b) => Math.min(a, b)));
          assert.equal(floats(both[point.rangeOutputs?.max as string])[0], values.reduce((a, b) => Math.max(a, b)));
        }
      }
      console.log(`# ${real.name}, points and weights switched off vs original: ${results.join('; ')}`);
    });

    it('switched on, every point quantizes: A8 dynamic is close, A4 static per-tensor is worse', async () => {
      const s = await session(inst.model);
      const reference = await runConfig(s, inst, real.inputs);
      const calibration = new Map(inst.points.map((p) => {
        const range = [floats(reference[p.rangeOutputs?.min as string])[0], floats(reference[p.rangeOutputs?.max as string])[0]];
        return [p.index, range] as const;
      }));
      const out = Object.keys(reference).find((k) => !k.startsWith('quantlens/')) as string;
      const measure = async (make: (index: number) => ActivationQuant) => {
        const activations = new Map(inst.points.map((p) => [p.index, make(p.index)]));
        return sqnr(floats(reference[out]), floats((await runConfig(s, inst, real.inputs, { activations }))[out]));
      };
      const a8 = await measure(() => ({ mode: 'dynamic', bits: 8, symmetric: false }));
      const a4 = await measure((i) => {
        const [min, max] = calibration.get(i) as readonly number[];
        return { mode: 'static', bits: 4, symmetric: false, ...staticQuantParams(min, max, 4, false) };
      });
      console.log(`# ${real.name}: output SQNR with every point on: A8 dynamic per-token ${a8.toFixed(1)} dB, A4 static per-tensor ${a4.toFixed(1)} dB`);
      assert.ok(a8 > 20 && a8 < 120, `A8 SQNR ${a8}`);
      assert.ok(a4 < a8 - 10, `A4 ${a4} well below A8 ${a8}`);
    });

    it('a fed weight equals a copy of the original model with that weight replaced', async () => {
      // One convolution (or the first layer) and the last MatMul/Gemm.
      const opOf = (w: InstrumentedModel['weights'][number]) => model.graph?.node?.[w.consumers[0]]?.opType;
      const chosen = [
        inst.weights.find((w) => opOf(w) === 'Conv') ?? inst.weights[0],
        [...inst.weights].reverse().find((w) => opOf(w) === 'MatMul' || opOf(w) === 'Gemm') ?? inst.weights[inst.weights.length - 1],
      ];
      const overrides = chosen.map((weight) => {
        const { tensor, values } = storedWeight(model, weight.weight);
        assert.equal(tensor.dataType, DataType.FLOAT);
        // Conv weights are [out, in, k...]; MatMul weights [in, out]; Gemm's follow transB.
        const node = model.graph?.node?.[weight.consumers[0]] as onnx.INodeProto;
        const transB = node.attribute?.find((a) => a.name === 'transB')?.i;
        const axis = node.opType === 'MatMul' || (node.opType === 'Gemm' && !transB) ? weight.shape.length - 1 : 0;
        const quantized = naiveSymmetricPerChannel(values, weight.shape, axis, 4);
        const copy = onnx.ModelProto.decode(fs.readFileSync(real.file));
        const copied = storedWeight(copy, weight.weight).tensor;
        copied.rawData = new Uint8Array(quantized.buffer.slice(0));
        copied.floatData = [];
        return { weight, quantized, copy, op: node.opType as string };
      });
      for (const level of ['disabled', 'all'] as const) {
        const options: SessionOptions = { graphOptimizationLevel: level };
        const s = await session(inst.model, options);
        const unchanged = await runConfig(s, inst, real.inputs);
        for (const { weight, quantized, copy } of overrides) {
          const expected = await (await session(copy, options)).run(real.inputs);
          const fed = await runConfig(s, inst, real.inputs, { weights: new Map([[weight.weight, quantized]]) });
          for (const name of Object.keys(expected)) {
            const d = difference(floats(fed[name]), floats(expected[name]));
            if (level === 'disabled') assert.equal(d.count, 0, `${weight.weight}: ${name} bit for bit`);
            else assert.ok(d.max <= 1e-5 * Math.max(1, absMax(floats(expected[name]))), `${weight.weight} at ${level}: max ${d.max}`);
            assert.ok(difference(floats(unchanged[name]), floats(expected[name])).count > 0, 'the 4-bit weight changes the output');
          }
        }
      }
      const names = overrides.map((o) => `${o.weight.weight} (${o.op})`).join(', ');
      console.log(`# ${real.name}: 4-bit per-channel overrides of ${names} equal rebuilt models (bit for bit without graph optimizations)`);
    });

    it('writes a model that loads and runs on its own, switched off computing the original outputs bit for bit', async () => {
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-instrument-')), 'instrumented.onnx');
      try {
        await writeInstrumentedModel(file, inst);
        const s = await ort.InferenceSession.create(file, { ...QUIET, graphOptimizationLevel: 'disabled' });
        const out = await runConfig(s, inst, real.inputs);
        const reference = await (await session(model, { graphOptimizationLevel: 'disabled' })).run(real.inputs);
        assert.deepEqual(s.outputNames.filter((name) => name in reference), Object.keys(reference));
        for (const name of Object.keys(reference)) assert.ok(bytesOf(out[name].data).equals(bytesOf(reference[name].data)), `${name} identical`);
      } finally {
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
      }
    });

    it('overhead of switched-off points (printed, not asserted)', async () => {
      const options: SessionOptions = { intraOpNumThreads: 1 };
      const bare = { s: await session(model, options), feeds: real.inputs, times: [] as number[] };
      const variants = [
        bare,
        { s: await session(pointsOnly.model, options), feeds: { ...real.inputs, ...toOrt(instrumentFeeds(pointsOnly)) }, times: [] as number[] },
        { s: await session(maskVariant(pointsOnly), options), feeds: { ...real.inputs, ...toOrt(instrumentFeeds(pointsOnly)) }, times: [] as number[] },
        { s: await session(withoutRanges.model, options), feeds: { ...real.inputs, ...toOrt(instrumentFeeds(withoutRanges)) }, times: [] as number[] },
      ];
      for (const v of variants) await forwardMs(v.s, v.feeds, 2);
      // Side by side, best of several rounds: other processes share the cores.
      for (let round = 0; round < 6; round++) for (const v of variants) v.times.push(await forwardMs(v.s, v.feeds, 4));
      const best = variants.map((v) => Math.min(...v.times));
      const ratio = (i: number) => (best[i] / best[0]).toFixed(3);
      console.log(
        `# ${real.name}, forward (1 thread, ORT default optimizations): bare ${best[0].toFixed(2)} ms; ` +
          `points off via If ×${ratio(1)}; points off via arithmetic mask ×${ratio(2)}; points and weight switches off ×${ratio(3)}`,
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// ONNX's conformance corpus.

const QUANTIZABLE = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);
const NONDETERMINISTIC = /^(Random|Bernoulli|Multinomial)/;

function tensorFromProto(tensor: onnx.TensorProto): ort.Tensor | undefined {
  const dims = tensor.dims.map((d) => Number(d));
  const raw = tensor.rawData && tensor.rawData.length > 0 ? Uint8Array.from(tensor.rawData).buffer : undefined;
  const int64 = () => BigInt64Array.from(tensor.int64Data, (v) => BigInt(v.toString()));
  switch (tensor.dataType) {
    case DataType.FLOAT: return new ort.Tensor('float32', raw ? new Float32Array(raw) : Float32Array.from(tensor.floatData), dims);
    case DataType.DOUBLE: return new ort.Tensor('float64', raw ? new Float64Array(raw) : Float64Array.from(tensor.doubleData), dims);
    case DataType.FLOAT16: return new ort.Tensor('float16', raw ? new Uint16Array(raw) : Uint16Array.from(tensor.int32Data), dims);
    case DataType.INT64: return new ort.Tensor('int64', raw ? new BigInt64Array(raw) : int64(), dims);
    case DataType.INT32: return new ort.Tensor('int32', raw ? new Int32Array(raw) : Int32Array.from(tensor.int32Data), dims);
    case DataType.INT8: return new ort.Tensor('int8', raw ? new Int8Array(raw) : Int8Array.from(tensor.int32Data), dims);
    case DataType.UINT8: return new ort.Tensor('uint8', raw ? new Uint8Array(raw) : Uint8Array.from(tensor.int32Data), dims);
    case DataType.BOOL: return new ort.Tensor('bool', raw ? new Uint8Array(raw) : Uint8Array.from(tensor.int32Data), dims);
    default: return undefined;
  }
}

function corpusModels(): { category: string; dir: string }[] {
  const chosen: { category: string; dir: string }[] = [];
  for (const category of ['node', 'pytorch-converted', 'pytorch-operator', 'simple']) {
    const dirs = fs.readdirSync(path.join(CORPUS, category)).sort();
    dirs.forEach((name, i) => {
      const dir = path.join(CORPUS, category, name);
      if (!fs.existsSync(path.join(dir, 'model.onnx'))) return;
      if (category !== 'node' || i % 5 === 0) {
        chosen.push({ category, dir });
        return;
      }
      // Every node/ model with a quantizable op, a deterministic fifth of the rest.
      const model = onnx.ModelProto.decode(fs.readFileSync(path.join(dir, 'model.onnx')));
      if ((model.graph as onnx.GraphProto).node.some((n) => QUANTIZABLE.has(n.opType ?? ''))) chosen.push({ category, dir });
    });
  }
  return chosen;
}

describe('ONNX conformance corpus', { skip: !fs.existsSync(CORPUS) && 'libonnx-testdata is not installed' }, () => {
  it('switched-off instrumentation changes no output; switched-on points run', async () => {
    const counts = new Map<string, number>();
    const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
    const failures: string[] = [];
    const belowAll: string[] = [];
    const skipReasons = new Map<string, number>();
    let pytorchConverted = 0;
    const models = corpusModels();
    for (const { category, dir } of models) {
      const label = `${category}/${path.basename(dir)}`;
      const bytes = fs.readFileSync(path.join(dir, 'model.onnx'));
      const model = onnx.ModelProto.decode(bytes);
      const graph = model.graph as onnx.GraphProto;
      let original: ort.InferenceSession;
      try {
        original = await session(bytes, { logSeverityLevel: 4 });
      } catch {
        count('skipped: onnxruntime cannot load the original');
        continue;
      }
      if (graph.node.some((n) => NONDETERMINISTIC.test(n.opType ?? ''))) {
        count('skipped: random ops (outputs differ run to run)');
        continue;
      }
      const dataDir = path.join(dir, 'test_data_set_0');
      const inputFiles = fs.existsSync(dataDir) ? fs.readdirSync(dataDir).filter((f) => /^input_\d+\.pb$/.test(f)) : [];
      inputFiles.sort((a, b) => Number(a.slice(6, -3)) - Number(b.slice(6, -3)));
      const inputs: Feeds = {};
      try {
        inputFiles.forEach((file, i) => {
          const tensor = tensorFromProto(onnx.TensorProto.decode(fs.readFileSync(path.join(dataDir, file))));
          if (!tensor) throw new Error('unsupported element type');
          inputs[original.inputNames[i]] = tensor;
        });
      } catch {
        inputFiles.length = 0;
      }
      if (inputFiles.length !== original.inputNames.length) {
        count('skipped: test inputs of types this test does not decode');
        continue;
      }
      let reference: ort.InferenceSession.OnnxValueMapType;
      try {
        reference = await original.run(inputs);
      } catch {
        count('skipped: onnxruntime cannot run the original');
        continue;
      }

      // Every float input of every Conv/ConvTranspose/Gemm/MatMul and every float graph input; all layer weights.
      const initializers = new Set(graph.initializer.map((t) => t.name));
      const tensors = new Set<string>();
      for (const node of graph.node) if (QUANTIZABLE.has(node.opType ?? '')) for (const input of node.input ?? []) if (input) tensors.add(input);
      for (const input of graph.input) if (input.name && !initializers.has(input.name)) tensors.add(input.name);
      const plan = { ...layerPlan(model), activationPoints: [...tensors].map((tensor) => ({ tensor })) };
      let inst: InstrumentedModel;
      try {
        inst = instrumentModel(model, plan, { file: label });
      } catch (err) {
        assert.ok(err instanceof ModelError, `${label}: ${String(err)}`);
        count(`skipped: refused (${err.problem.replace(/ the model imports .*/, '')})`);
        continue;
      }
      for (const skipped of inst.skipped) {
        const reason = skipped.reason.replace(/\(.*\)/, '(…)');
        skipReasons.set(reason, (skipReasons.get(reason) ?? 0) + 1);
      }
      let instrumented: ort.InferenceSession;
      let off: ort.InferenceSession.OnnxValueMapType;
      try {
        instrumented = await session(inst.model, { logSeverityLevel: 4 });
        off = await runConfig(instrumented, inst, inputs);
      } catch (err) {
        failures.push(`${label}: ${String(err).slice(0, 300)}`);
        continue;
      }
      count('checked');
      if (category === 'pytorch-converted') pytorchConverted++;
      if (inst.points.length > 0) count('checked, with fake-quant points');
      if (inst.weights.length > 0) count('checked, with weight switches');
      const differing = original.outputNames.filter((name) => !bytesOf(off[name].data).equals(bytesOf(reference[name].data)));
      if (differing.length === 0) {
        count('identical (bit for bit)');
      } else if (inst.points.some((p) => initializers.has(p.tensor))) {
        // A point on a stored tensor (a Conv's bias) makes it a computed value, for which "all" may choose another
        // kernel: at "extended" the outputs must be identical.
        const options: SessionOptions = { logSeverityLevel: 4, graphOptimizationLevel: 'extended' };
        const expected = await (await session(bytes, options)).run(inputs);
        const got = await runConfig(await session(inst.model, options), inst, inputs);
        const still = original.outputNames.filter((name) => !bytesOf(got[name].data).equals(bytesOf(expected[name].data)));
        if (still.length > 0) failures.push(`${label}: outputs ${still.join(', ')} differ even at "extended"`);
        else {
          const max = Math.max(...differing.map((name) => difference(floats(off[name]), floats(reference[name])).max));
          belowAll.push(`${path.basename(dir)} (max ${max.toExponential(1)})`);
          count('identical at "extended"; at "all" within float rounding');
        }
      } else {
        failures.push(`${label}: outputs ${differing.join(', ')} differ with every point off`);
      }

      // Points on layer inputs switched on must run (static, then dynamic asymmetric/symmetric alternating).
      const layerPoints = inst.points.filter((p) => p.consumers.every((c) => QUANTIZABLE.has(graph.node[c].opType ?? '')));
      if (layerPoints.length === 0) continue;
      for (const mode of ['static', 'dynamic'] as const) {
        const activations = new Map(layerPoints.map((p): [number, ActivationQuant] => [
          p.index,
          mode === 'static' ? { mode, bits: 8, symmetric: false, scale: 0.05, zeroPoint: 128 } : { mode, bits: 8, symmetric: p.index % 2 === 0 },
        ]));
        try {
          const on = await runConfig(instrumented, inst, inputs, { activations });
          for (const name of original.outputNames) assert.deepEqual(on[name].dims, reference[name].dims);
          count(`points switched on (${mode}) ran`);
        } catch (err) {
          failures.push(`${label}, points on (${mode}): ${String(err).slice(0, 300)}`);
        }
      }
    }
    console.log(`# conformance corpus: ${models.length} models sampled (every node/ model with Conv/Gemm/MatMul, a fifth of the other node/ models, all of pytorch-converted, pytorch-operator, simple)`);
    for (const [key, value] of [...counts].sort()) console.log(`#   ${key}: ${value}`);
    for (const [key, value] of [...skipReasons].sort()) console.log(`#   point not placed, ${key}: ${value}`);
    if (belowAll.length > 0) console.log(`#   differing at "all" only: ${belowAll.join(', ')}`);
    assert.deepEqual(failures, []);
    assert.ok((counts.get('checked') ?? 0) >= 280, 'a good share of the corpus is checked');
    assert.ok((counts.get('checked, with fake-quant points') ?? 0) >= 240);
    assert.ok(pytorchConverted >= 50, `pytorch-converted models checked: ${pytorchConverted}`);
  });
});
