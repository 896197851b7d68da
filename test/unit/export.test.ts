// QDQ export and allocation files: exported models of the sample (opset 17: DequantizeLinear / QuantizeLinear) and of
// PP-OCRv4 rec (opset 9: Cast·Mul weights, fake-quant subgraphs) load and run in onnxruntime; their weights are the
// integer codes an independent float64 quantizer gives; their outputs match the fake-quant simulation (the
// instrumented model with quantizeWeight's weights and the same static activation scales) within the tolerances
// stated below; allocation files and YAML are checked. Prints sizes and SQNRs.
//
// Tolerances, and why:
//   1. Weights: the codes are identical; dequantized, float32(q)·float32(s) is within one float32 ulp of
//      quantizeWeight's float32(q·s) with s in float64.
//   2. Same weights on both sides, graph optimizations off: the opset-9 export (the simulation's own fake-quant
//      subgraphs) is bit-identical; the opset-17 QDQ export is within 100 dB SQNR (QuantizeLinear divides by the scale
//      where the simulation multiplies by its reciprocal, and the products are summed in another order).
//   3. quantizeWeight's weights (the simulation as sensitivity runs compute it), optimizations off: the one-ulp weight
//      differences move a few activations across a rounding boundary by one step, and the network carries those steps
//      to the output; that difference stays ≥ 20 dB below the quantization noise itself (SQNR of export against the
//      simulation ≥ SQNR of the simulation against full precision + 20 dB).
//   4. Default optimizations (what users run): onnxruntime replaces QDQ pairs with integer kernels; the export's SQNR
//      against full precision is the simulation's within 0.5 dB.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { graphIntRanges, loadCalibration, withTimestep, type Feeds } from '../../extension/engine/calib';
import { toOrtFeeds } from '../../extension/engine/calib/ortFeeds';
import { ModelError } from '../../extension/engine/errors';
import {
  allocationFromSearch,
  allocationToYaml,
  loadAllocation,
  rangeLabel,
  saveAllocation,
  sha256File,
  validateAllocationForModel,
} from '../../extension/engine/export/allocation';
import { exportQdq, type ExportResult } from '../../extension/engine/export/qdq';
import { encodeModel, instrumentFeeds, instrumentModel, staticQuantParams, type ActivationQuant } from '../../extension/engine/instrument/instrument';
import { layerNodes } from '../../extension/engine/instrument/plan';
import { openModel } from '../../extension/engine/model/open';
import { quantizeWeight } from '../../extension/engine/quant/weightQuant';
import { search } from '../../extension/engine/search/solver';
import { ALLOCATION_SCHEMA, type AllocationFile, type AllocationRange, type LayerAllocation } from '../../extension/protocol/allocation';
import type { LayerInfo } from '../../extension/protocol/records';
import type { SearchProblem } from '../../extension/protocol/search';
import { naiveAsymmetricCodes, roundHalfEven } from './naiveQuant';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const SAMPLE = path.join(repoRoot, 'resources', 'sample', 'dit-sample.onnx');
const REC = path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
const REC_DIMS = { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 320 };
const DataType = onnx.TensorProto.DataType;
const f32 = Math.fround;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-export-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Level = 'disabled' | 'all';

// ---------------------------------------------------------------------------------------------------------------
// independent helpers

/** Per-output-channel symmetric round-to-nearest in float64, element by element: codes and scales. */
function naiveCodes(data: Float32Array, shape: number[], axis: number, bits: number): { codes: Int32Array; scales: Float64Array; channelOf: (i: number) => number } {
  const levels = 2 ** (bits - 1) - 1;
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channels = shape[axis];
  const channelOf = (i: number) => Math.floor(i / inner) % channels;
  const absMax = new Float64Array(channels);
  for (let i = 0; i < data.length; i++) absMax[channelOf(i)] = Math.max(absMax[channelOf(i)], Math.abs(data[i]));
  const scales = absMax.map((m) => m / levels);
  const codes = new Int32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const m = absMax[channelOf(i)];
    // w / s as QuantLens defines it (weightQuant.ts): w · (1 / absmax) · levels. Plain w / s differs at near-ties,
    // which real weights do hit.
    codes[i] = m === 0 ? 0 : roundHalfEven(data[i] * (1 / m) * levels);
  }
  return { codes, scales, channelOf };
}

function ulp32(x: number): number {
  const a = Math.abs(x);
  return a === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

function tensorValues(tensor: onnx.ITensorProto): Float64Array {
  // A copy: decoded raw_data may be an unaligned view into the file's bytes.
  const bytes = Uint8Array.from(tensor.rawData as Uint8Array);
  switch (tensor.dataType) {
    case DataType.INT8:
      return Float64Array.from(new Int8Array(bytes.buffer));
    case DataType.UINT8:
      return Float64Array.from(bytes);
    case DataType.INT16:
      return Float64Array.from(new Int16Array(bytes.buffer));
    case DataType.FLOAT:
      return Float64Array.from(new Float32Array(bytes.buffer));
    default:
      throw new Error(`unexpected element type ${tensor.dataType}`);
  }
}

/** (a − z) · b with numpy broadcasting of b and z (same rank, dims 1 or equal), each product rounded to float32. */
function broadcastProduct(a: Float64Array, aDims: number[], b: Float64Array, bDims: number[], z?: Float64Array): Float32Array {
  const out = new Float32Array(a.length);
  const rank = aDims.length;
  const index = new Array<number>(rank).fill(0);
  for (let i = 0; i < a.length; i++) {
    let bi = 0;
    for (let k = 0; k < rank; k++) bi = bi * bDims[k] + (bDims[k] === 1 ? 0 : index[k]);
    out[i] = f32((a[i] - (z ? z[bi] : 0)) * b[bi]);
    for (let k = rank - 1; k >= 0; k--) {
      if (++index[k] < aDims[k]) break;
      index[k] = 0;
    }
  }
  return out;
}

interface ExportedWeightData {
  codesType: number;
  codes: Float64Array;
  /** The zero points' element type and values (absent when symmetric). */
  zeroType?: number;
  zeroPoints?: Float64Array;
  dequantized: Float32Array;
  ops: string[];
}

/** Reads a weight back from the exported file: its integer codes and what the graph computes from them. */
function readExportedWeight(model: onnx.ModelProto, weight: string): ExportedWeightData {
  const graph = model.graph as onnx.GraphProto;
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const producer = (name: string) => graph.node.find((n) => (n.output ?? []).includes(name));
  const inputs = (node: onnx.INodeProto) => (node.input ?? []) as string[];
  const ops: string[] = [];
  let node = producer(weight);
  while (node && (node.opType === 'Reshape' || (node.opType === 'Cast' && !initializers.has(inputs(node)[0])))) {
    ops.push(node.opType as string);
    node = producer(inputs(node)[0]);
  }
  assert.ok(node, `nothing produces ${weight}`);
  ops.push(node.opType as string);
  const dims = (t: onnx.ITensorProto) => (t.dims ?? []).map(Number);
  const read = (codes: onnx.TensorProto, scale: onnx.TensorProto, scaleDims: number[], zero?: onnx.TensorProto): ExportedWeightData => {
    const values = tensorValues(codes);
    const zeroPoints = zero && tensorValues(zero);
    return {
      codesType: codes.dataType,
      codes: values,
      ...(zero ? { zeroType: zero.dataType, zeroPoints } : {}),
      dequantized: broadcastProduct(values, dims(codes), tensorValues(scale), scaleDims, zeroPoints),
      ops,
    };
  };
  if (node.opType === 'DequantizeLinear') {
    const codes = initializers.get(inputs(node)[0]) as onnx.TensorProto;
    const scale = initializers.get(inputs(node)[1]) as onnx.TensorProto;
    const zero = inputs(node)[2] ? (initializers.get(inputs(node)[2]) as onnx.TensorProto) : undefined;
    const axis = Number((node.attribute ?? []).find((a) => a.name === 'axis')?.i ?? 1);
    return read(codes, scale, dims(codes).map((d, k) => (k === axis ? d : 1)), zero);
  }
  assert.equal(node.opType, 'Mul');
  let cast = producer(inputs(node)[0]) as onnx.NodeProto;
  let zero: onnx.TensorProto | undefined;
  if (cast.opType === 'Sub') {
    ops.push('Sub');
    zero = initializers.get(inputs(cast)[1]) as onnx.TensorProto;
    cast = producer(inputs(cast)[0]) as onnx.NodeProto;
  }
  ops.push(cast.opType);
  const scale = initializers.get(inputs(node)[1]) as onnx.TensorProto;
  return read(initializers.get(inputs(cast)[0]) as onnx.TensorProto, scale, dims(scale), zero);
}

function opCounts(model: onnx.ModelProto): Map<string, number> {
  const counts = new Map<string, number>();
  for (const node of (model.graph as onnx.GraphProto).node) counts.set(node.opType ?? '', (counts.get(node.opType ?? '') ?? 0) + 1);
  return counts;
}

/** 10·log10(Σy² / Σ(y − ŷ)²) over every run, in float64. */
function sqnr(reference: Float32Array[], approx: Float32Array[]): number {
  let signal = 0;
  let noise = 0;
  reference.forEach((y, r) => {
    for (let i = 0; i < y.length; i++) {
      signal += y[i] * y[i];
      noise += (y[i] - approx[r][i]) ** 2;
    }
  });
  return noise === 0 ? Infinity : 10 * Math.log10(signal / noise);
}

async function session(model: string | Uint8Array, level: Level): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model as Uint8Array, { logSeverityLevel: 3, graphOptimizationLevel: level });
}

/** The first output of every run. */
async function run(model: string | Uint8Array, feeds: Feeds[], level: Level, extra: Record<string, ort.Tensor> = {}): Promise<Float32Array[]> {
  const s = await session(model, level);
  try {
    const outputs: Float32Array[] = [];
    for (const feed of feeds) outputs.push((await s.run({ ...toOrtFeeds(feed), ...extra }))[s.outputNames[0]].data as Float32Array);
    return outputs;
  } finally {
    await s.release();
  }
}

/** Weights symmetric unless `weightSymmetric` is false (then the file says so; otherwise it says nothing, as old files). */
function allocation(fileName: string, ranges: AllocationRange[], symmetric = true, weightSymmetric = true): AllocationFile {
  return {
    schema: ALLOCATION_SCHEMA,
    model: { fileName },
    ranges,
    weight: { granularity: 'channel', ...(weightSymmetric ? {} : { symmetric: false }) },
    activation: { mode: 'static-minmax', symmetric },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// the scenario: one model, one mixed allocation, the export checked against the simulation

interface Scenario {
  file: string;
  layers: LayerInfo[];
  alloc: AllocationFile;
  feeds: Feeds[];
  result: ExportResult;
  exported: onnx.ModelProto;
}

async function scenario(
  file: string,
  pick: (layer: LayerInfo, index: number) => LayerAllocation | undefined,
  timesteps: number[] | null,
  calibration: { samples: number; dims?: Record<string, number> },
  out: string,
  weightSymmetric = true,
): Promise<Scenario> {
  const opened = await openModel(file);
  const layers = opened.layers;
  const inputs = opened.summary.inputs;
  await opened.close();
  const chosen = Object.fromEntries(layers.flatMap((layer, i) => (pick(layer, i) ? [[layer.name, pick(layer, i) as LayerAllocation]] : [])));
  const alloc = allocation(path.basename(file), [{ timesteps, label: rangeLabel(timesteps), layers: chosen }], true, weightSymmetric);
  const result = await exportQdq(file, alloc, { outPath: out, calibration, measure: true });
  // The export's feeds: integer inputs drawn from the rows of the tables they index, as graphIntRanges says.
  const intRanges = graphIntRanges(onnx.ModelProto.decode(fs.readFileSync(file)).graph as onnx.IGraphProto, inputs);
  const set = await loadCalibration(file, inputs, { ...calibration, intRanges });
  const t = inputs.find((i) => i.name === 't');
  const feeds = timesteps && t ? timesteps.flatMap((value) => set.samples.map((s) => withTimestep(s, 't', value, t))) : set.samples;
  const exported = onnx.ModelProto.decode(fs.readFileSync(out));
  return { file, layers, alloc, feeds, result, exported };
}

/** Min and max of each tensor over the feeds, from the full-precision model with the tensors as extra outputs. */
async function tensorRanges(file: string, tensors: string[], feeds: Feeds[]): Promise<Map<string, { min: number; max: number }>> {
  const model = onnx.ModelProto.decode(fs.readFileSync(file));
  const graph = model.graph as onnx.GraphProto;
  graph.output.push(...tensors.filter((t) => !graph.output.some((o) => o.name === t)).map((name) => onnx.ValueInfoProto.create({ name })));
  const s = await session(encodeModel(model), 'disabled');
  const ranges = new Map(tensors.map((t) => [t, { min: Infinity, max: -Infinity }]));
  try {
    for (const feed of feeds) {
      const out = await s.run(toOrtFeeds(feed));
      for (const [name, range] of ranges) {
        for (const v of out[name].data as Float32Array) {
          range.min = Math.min(range.min, v);
          range.max = Math.max(range.max, v);
        }
      }
    }
  } finally {
    await s.release();
  }
  return ranges;
}

/** The fake-quant simulation of the scenario's allocation with the given weights, its points placed as sensitivity runs place them. */
async function simulate(sc: Scenario, weights: Map<string, Float32Array>, level: Level): Promise<Float32Array[]> {
  const model = onnx.ModelProto.decode(fs.readFileSync(sc.file));
  const range = sc.alloc.ranges[0];
  const byName = new Map(sc.layers.map((l) => [l.name, l]));
  const nodes = layerNodes(model.graph as onnx.GraphProto);
  const points: { tensor: string; consumers: number[]; bits: number }[] = [];
  for (const [name, chosen] of Object.entries(range.layers)) {
    if (chosen.activationBits === null) continue;
    const layer = byName.get(name) as LayerInfo;
    const mine = nodes.filter((n) => n.weight === layer.weight);
    for (const tensor of new Set(mine.map((n) => n.activation))) {
      points.push({ tensor, consumers: mine.filter((n) => n.activation === tensor).map((n) => n.nodeIndex), bits: chosen.activationBits });
    }
  }
  const ranges = await tensorRanges(sc.file, [...new Set(points.map((p) => p.tensor))], sc.feeds);
  const inst = instrumentModel(model, { weights: [...weights.keys()], activationPoints: points });
  assert.equal(inst.points.length, points.length, 'every point placed');
  const activations = new Map<number, ActivationQuant>();
  points.forEach((p, i) => {
    const { min, max } = ranges.get(p.tensor) as { min: number; max: number };
    // The export calibrated the same ranges (up to the rounding of kernels onnxruntime fuses differently when the
    // tensor is an output) and made its scale from them; the simulation takes that scale, so both quantize alike.
    const exported = sc.result.activations.find((a) => a.tensor === p.tensor && a.consumers.join() === p.consumers.join());
    assert.ok(exported, `export has a point on ${p.tensor}`);
    const near = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(Math.abs(a), Math.abs(b), 1e-6);
    assert.ok(near(exported.min, min) && near(exported.max, max), `${p.tensor}: [${exported.min}, ${exported.max}] vs [${min}, ${max}]`);
    const params = staticQuantParams(exported.min, exported.max, p.bits, true);
    assert.equal(exported.scale, f32(params.scale));
    activations.set(inst.points[i].index, { mode: 'static', bits: p.bits, symmetric: true, ...params });
  });
  const control = Object.fromEntries(
    Object.entries(instrumentFeeds(inst, { weights, activations })).map(([name, f]) => [name, new ort.Tensor(f.type, f.data, f.dims)]),
  );
  return run(encodeModel(inst.model), sc.feeds, level, control);
}

async function checkScenario(sc: Scenario, label: string, sameWeightsExact: boolean): Promise<void> {
  const symmetric = sc.alloc.weight.symmetric !== false;
  const opened = await openModel(sc.file);
  const quantized = new Map<string, Float32Array>();
  const asExported = new Map<string, Float32Array>();
  try {
    for (const [name, chosen] of Object.entries(sc.alloc.ranges[0].layers)) {
      if (chosen.weightBits >= 16) continue;
      const layer = sc.layers.find((l) => l.name === name) as LayerInfo;
      const data = await opened.readTensorF32(layer.weight);
      const reference = quantizeWeight(data, layer.shape, layer.channelAxis, chosen.weightBits, { kind: 'channel' }, symmetric);
      const stored = readExportedWeight(sc.exported, layer.weight);
      let naive: { codes: Int32Array; scales: Float64Array; zeroPoints?: Float64Array; channelOf: (i: number) => number };
      if (symmetric) {
        naive = naiveCodes(data, layer.shape, layer.channelAxis, chosen.weightBits);
        const levels = 2 ** (chosen.weightBits - 1) - 1;
        assert.equal(stored.codesType, DataType.INT8, `${name}: int8 codes`);
        assert.equal(stored.zeroPoints, undefined, `${name}: no zero point`);
        assert.ok(stored.codes.every((q) => Math.abs(q) <= levels), `${name}: codes within ±${levels}`);
      } else {
        naive = naiveAsymmetricCodes(data, layer.shape, layer.channelAxis, chosen.weightBits);
        const top = 2 ** chosen.weightBits - 1;
        assert.equal(stored.codesType, DataType.UINT8, `${name}: uint8 codes`);
        assert.ok(stored.codes.every((q) => q >= 0 && q <= top), `${name}: codes within 0…${top}`);
        // DequantizeLinear takes uint8 zero points; Cast·Sub·Mul subtracts them in float.
        assert.equal(stored.zeroType, stored.ops.includes('DequantizeLinear') ? DataType.UINT8 : DataType.FLOAT, `${name}: zero point type`);
        assert.deepEqual(Array.from(stored.zeroPoints ?? []), Array.from(naive.zeroPoints ?? []), `${name}: zero point per channel`);
      }
      assert.deepEqual(Array.from(stored.codes), Array.from(naive.codes), `${name}: codes of an independent quantizer`);
      for (let i = 0; i < data.length; i++) {
        const channel = naive.channelOf(i);
        const expected = f32((naive.codes[i] - (naive.zeroPoints?.[channel] ?? 0)) * f32(naive.scales[channel] || 1));
        if (stored.dequantized[i] !== expected) assert.fail(`${name}[${i}]: ${stored.dequantized[i]} ≠ q·s = ${expected}`);
        // A scale below float32's normal range (a channel of weights ~1e-39, zero in effect) is stored with an
        // absolute error up to 2^-150, which q multiplies.
        const bound = ulp32(reference[i]) + Math.abs(naive.codes[i] - (naive.zeroPoints?.[channel] ?? 0)) * 2 ** -149;
        if (Math.abs(stored.dequantized[i] - reference[i]) > bound) assert.fail(`${name}[${i}]: ${stored.dequantized[i]} is more than an ulp from quantizeWeight's ${reference[i]}`);
      }
      quantized.set(layer.weight, reference);
      asExported.set(layer.weight, stored.dequantized);
    }
  } finally {
    await opened.close();
  }

  const fp = await run(sc.file, sc.feeds, 'disabled');
  const exportedOff = await run(sc.result.outPath, sc.feeds, 'disabled');
  // 2. the same weights, optimizations off.
  const simSame = await simulate(sc, asExported, 'disabled');
  const same = sqnr(simSame, exportedOff);
  if (sameWeightsExact) assert.equal(same, Infinity, `${label}: bit-identical to the simulation given the same weights`);
  else assert.ok(same >= 100, `${label}: ${same.toFixed(1)} dB from the simulation given the same weights`);
  // 3. quantizeWeight's weights, optimizations off.
  const sim = await simulate(sc, quantized, 'disabled');
  const quantNoise = sqnr(fp, sim);
  const apart = sqnr(sim, exportedOff);
  assert.ok(apart >= quantNoise + 20, `${label}: export vs simulation ${apart.toFixed(1)} dB, simulation vs float ${quantNoise.toFixed(1)} dB`);
  // 4. default optimizations.
  const fpAll = await run(sc.file, sc.feeds, 'all');
  const simAll = sqnr(fpAll, await simulate(sc, quantized, 'all'));
  const exportedAll = sqnr(fpAll, await run(sc.result.outPath, sc.feeds, 'all'));
  assert.ok(Math.abs(exportedAll - simAll) <= 0.5, `${label}: export ${exportedAll.toFixed(2)} dB vs simulation ${simAll.toFixed(2)} dB against float`);
  const measured = sc.result.measured?.outputs[Object.keys(sc.result.measured.outputs)[0]];
  assert.ok(measured && Math.abs(measured.sqnrDb - exportedAll) < 1e-6, `${label}: the reported SQNR is the measured one`);
  assert.ok(Number.isFinite(measured.sqnrDb) && measured.sqnrDb < 200);
  console.log(
    `${label}: ${(sc.result.originalBytes / 1e6).toFixed(2)} MB → ${(sc.result.exportedBytes / 1e6).toFixed(2)} MB; ` +
      `same weights ${same === Infinity ? 'bit-identical' : `${same.toFixed(1)} dB`}; export vs simulation ${apart.toFixed(1)} dB ` +
      `(quantization noise ${quantNoise.toFixed(1)} dB); against float: export ${exportedAll.toFixed(2)} dB, simulation ${simAll.toFixed(2)} dB`,
  );
}

// ---------------------------------------------------------------------------------------------------------------

const SAMPLE_CHOICE: Record<string, LayerAllocation> = {
  'x_embedder.proj': { weightBits: 8, activationBits: 8 },
  't_embedder.mlp.0': { weightBits: 8, activationBits: null },
  'blocks.0.attn.qkv': { weightBits: 4, activationBits: 8 },
  'blocks.0.mlp.fc1': { weightBits: 8, activationBits: null },
  'blocks.1.mlp.fc2': { weightBits: 4, activationBits: 8 },
  'blocks.2.attn.proj': { weightBits: 16, activationBits: 4 },
  'blocks.3.mlp.fc1': { weightBits: 4, activationBits: 8 },
};
const recChoice = (_: LayerInfo, i: number): LayerAllocation => ({ weightBits: i % 2 ? 4 : 8, activationBits: i % 3 === 0 ? 8 : null });

describe('QDQ export', () => {
  let sample: Scenario;
  let rec: Scenario;
  before(async () => {
    sample = await scenario(SAMPLE, (layer) => SAMPLE_CHOICE[layer.name], [999, 500], { samples: 2 }, path.join(tmp, 'sample.qdq.onnx'));
    rec = await scenario(REC, recChoice, null, { samples: 2, dims: REC_DIMS }, path.join(tmp, 'rec.qdq.onnx'));
  });

  it('the sample (opset 17): DequantizeLinear weights, QuantizeLinear/DequantizeLinear activations, matching the simulation', async () => {
    const ops = opCounts(sample.exported);
    assert.equal(ops.get('DequantizeLinear'), sample.result.weights.length + ops.get('QuantizeLinear')!);
    assert.equal(ops.get('QuantizeLinear'), sample.result.activations.length, 'one per point (no two share a tensor here)');
    assert.equal(ops.get('Clip'), sample.result.activations.length, 'symmetric codes stop at ±(2^(b−1) − 1)');
    assert.ok(sample.result.weights.every((w) => w.form === 'DequantizeLinear' && w.storage === 'int8'));
    assert.ok(sample.result.activations.every((a) => a.form === 'QuantizeLinear/DequantizeLinear'));
    // The float weight that stays float is stored as before.
    const original = onnx.ModelProto.decode(fs.readFileSync(SAMPLE));
    const kept = (m: onnx.ModelProto) => m.graph?.initializer?.find((t) => t.name === 'blocks.2.attn.proj.weight');
    assert.deepEqual(kept(sample.exported)?.rawData, kept(original)?.rawData);
    assert.equal(sample.result.range.label, '999-500');
    await checkScenario(sample, 'sample W4/W8 + A8/A4', false);
  });

  it('PP-OCRv4 rec (opset 9, weights in Constant nodes): Cast·Mul weights and fake-quant subgraphs, opset kept, matching the simulation', async () => {
    const ops = opCounts(rec.exported);
    assert.equal(ops.get('QuantizeLinear'), undefined);
    assert.equal(ops.get('DequantizeLinear'), undefined);
    assert.deepEqual(rec.exported.opsetImport.map((o) => Number(o.version)), [9]);
    assert.ok(rec.result.weights.every((w) => w.form === 'Cast·Mul'));
    assert.ok(rec.result.activations.length > 0 && rec.result.activations.every((a) => a.form === 'fake-quant subgraph'));
    assert.ok(rec.result.notes.some((n) => n.includes('opset 9 has no QuantizeLinear')));
    assert.ok(rec.result.notes.some((n) => n.includes('per-channel DequantizeLinear needs opset 13')));
    await checkScenario(rec, 'PP-OCRv4 rec W4/W8 + A8', true);
  });

  it('asymmetric weights, the sample (opset 17): uint8 codes and a uint8 zero point per channel in DequantizeLinear, matching the simulation', async () => {
    const sc = await scenario(SAMPLE, (layer) => SAMPLE_CHOICE[layer.name], [999, 500], { samples: 2 }, path.join(tmp, 'sample.asym.qdq.onnx'), false);
    assert.ok(sc.result.weights.length > 0);
    assert.ok(sc.result.weights.every((w) => w.form === 'DequantizeLinear' && w.storage === 'uint8' && !w.symmetric));
    const weights = new Set(sc.result.weights.map((w) => w.weight));
    const weightNodes = (sc.exported.graph as onnx.GraphProto).node.filter((n) => n.opType === 'DequantizeLinear' && weights.has(n.output?.[0] ?? ''));
    assert.equal(weightNodes.length, sc.result.weights.length);
    assert.ok(weightNodes.every((n) => n.input?.length === 3), 'each weight DequantizeLinear takes its zero points');
    assert.ok(sc.result.notes.some((n) => n.includes('asymmetric weights') && n.includes('uint8')));
    await checkScenario(sc, 'sample asymmetric W4/W8 + A8/A4', false);
    // The same allocation quantized symmetrically differs in what it stores.
    assert.notDeepEqual(readExportedWeight(sc.exported, 'blocks.0.attn.qkv.weight').dequantized, readExportedWeight(sample.exported, 'blocks.0.attn.qkv.weight').dequantized);
  });

  it('asymmetric weights, PP-OCRv4 rec (opset 9): Cast·Sub·Mul with float zero points, matching the simulation', async () => {
    const sc = await scenario(REC, recChoice, null, { samples: 2, dims: REC_DIMS }, path.join(tmp, 'rec.asym.qdq.onnx'), false);
    assert.ok(sc.result.weights.length > 0 && sc.result.weights.every((w) => w.form === 'Cast·Sub·Mul' && w.storage === 'uint8'));
    assert.ok(sc.result.notes.some((n) => n.includes('Cast·Sub·Mul') && n.includes('per-channel DequantizeLinear needs opset 13')));
    const stored = readExportedWeight(sc.exported, sc.result.weights[0].weight);
    assert.deepEqual(stored.ops, ['Mul', 'Sub', 'Cast']);
    assert.equal(stored.zeroType, DataType.FLOAT);
    await checkScenario(sc, 'PP-OCRv4 rec asymmetric W4/W8 + A8', true);
  });

  it('sizes on disk: int8 codes save 3 bytes per quantized weight; 4-bit weights take a byte too', async () => {
    const opened = await openModel(SAMPLE);
    const layers = opened.layers;
    await opened.close();
    const every = (bits: number) => allocation('dit-sample.onnx', [{ timesteps: null, label: 'all', layers: Object.fromEntries(layers.map((l) => [l.name, { weightBits: bits, activationBits: null }])) }]);
    const eight = await exportQdq(SAMPLE, every(8), { outPath: path.join(tmp, 'w8.onnx'), measure: true, calibration: { samples: 2 } });
    const four = await exportQdq(SAMPLE, every(4), { outPath: path.join(tmp, 'w4.onnx'), measure: true, calibration: { samples: 2 } });
    const params = layers.reduce((sum, l) => sum + l.params, 0);
    const saved = eight.originalBytes - eight.exportedBytes;
    assert.equal(eight.originalBytes, fs.statSync(SAMPLE).size);
    assert.equal(eight.exportedBytes, fs.statSync(path.join(tmp, 'w8.onnx')).size);
    // Per channel a float scale (4 bytes) and a few nodes are added back.
    assert.ok(saved > 3 * params * 0.98 && saved < 3 * params, `saved ${saved} bytes for ${params} weights`);
    assert.ok(Math.abs(four.exportedBytes - eight.exportedBytes) < 1000, 'int8 storage whatever the bits');
    const s8 = eight.measured?.outputs.out.sqnrDb as number;
    const s4 = four.measured?.outputs.out.sqnrDb as number;
    assert.ok(Number.isFinite(s4) && s8 < 200 && s8 > s4 + 10, `W8 ${s8} dB, W4 ${s4} dB`);
    console.log(`sample all-W8: ${eight.originalBytes} → ${eight.exportedBytes} bytes, SQNR ${s8.toFixed(1)} dB; all-W4: ${four.exportedBytes} bytes, ${s4.toFixed(1)} dB`);
  });

  it('per-group scales (Cast·Mul, or Cast·Sub·Mul when asymmetric, on a [.., channel, block, 1] view) dequantize to quantizeWeight within an ulp', async () => {
    const opened = await openModel(REC);
    const conv = opened.layers[0]; // [16, 3, 3, 3], channel axis 0: groups of 9 of its 27 inputs
    const matmul = opened.layers.find((l) => l.shape.join() === '120,360') as LayerInfo; // [K, N], axis 1: groups of 40 rows
    const layers = { [conv.name]: { weightBits: 4, activationBits: null, granularity: { group: 9 } }, [matmul.name]: { weightBits: 6, activationBits: null, granularity: { group: 40 } } };
    const inputs = opened.summary.inputs;
    const feeds = (await loadCalibration(REC, inputs, { samples: 1, dims: REC_DIMS })).samples;
    for (const symmetric of [true, false]) {
      const out = path.join(tmp, `groups-${symmetric ? 'sym' : 'asym'}.onnx`);
      const result = await exportQdq(REC, allocation('rec', [{ timesteps: null, label: 'all', layers }], true, symmetric), { outPath: out });
      const exported = onnx.ModelProto.decode(fs.readFileSync(out));
      for (const [layer, bits, size] of [[conv, 4, 9], [matmul, 6, 40]] as const) {
        const stored = readExportedWeight(exported, layer.weight);
        assert.deepEqual(stored.ops, symmetric ? ['Reshape', 'Mul', 'Cast'] : ['Reshape', 'Mul', 'Sub', 'Cast']);
        const reference = quantizeWeight(await opened.readTensorF32(layer.weight), layer.shape, layer.channelAxis, bits, { kind: 'group', size }, symmetric);
        assert.equal(stored.dequantized.length, reference.length);
        assert.ok(stored.dequantized.every((v, i) => Math.abs(v - reference[i]) <= ulp32(reference[i])), `${layer.name}: group dequantization`);
      }
      assert.equal(result.weights.length, 2);
      const [output] = await run(out, feeds, 'all');
      assert.equal(output.length, 40 * 6625, 'the model runs');
    }
    await opened.close();
  });

  it('each timestep range is its own model, with scales calibrated at its timesteps', async () => {
    const chosen = { 'blocks.3.mlp.fc2': { weightBits: 8, activationBits: 8 } };
    const alloc = allocation('dit-sample.onnx', [
      { timesteps: [999, 750], label: '999-750', layers: chosen },
      { timesteps: [250, 0], label: '250-0', layers: { ...chosen, 'blocks.0.attn.qkv': { weightBits: 4, activationBits: null } } },
    ]);
    const first = await exportQdq(SAMPLE, alloc, { outPath: path.join(tmp, 'r0.onnx'), calibration: { samples: 1 } });
    const second = await exportQdq(SAMPLE, alloc, { outPath: path.join(tmp, 'r1.onnx'), calibration: { samples: 1 }, rangeIndex: 1 });
    assert.equal(first.range.label, '999-750');
    assert.equal(second.range.label, '250-0');
    assert.deepEqual(first.weights.map((w) => w.layer), ['blocks.3.mlp.fc2']);
    assert.deepEqual(second.weights.map((w) => w.layer), ['blocks.0.attn.qkv', 'blocks.3.mlp.fc2']);
    assert.notEqual(first.activations[0].scale, second.activations[0].scale, 'the ranges see different activations');
    await assert.rejects(exportQdq(SAMPLE, alloc, { outPath: SAMPLE }), /dit-sample\.onnx: the exported model would overwrite the model/);
    await assert.rejects(exportQdq(SAMPLE, alloc, { outPath: path.join(tmp, 'r2.onnx'), rangeIndex: 2, allocationFile: 'a.json' }), (err: unknown) => {
      assert.ok(err instanceof ModelError && err.message === 'a.json: has no range 2 (it has 2: 0…1)', String(err));
      return true;
    });
  });

  it('an allocation made for a file with another SHA-256 is exported with a note', async () => {
    const layers = { 'blocks.0.attn.qkv': { weightBits: 8, activationBits: null } };
    const same = { ...allocation('dit-sample.onnx', [{ timesteps: null, label: 'all', layers }]), model: { fileName: 'dit-sample.onnx', sha256: await sha256File(SAMPLE) } };
    const other = { ...same, model: { fileName: 'dit-sample.onnx', sha256: '0'.repeat(64) } };
    assert.match(same.model.sha256, /^[0-9a-f]{64}$/);
    const quiet = await exportQdq(SAMPLE, same, { outPath: path.join(tmp, 'sha.onnx') });
    const noted = await exportQdq(SAMPLE, other, { outPath: path.join(tmp, 'sha.onnx') });
    assert.ok(!quiet.notes.some((n) => n.includes('SHA-256')));
    assert.ok(noted.notes.some((n) => n.includes('another SHA-256')));
  });

  it('dynamic per-token activations are exported with static scales, and the notes say so', async () => {
    const alloc: AllocationFile = {
      ...allocation('dit-sample.onnx', [{ timesteps: null, label: 'all', layers: { 'blocks.1.attn.qkv': { weightBits: 8, activationBits: 8 } } }], false),
      activation: { mode: 'dynamic-token', symmetric: false },
    };
    const result = await exportQdq(SAMPLE, alloc, { outPath: path.join(tmp, 'dyn.onnx'), calibration: { samples: 1 } });
    assert.ok(result.notes.some((n) => n.includes('per token') && n.includes('static per-tensor')), result.notes.join('\n'));
    const [point] = result.activations;
    assert.equal(point.form, 'QuantizeLinear/DequantizeLinear');
    assert.equal(point.symmetric, false);
    // Static asymmetric 8-bit from the calibrated range: s = (max − min)/255, z = −round(min/s).
    const scale = (point.max - point.min) / 255;
    assert.equal(point.scale, f32(scale));
    assert.equal(point.zeroPoint, -roundHalfEven(point.min / scale));
  });
});

describe('allocation files', () => {
  const write = (name: string, text: string) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const sampleAlloc = allocation('dit-sample.onnx', [
    { timesteps: [999, 500], label: '999-500', layers: { 'blocks.0.attn.qkv': { weightBits: 8, activationBits: 8 }, 'blocks.0.mlp.fc1': { weightBits: 8, activationBits: null } } },
    { timesteps: [250, 0], label: '250-0', layers: { 'blocks.0.attn.qkv': { weightBits: 4, activationBits: 8 }, 'blocks.0.mlp.fc1': { weightBits: 16, activationBits: null } } },
  ]);

  it('round-trip through saveAllocation / loadAllocation', async () => {
    const file = path.join(tmp, 'alloc.json');
    saveAllocation(file, sampleAlloc);
    assert.deepEqual(await loadAllocation(file), sampleAlloc);
  });

  it('a malformed file is a ModelError naming the file and the problem', async () => {
    const cases: [string, string, RegExp][] = [
      ['broken.json', '{"schema": "quantlens.allocation/1", ', /^broken\.json: not valid JSON/],
      ['other.json', JSON.stringify({ ...sampleAlloc, schema: 'quantlens.analysis/1' }), /^other\.json: not a valid QuantLens allocation \(at \/schema/],
      ['bits.json', JSON.stringify({ ...sampleAlloc, ranges: [{ ...sampleAlloc.ranges[0], layers: { a: { weightBits: 1, activationBits: null } } }] }), /^bits\.json: not a valid QuantLens allocation \(at \/ranges\/0\/layers\/a\/weightBits/],
      ['empty.json', JSON.stringify({ ...sampleAlloc, ranges: [] }), /^empty\.json: not a valid QuantLens allocation \(at \/ranges/],
      ['twice.json', JSON.stringify({ ...sampleAlloc, ranges: [sampleAlloc.ranges[0], sampleAlloc.ranges[0]] }), /^twice\.json: .*range label "999-500" appears twice/],
      ['symmetry.json', JSON.stringify({ ...sampleAlloc, weight: { granularity: 'channel', symmetric: 'no' } }), /^symmetry\.json: not a valid QuantLens allocation \(at \/weight\/symmetric/],
    ];
    for (const [name, text, expected] of cases) {
      await assert.rejects(loadAllocation(write(name, text)), (err: unknown) => {
        assert.ok(err instanceof ModelError, String(err));
        assert.equal(err.file, path.join(tmp, name));
        assert.match(err.message, expected);
        return true;
      });
    }
    await assert.rejects(loadAllocation(path.join(tmp, 'missing.json')), /missing\.json: allocation file not found/);
  });

  it('unknown layer names are a ModelError naming them; layers not listed stay float', async () => {
    const opened = await openModel(SAMPLE);
    const layers = opened.layers;
    await opened.close();
    // JSON.parse makes "__proto__" an own key, as a file read from disk has it.
    const layersFromFile = JSON.parse('{"blocks.0.attn.qkv": {"weightBits": 4, "activationBits": null}, "blocks.9.attn.qkv": {"weightBits": 4, "activationBits": null}, "__proto__": {"weightBits": 8, "activationBits": 8}}');
    const bad = allocation('dit-sample.onnx', [{ timesteps: null, label: 'all', layers: layersFromFile }]);
    assert.throws(() => validateAllocationForModel(bad, layers, { allocation: '/x/alloc.json', model: SAMPLE }), (err: unknown) => {
      assert.ok(err instanceof ModelError);
      assert.equal(err.file, '/x/alloc.json');
      assert.match(err.message, /^alloc\.json: 2 layer names are not in dit-sample\.onnx: "blocks\.9\.attn\.qkv", "__proto__"/);
      return true;
    });
    await assert.rejects(exportQdq(SAMPLE, bad, { outPath: path.join(tmp, 'bad.onnx'), allocationFile: '/x/alloc.json' }), /blocks\.9\.attn\.qkv/);
    const [resolved] = validateAllocationForModel(sampleAlloc, layers, { allocation: 'a.json', model: SAMPLE });
    assert.deepEqual(resolved.map((r) => [r.name, r.weightBits, r.granularity, r.weightSymmetric]), [['blocks.0.attn.qkv', 8, 'channel', true], ['blocks.0.mlp.fc1', 8, 'channel', true]]);
  });

  it('weight symmetry: a file without it (written before it existed) loads as symmetric; false makes every layer asymmetric', async () => {
    const opened = await openModel(SAMPLE);
    const layers = opened.layers;
    await opened.close();
    const old = JSON.parse(JSON.stringify(sampleAlloc)) as AllocationFile;
    assert.equal(old.weight.symmetric, undefined);
    const oldFile = write('old.json', JSON.stringify(old));
    const loaded = await loadAllocation(oldFile);
    assert.ok(validateAllocationForModel(loaded, layers, { allocation: oldFile, model: SAMPLE }).flat().every((r) => r.weightSymmetric));
    const asymmetric = { ...sampleAlloc, weight: { granularity: 'channel' as const, symmetric: false } };
    saveAllocation(path.join(tmp, 'asym.json'), asymmetric);
    const reloaded = await loadAllocation(path.join(tmp, 'asym.json'));
    assert.equal(reloaded.weight.symmetric, false);
    assert.ok(validateAllocationForModel(reloaded, layers, { allocation: 'asym.json', model: SAMPLE }).flat().every((r) => !r.weightSymmetric));
  });

  it('timesteps for a model without a timestep input are refused, naming the allocation', async () => {
    const alloc = allocation('rec', [{ timesteps: [999], label: '999', layers: {} }]);
    await assert.rejects(exportQdq(REC, alloc, { outPath: path.join(tmp, 'no.onnx'), allocationFile: '/x/rec.json' }), /^ModelError: rec\.json: range "999" is for timesteps, but ch_PP-OCRv4_rec_infer\.onnx has no input named like a timestep/);
  });

  it('YAML in ViDiT-Q\'s shape holds every range and layer, whatever the names', () => {
    // Read back with a YAML 1.2 parser: every range and layer survives, whatever the names.
    const jsYaml = require('js-yaml') as typeof import('js-yaml');
    const nasty = ['yes', '19-15', '#hash', 'a: b', ' lead', 'line\nbreak', '\u0085nel', 'quote"s', '__proto__', '999', '/blocks.0/attn/MatMul', 'é∆'];
    const alloc = allocation('m\nodel.onnx', [
      sampleAlloc.ranges[0],
      { timesteps: [7], label: rangeLabel([7]), layers: Object.fromEntries(nasty.map((name, i) => [name, { weightBits: 2 + (i % 7), activationBits: i % 2 ? null : 8 }])) },
      { timesteps: null, label: 'all', layers: {} },
    ]);
    for (const kind of ['weight', 'activation'] as const) {
      const text = allocationToYaml(alloc, kind);
      const parsed = jsYaml.load(text) as Record<string, Record<string, number>>;
      assert.deepEqual(Object.keys(parsed).sort(), ['7', '999-500', 'all']);
      assert.ok(text.indexOf('\n999-500:') < text.indexOf('\n"7":') && text.indexOf('\n"7":') < text.indexOf('\nall: {}'), 'ranges in the file\'s order');
      for (const range of alloc.ranges) {
        const expected = Object.fromEntries(Object.entries(range.layers).map(([name, l]) => [name, kind === 'weight' ? l.weightBits : (l.activationBits ?? 16)]));
        assert.deepEqual({ ...parsed[range.label] }, expected, `${kind} ${range.label}`);
      }
    }
    assert.match(allocationToYaml(sampleAlloc, 'weight'), /^999-500:\n {2}blocks\.0\.attn\.qkv: 8\n {2}blocks\.0\.mlp\.fc1: 8\n250-0:\n {2}blocks\.0\.attn\.qkv: 4\n {2}blocks\.0\.mlp\.fc1: 16\n$/m);
  });

  it('allocationFromSearch gives each unit\'s choice to its layers (a group\'s to every member)', () => {
    const option = (id: string, weightBits: number, activationBits: number | null, cost: number, error: number) => ({ id, weightBits, activationBits, cost, error });
    const problem: SearchProblem = {
      source: 'run.json',
      costUnit: 'bits',
      units: [
        { name: 'mlp', params: 200, members: ['blocks.0.mlp.fc1', 'blocks.0.mlp.fc2'], options: [option('FP', 16, null, 3200, 0), option('W4A8', 4, 8, 800, 0.5), option('W8A8', 8, 8, 1600, 0.01)] },
        { name: 'blocks.0.attn.qkv', params: 100, options: [option('FP', 16, null, 1600, 0), option('W4A8', 4, 8, 400, 0.02), option('W8A8', 8, 8, 800, 0.001)] },
      ],
      ties: [],
      pins: {},
      fixedCost: 0,
      totalParams: 300,
      timesteps: [999, 500],
    };
    const result = search(problem, { kind: 'averageBits', bits: 7 });
    const file = allocationFromSearch({
      model: { fileName: 'dit-sample.onnx' },
      budget: result.budget,
      ranges: [{ problem, result }],
      activation: { mode: 'static-minmax', symmetric: true },
    });
    assert.equal(file.ranges[0].label, '999-500');
    assert.deepEqual(file.ranges[0].layers, {
      'blocks.0.mlp.fc1': { weightBits: 8, activationBits: 8 },
      'blocks.0.mlp.fc2': { weightBits: 8, activationBits: 8 },
      'blocks.0.attn.qkv': { weightBits: 4, activationBits: 8 },
    });
    assert.deepEqual(file.predicted, { cost: result.allocation.cost, error: result.allocation.error });
    assert.deepEqual(file.weight, { granularity: 'channel', symmetric: true });
    const asymmetric = allocationFromSearch({
      model: { fileName: 'dit-sample.onnx' },
      ranges: [{ problem, result }],
      activation: { mode: 'static-minmax', symmetric: true },
      granularity: { group: 64 },
      weightSymmetric: false,
    });
    assert.deepEqual(asymmetric.weight, { granularity: { group: 64 }, symmetric: false });
  });
});

describe('quantlens export (CLI)', () => {
  it('writes the model and the YAML, prints sizes and the output SQNR', () => {
    const alloc = allocation('dit-sample.onnx', [
      { timesteps: [999], label: '999', layers: { 'blocks.0.attn.qkv': { weightBits: 4, activationBits: 8 }, 'blocks.1.mlp.fc1': { weightBits: 8, activationBits: null } } },
    ]);
    const allocFile = path.join(tmp, 'cli-alloc.json');
    saveAllocation(allocFile, alloc);
    const out = path.join(tmp, 'cli.qdq.onnx');
    const yamlFile = path.join(tmp, 'cli.yaml');
    // The subcommand as cli.ts adds it, in a child process.
    const script =
      "const { Command } = require('commander'); const { addExport } = require(process.argv[1]); " +
      "const program = new Command('quantlens'); addExport(program); program.parseAsync(process.argv.slice(2), { from: 'user' }).catch((e) => { console.error(String(e)); process.exit(2); });";
    const child = spawnSync(
      process.execPath,
      ['-e', script, path.join(repoRoot, 'out', 'extension', 'cliExport.js'), 'export', SAMPLE, '--alloc', allocFile, '-o', out, '--samples', '1', '--yaml', yamlFile],
      { cwd: repoRoot, encoding: 'utf8' },
    );
    assert.equal(child.status, 0, child.stderr);
    const lines = child.stdout.trim().split('\n');
    assert.match(lines[0], /^exported range 0 of 1, "999" \(timesteps 999\), opset 17 → .*cli\.qdq\.onnx$/);
    assert.match(lines[1], /^size on disk: 5\.17 MB → 4\.\d\d MB \(\d+\.\d % of the original\)$/);
    const [original, written] = [fs.statSync(SAMPLE).size, fs.statSync(out).size];
    assert.equal(lines[1], `size on disk: ${(original / 1e6).toFixed(2)} MB → ${(written / 1e6).toFixed(2)} MB (${((100 * written) / original).toFixed(1)} % of the original)`);
    assert.ok(lines.includes('weights: 2 layers as integer codes (W4 ×1, W8 ×1) via DequantizeLinear'), child.stdout);
    assert.ok(lines.some((l) => /^output SQNR against the full-precision model over 1 calibration run: out \d+\.\d\d dB$/.test(l)), child.stdout);
    assert.match(fs.readFileSync(yamlFile, 'utf8'), /\n"999":\n {2}blocks\.0\.attn\.qkv: 4\n {2}blocks\.1\.mlp\.fc1: 8\n$/);
    assert.match(fs.readFileSync(path.join(tmp, 'cli.act.yaml'), 'utf8'), /\n"999":\n {2}blocks\.0\.attn\.qkv: 8\n {2}blocks\.1\.mlp\.fc1: 16\n$/);
    console.log(child.stdout.trim());
  });
});
