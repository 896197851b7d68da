// The sensitivity runner on real models and real onnxruntime sessions: single-layer and "everything" weight SQNR
// against rebuilt models run in separate sessions, per-timestep plans, dynamic per-token versus static per-tensor
// activations against a float32 fake-quantizer written here, metric tensors and extra activation tensors, cancel,
// a killed engine process, bad calibration files, and shards merged back into the unsharded run.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { runAnalysis } from '../../extension/engine/analysis/runner';
import { planUnits } from '../../extension/engine/analysis/plan';
import { ALL_UNIT, defaultGroups } from '../../extension/engine/analysis/settings';
import { graphIntRanges, loadCalibration, withTimestep } from '../../extension/engine/calib';
import { toOrtFeeds } from '../../extension/engine/calib/ortFeeds';
import { ModelError } from '../../extension/engine/errors';
import { layerNodes } from '../../extension/engine/instrument/plan';
import { openModel } from '../../extension/engine/model/open';
import { loadRun, mergeRuns } from '../../extension/engine/runs/records';
import { EngineClient, EngineError } from '../../extension/process/client';
import type { AnalysisRun, AnalysisSettings, QuantSetting, SensitivityRow } from '../../extension/protocol/analysis';
import type { AnalysisEvent } from '../../extension/protocol/engine';
import type { LayerInfo, ValueInfo } from '../../extension/protocol/records';
import { fakeQuantValue, naiveAsymmetricPerChannel, naiveSymmetricPerChannel, roundHalfEven } from './naiveQuant';
import { uniformSigned } from './naiveWeightStats';
import { bytesOf, npy } from './npyFiles';
import { SAMPLE, sampleSweep } from './sampleSweep';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const enginePath = path.join(repoRoot, 'out', 'extension', 'process', 'main.js');
const cliPath = path.join(repoRoot, 'out', 'extension', 'cli.js');
const f32 = Math.fround;

const W4: QuantSetting = { id: 'W4', weight: { bits: 4, granularity: { kind: 'channel' } } };
const W8: QuantSetting = { id: 'W8', weight: { bits: 8, granularity: { kind: 'channel' } } };
const A8: QuantSetting = { id: 'A8', activation: { bits: 8, mode: 'dynamic-token', symmetric: false } };

let dir: string;
let sampleInputs: ValueInfo[];
let sampleLayers: LayerInfo[];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-analysis-'));
  const opened = await openModel(SAMPLE);
  sampleInputs = opened.summary.inputs;
  sampleLayers = opened.layers;
  await opened.close();
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let recordCount = 0;
function recordPath(): string {
  return path.join(dir, `run-${++recordCount}.json`);
}

function sampleSettings(overrides: Partial<AnalysisSettings> = {}): AnalysisSettings {
  return sampleSweep([W4], { calibration: { samples: 1, batch: 1, seed: 3, dims: {} }, timestep: { input: 't', values: [500] }, ...overrides });
}

function key(row: Pick<SensitivityRow, 'unit' | 'setting' | 'timestep'>): string {
  return `${row.unit}|${row.setting}|${row.timestep}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Independent pieces: a per-channel weight quantizer, models rebuilt with replaced weights, metrics in float64.

/** Output-channel axis of a layer's stored weight, from the node that uses it: Conv [out, …], Gemm transB=1 [out, in], MatMul [in, out]. */
function outputAxis(model: onnx.ModelProto, weight: string): number {
  const node = (model.graph as onnx.GraphProto).node.find((n) => (n.input ?? [])[1] === weight) as onnx.NodeProto;
  if (node.opType === 'Conv') return 0;
  if (node.opType === 'Gemm') return node.attribute.find((a) => a.name === 'transB')?.i ? 0 : 1;
  assert.equal(node.opType, 'MatMul');
  return 1;
}

/** The sample with the named weights quantized to `bits` (symmetric unless said otherwise), as a new model. */
function sampleWithQuantizedWeights(weights: string[], bits: number, symmetric = true): Uint8Array {
  const model = onnx.ModelProto.decode(fs.readFileSync(SAMPLE));
  for (const name of weights) {
    const tensor = (model.graph as onnx.GraphProto).initializer.find((t) => t.name === name) as onnx.TensorProto;
    assert.ok(tensor && tensor.rawData.length > 0, name);
    const raw = Uint8Array.from(tensor.rawData);
    const values = new Float32Array(raw.buffer);
    const quantize = symmetric ? naiveSymmetricPerChannel : naiveAsymmetricPerChannel;
    const quantized = quantize(values, tensor.dims.map(Number), outputAxis(model, name), bits);
    tensor.rawData = new Uint8Array(quantized.buffer);
  }
  return onnx.ModelProto.encode(model).finish();
}

interface Expected {
  mse: number;
  sqnrDb: number;
  cosine: number;
}

function metrics64(pairs: { reference: Float32Array; approx: Float32Array }[]): Expected {
  let signal = 0;
  let noise = 0;
  let cross = 0;
  let approx = 0;
  let count = 0;
  for (const pair of pairs) {
    for (let i = 0; i < pair.reference.length; i++) {
      const y = pair.reference[i];
      const q = pair.approx[i];
      signal += y * y;
      noise += (y - q) ** 2;
      cross += y * q;
      approx += q * q;
      count++;
    }
  }
  return { mse: noise / count, sqnrDb: 10 * Math.log10(signal / noise), cosine: cross / Math.sqrt(signal * approx) };
}

function assertMetricsClose(actual: Expected, expected: Expected, label: string): void {
  assert.ok(Math.abs(actual.sqnrDb - expected.sqnrDb) < 0.01, `${label}: SQNR ${actual.sqnrDb} vs ${expected.sqnrDb}`);
  assert.ok(Math.abs(actual.mse - expected.mse) <= 1e-3 * expected.mse, `${label}: MSE ${actual.mse} vs ${expected.mse}`);
  assert.ok(Math.abs(actual.cosine - expected.cosine) < 1e-6, `${label}: cosine ${actual.cosine} vs ${expected.cosine}`);
}

// ---------------------------------------------------------------------------------------------------------------

describe('per-timestep W4 and A8 analysis of the sample', () => {
  const timesteps = [999, 500, 0];
  let run: AnalysisRun;
  let file: string;
  const events: AnalysisEvent[] = [];

  before(async () => {
    file = recordPath();
    run = await runAnalysis(
      sampleSettings({ settings: [W4, A8], timestep: { input: 't', values: timesteps }, calibration: { samples: 2, batch: 1, seed: 3, dims: {} } }),
      { recordPath: file, onEvent: (event) => events.push(event) },
    );
  });

  it('has one row for every layer (and "*") × setting × timestep, and a range per layer and timestep', () => {
    assert.equal(run.status, 'complete');
    const units = [...sampleLayers.map((l) => l.name), ALL_UNIT];
    assert.deepEqual(run.plan.units, units);
    assert.deepEqual(run.plan.settings, ['W4', 'A8']);
    assert.deepEqual(run.plan.timesteps, timesteps);
    assert.equal(run.plan.total, units.length * 2 * timesteps.length);
    const keys = new Set(run.rows.map(key));
    assert.equal(keys.size, run.rows.length, 'no duplicate rows');
    for (const unit of units) for (const setting of ['W4', 'A8']) for (const t of timesteps) assert.ok(keys.has(key({ unit, setting, timestep: t })), `${unit} ${setting} ${t}`);
    assert.equal(run.ranges.length, sampleLayers.length * timesteps.length);
    for (const row of run.rows) {
      assert.deepEqual(Object.keys(row.metrics), ['out']);
      assert.deepEqual(row.primary, row.metrics.out);
      // At t=0 the timestep features are 0 and ±1, which 8-bit per-token scales reproduce exactly (200 dB).
      assert.ok(row.primary.sqnrDb > 0 && (row.primary.sqnrDb < 100 || row.primary.sqnrDb === 200), `${key(row)}: ${row.primary.sqnrDb}`);
    }
    assert.ok(run.referenceForwardMs > 0);
    assert.equal(run.timing?.sweepRuns, run.plan.total * 2);
  });

  it('gives different numbers at different timesteps', () => {
    const sqnr = (unit: string, setting: string, t: number) => run.rows.find((r) => key(r) === key({ unit, setting, timestep: t }))?.primary.sqnrDb;
    for (const setting of ['W4', 'A8']) {
      const differing = sampleLayers.filter((l) => new Set(timesteps.map((t) => sqnr(l.name, setting, t))).size === timesteps.length);
      assert.ok(differing.length >= sampleLayers.length - 2, `${setting}: ${differing.length} layers differ across timesteps`);
    }
    const fc1 = run.ranges.filter((r) => r.layer === 'blocks.3.mlp.fc1');
    assert.equal(new Set(fc1.map((r) => r.max)).size, timesteps.length, 'the activation range moves with t');
    const table = timesteps.map((t) => `t=${t}: W4 ${sqnr('blocks.3.mlp.fc1', 'W4', t)?.toFixed(1)} dB, A8 ${sqnr('blocks.3.mlp.fc1', 'A8', t)?.toFixed(1)} dB`);
    console.log(`# blocks.3.mlp.fc1 per timestep: ${table.join('; ')}`);
  });

  it('single-layer and "*" W4 rows equal rebuilt models run in separate sessions', async () => {
    // The runner's feeds: y drawn from the rows of the class embedding it indexes, as graphIntRanges says.
    const intRanges = graphIntRanges(onnx.ModelProto.decode(fs.readFileSync(SAMPLE)).graph as onnx.IGraphProto, sampleInputs);
    const calibration = await loadCalibration(SAMPLE, sampleInputs, { samples: 2, batch: 1, seed: 3, intRanges, timestep: { input: 't', values: timesteps } });
    const tInput = sampleInputs.find((i) => i.name === 't') as ValueInfo;
    const original = await ort.InferenceSession.create(SAMPLE, { logSeverityLevel: 3 });
    const cases = [
      { unit: 'x_embedder.proj', weights: ['x_embedder.proj.weight'] },
      { unit: 't_embedder.mlp.0', weights: ['t_embedder.mlp.0.weight'] },
      { unit: 'blocks.1.mlp.fc1', weights: ['blocks.1.mlp.fc1.weight'] },
      { unit: ALL_UNIT, weights: sampleLayers.map((l) => l.weight) },
    ];
    const report: string[] = [];
    for (const { unit, weights } of cases) {
      const rebuilt = await ort.InferenceSession.create(sampleWithQuantizedWeights(weights, 4), { logSeverityLevel: 3 });
      for (const t of timesteps) {
        const pairs = [];
        for (const sample of calibration.samples) {
          const feeds = toOrtFeeds(withTimestep(sample, 't', t, tInput));
          const reference = (await original.run(feeds)).out.data as Float32Array;
          const approx = (await rebuilt.run(feeds)).out.data as Float32Array;
          pairs.push({ reference, approx });
        }
        const expected = metrics64(pairs);
        const row = run.rows.find((r) => key(r) === key({ unit, setting: 'W4', timestep: t })) as SensitivityRow;
        assertMetricsClose(row.metrics.out, expected, `${unit} t=${t}`);
        if (t === 500) report.push(`${unit} ${row.primary.sqnrDb.toFixed(3)} dB (rebuilt: ${expected.sqnrDb.toFixed(3)})`);
      }
    }
    console.log(`# W4 at t=500: ${report.join('; ')}`);
  });

  it('streams the rows after "started", and saves the record it returns', async () => {
    assert.equal(events.filter((e) => e.kind === 'started').length, 1);
    const startedAt = events.findIndex((e) => e.kind === 'started');
    const started = events[startedAt] as Extract<AnalysisEvent, { kind: 'started' }>;
    assert.equal(started.run.rows.length, 0);
    assert.deepEqual(started.run.plan, run.plan);
    assert.deepEqual(started.run.ranges, run.ranges);
    assert.ok(events.slice(0, startedAt).every((e) => e.kind === 'progress'), 'only progress before "started"');
    const streamed = events.flatMap((e) => (e.kind === 'rows' ? e.rows : []));
    assert.deepEqual(streamed, run.rows);
    const last = events.filter((e) => e.kind === 'progress').pop() as Extract<AnalysisEvent, { kind: 'progress' }>;
    assert.equal(last.done, run.plan.total);
    assert.equal(last.total, run.plan.total);
    assert.deepEqual(await loadRun(file), JSON.parse(JSON.stringify(run)));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// A tiny model: y = MatMul(x, W), x [batch, 5 tokens, 8 features], tokens of ranges 0.01 to 100.

const TOKENS = 5;
const FEATURES = 8;
const OUTPUTS = 4;

function tinyModel(weights: Float32Array): Uint8Array {
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: { elemType: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
  });
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'tiny',
      node: [{ opType: 'MatMul', input: ['x', 'W'], output: ['y'], name: 'proj' }],
      initializer: [{ name: 'W', dataType: 1, dims: [FEATURES, OUTPUTS], rawData: new Uint8Array(weights.buffer.slice(0)) }],
      input: [{ name: 'x', type: tensorType(['batch', TOKENS, FEATURES]) }],
      output: [{ name: 'y', type: tensorType(['batch', TOKENS, OUTPUTS]) }],
    },
  }).finish();
}

function matmul64(x: Float32Array, w: Float32Array): Float32Array {
  const rows = x.length / FEATURES;
  const out = new Float32Array(rows * OUTPUTS);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < OUTPUTS; j++) {
      let sum = 0;
      for (let k = 0; k < FEATURES; k++) sum += x[r * FEATURES + k] * w[k * OUTPUTS + j];
      out[r * OUTPUTS + j] = sum;
    }
  }
  return out;
}

describe('asymmetric weights: quantlens analyze --weight-asym', () => {
  it('gives W4 rows unlike the symmetric ones, each equal to a rebuilt model with weights quantized asymmetrically here', async () => {
    const file = recordPath();
    const child = spawnSync(
      process.execPath,
      [cliPath, 'analyze', SAMPLE, '--weights', '4', '--weight-asym', '--samples', '2', '--seed', '3', '--timestep-values', '500', '--threads', '1', '--out', file],
      { encoding: 'utf8' },
    );
    assert.equal(child.status, 0, child.stderr);
    const asymmetric = await loadRun(file);
    assert.deepEqual(asymmetric.settings.settings, [{ id: 'W4', weight: { bits: 4, granularity: { kind: 'channel' }, symmetric: false } }]);
    const symmetric = await runAnalysis(sampleSettings({ calibration: { samples: 2, batch: 1, seed: 3, dims: {} } }), { recordPath: recordPath(), threads: 1 });
    assert.equal(symmetric.rows.length, asymmetric.rows.length);
    for (const row of asymmetric.rows) {
      const other = symmetric.rows.find((r) => key(r) === key(row)) as SensitivityRow;
      assert.notEqual(row.primary.sqnrDb, other.primary.sqnrDb, `${row.unit}: asymmetric and symmetric W4 differ`);
    }

    const intRanges = graphIntRanges(onnx.ModelProto.decode(fs.readFileSync(SAMPLE)).graph as onnx.IGraphProto, sampleInputs);
    const calibration = await loadCalibration(SAMPLE, sampleInputs, { samples: 2, batch: 1, seed: 3, intRanges, timestep: { input: 't', values: [500] } });
    const tInput = sampleInputs.find((i) => i.name === 't') as ValueInfo;
    const original = await ort.InferenceSession.create(SAMPLE, { logSeverityLevel: 3 });
    const report: string[] = [];
    for (const { unit, weights } of [
      { unit: 'x_embedder.proj', weights: ['x_embedder.proj.weight'] },
      { unit: 'blocks.1.mlp.fc1', weights: ['blocks.1.mlp.fc1.weight'] },
      { unit: 'final_layer.linear', weights: ['final_layer.linear.weight'] },
      { unit: ALL_UNIT, weights: sampleLayers.map((l) => l.weight) },
    ]) {
      const rebuilt = await ort.InferenceSession.create(sampleWithQuantizedWeights(weights, 4, false), { logSeverityLevel: 3 });
      const pairs = [];
      for (const sample of calibration.samples) {
        const feeds = toOrtFeeds(withTimestep(sample, 't', 500, tInput));
        pairs.push({ reference: (await original.run(feeds)).out.data as Float32Array, approx: (await rebuilt.run(feeds)).out.data as Float32Array });
      }
      await rebuilt.release();
      const expected = metrics64(pairs);
      const row = asymmetric.rows.find((r) => key(r) === key({ unit, setting: 'W4', timestep: 500 })) as SensitivityRow;
      assertMetricsClose(row.metrics.out, expected, `${unit} asymmetric`);
      const other = symmetric.rows.find((r) => key(r) === key(row)) as SensitivityRow;
      report.push(`${unit} ${row.primary.sqnrDb.toFixed(2)} dB (symmetric ${other.primary.sqnrDb.toFixed(2)})`);
    }
    await original.release();
    console.log(`# W4 asymmetric at t=500: ${report.join('; ')}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('dynamic per-token versus static per-tensor activations on a known tensor', () => {
  it('match a float32 fake-quantizer written here; per-token keeps the small tokens', async () => {
    const samples = 2;
    const w = uniformSigned(FEATURES * OUTPUTS, 7);
    const x = uniformSigned(samples * TOKENS * FEATURES, 5).map((v, i) => f32(v * 10 ** ((Math.floor(i / FEATURES) % TOKENS) - 2)));
    const model = path.join(dir, 'tiny.onnx');
    const calib = path.join(dir, 'tiny-x.npy');
    fs.writeFileSync(model, tinyModel(w));
    fs.writeFileSync(calib, npy('<f4', [samples, TOKENS, FEATURES], bytesOf(x)));
    const settings: QuantSetting[] = [
      { id: 'A8 token', activation: { bits: 8, mode: 'dynamic-token', symmetric: true } },
      { id: 'A8 tensor', activation: { bits: 8, mode: 'static-minmax', symmetric: true } },
      { id: 'A8 tensor asym', activation: { bits: 8, mode: 'static-minmax', symmetric: false } },
      { id: 'A4 p90', activation: { bits: 4, mode: 'static-percentile', symmetric: true, percentile: 90 } },
    ];
    const run = await runAnalysis(
      { ...sampleSettings(), model, settings, timestep: undefined, calibration: { source: calib, samples: samples, batch: 1, seed: 0, dims: {} } },
      { recordPath: recordPath() },
    );
    assert.deepEqual(run.plan.units, ['proj', ALL_UNIT]);
    assert.deepEqual(run.plan.timesteps, [null]);

    // The calibrated range is x's over both samples.
    const min = x.reduce((a, b) => Math.min(a, b));
    const max = x.reduce((a, b) => Math.max(a, b));
    assert.deepEqual(run.ranges, [{ layer: 'proj', timestep: null, min, max }]);

    const perToken = (v: Float32Array) => {
      const out = new Float32Array(v.length);
      for (let start = 0; start < v.length; start += FEATURES) {
        const token = v.subarray(start, start + FEATURES);
        const absMax = token.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
        const scale = Math.max(f32(absMax * f32(1 / 127)), f32(1e-20));
        for (let i = 0; i < FEATURES; i++) out[start + i] = fakeQuantValue(token[i], -127, 127, scale, 0);
      }
      return out;
    };
    const perTensor = (v: Float32Array) => v.map((value) => fakeQuantValue(value, -127, 127, f32(Math.max(-min, max) / 127), 0));
    const asymScale = f32((max - min) / 255);
    const asymZero = -roundHalfEven(min / ((max - min) / 255));
    const perTensorAsym = (v: Float32Array) => v.map((value) => fakeQuantValue(value, 0, 255, asymScale, asymZero));
    const magnitudes = Float32Array.from(x, Math.abs).sort();
    const p90 = magnitudes[Math.ceil(0.9 * magnitudes.length) - 1];
    const percentile = (v: Float32Array) => v.map((value) => fakeQuantValue(value, -7, 7, f32(p90 / 7), 0));

    const sqnr: Record<string, number> = {};
    for (const [id, quantize] of [['A8 token', perToken], ['A8 tensor', perTensor], ['A8 tensor asym', perTensorAsym], ['A4 p90', percentile]] as const) {
      const pairs = [];
      for (let s = 0; s < samples; s++) {
        const xs = x.subarray(s * TOKENS * FEATURES, (s + 1) * TOKENS * FEATURES);
        pairs.push({ reference: matmul64(xs, w), approx: matmul64(quantize(xs), w) });
      }
      const expected = metrics64(pairs);
      for (const unit of ['proj', ALL_UNIT]) {
        const row = run.rows.find((r) => r.unit === unit && r.setting === id) as SensitivityRow;
        assert.ok(Math.abs(row.primary.sqnrDb - expected.sqnrDb) < 0.01, `${id} ${unit}: ${row.primary.sqnrDb} vs ${expected.sqnrDb}`);
        assert.ok(Math.abs(row.primary.mse - expected.mse) <= 1e-4 * expected.mse, `${id} ${unit}: MSE ${row.primary.mse} vs ${expected.mse}`);
      }
      sqnr[id] = expected.sqnrDb;
    }
    // The output's energy is the large tokens', whose error both share; per-tensor also loses the small ones.
    assert.ok(sqnr['A8 token'] > sqnr['A8 tensor'] + 5, `per-token ${sqnr['A8 token']} dB, per-tensor ${sqnr['A8 tensor']} dB`);
    console.log(`# tiny model, tokens of ranges 0.01–100: ${Object.entries(sqnr).map(([id, v]) => `${id} ${v.toFixed(1)} dB`).join(', ')}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('groups, metric tensors and extra activation tensors', () => {
  it('default DiT groups put embedders and the final layer in "other"', () => {
    const model = onnx.ModelProto.decode(fs.readFileSync(SAMPLE));
    const plan = planUnits(sampleSettings({ unit: 'group' }), sampleLayers, layerNodes(model.graph as onnx.GraphProto));
    assert.deepEqual(plan.units.map((u) => u.name), ['attn', 'mlp', 'adaLN', 'other', ALL_UNIT]);
    const members = Object.fromEntries(plan.units.map((u) => [u.name, u.layers.map((l) => l.name)]));
    assert.deepEqual(members.attn, [0, 1, 2, 3].flatMap((b) => [`blocks.${b}.attn.qkv`, `blocks.${b}.attn.proj`]));
    assert.deepEqual(members.mlp, [0, 1, 2, 3].flatMap((b) => [`blocks.${b}.mlp.fc1`, `blocks.${b}.mlp.fc2`]));
    assert.deepEqual(members.adaLN, [...[0, 1, 2, 3].map((b) => `blocks.${b}.adaLN_modulation.1`), 'final_layer.adaLN_modulation.1']);
    assert.deepEqual(members.other, ['x_embedder.proj', 't_embedder.mlp.0', 't_embedder.mlp.2', 'final_layer.linear']);
    assert.equal(members[ALL_UNIT].length, sampleLayers.length);
    assert.equal(defaultGroups().length, 5);
  });

  it('a group metric tensor ranks its layers; layers after it leave it exactly unchanged', async () => {
    const residual = 'blocks.1/Add_mlp_output';
    const kv = ['blocks.0.attn/Gather_k_output', 'blocks.0.attn/Gather_v_output'];
    const run = await runAnalysis(
      sampleSettings({
        settings: [W4, A8],
        groups: [{ name: 'late', patterns: ['^blocks\\.[23]\\.', '^final_layer'], metricTensor: residual }],
        exclude: ['embedder'],
        extraActivationTensors: kv,
      }),
      { recordPath: recordPath() },
    );
    assert.ok(!run.plan.units.some((u) => u.includes('embedder')), 'excluded');
    assert.deepEqual(run.plan.units.slice(-3), [...kv, ALL_UNIT]);
    for (const row of run.rows) {
      assert.deepEqual(Object.keys(row.metrics).sort(), [residual, 'out'].sort());
      const late = /^(blocks\.[23]\.|final_layer)/.test(row.unit);
      assert.deepEqual(row.primary, late ? row.metrics[residual] : row.metrics.out, row.unit);
      if (late) assert.deepEqual(row.metrics[residual], { mse: 0, sqnrDb: 200, cosine: 1 }, `${row.unit} ${row.setting} is downstream`);
      else if (row.unit !== ALL_UNIT) assert.ok(row.metrics[residual].sqnrDb < 120, `${row.unit} ${row.setting} changes the residual stream`);
    }
    // K and V are activations: quantized by A8, untouched by W4; their ranges are theirs, read here from the model with
    // them as extra outputs on the same feeds.
    const model = onnx.ModelProto.decode(fs.readFileSync(SAMPLE));
    const graph = model.graph as onnx.GraphProto;
    const intRanges = graphIntRanges(graph, sampleInputs);
    graph.output.push(...kv.map((name) => onnx.ValueInfoProto.create({ name })));
    const withKv = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), { logSeverityLevel: 3 });
    const calibration = await loadCalibration(SAMPLE, sampleInputs, { samples: 1, batch: 1, seed: 3, intRanges, timestep: { input: 't', values: [500] } });
    const outputs = await withKv.run(toOrtFeeds(withTimestep(calibration.samples[0], 't', 500, sampleInputs.find((i) => i.name === 't') as ValueInfo)));
    await withKv.release();
    for (const tensor of kv) {
      assert.deepEqual(run.rows.filter((r) => r.unit === tensor).map((r) => r.setting), ['A8']);
      const values = outputs[tensor].data as Float32Array;
      const [min, max] = [values.reduce((a, b) => Math.min(a, b)), values.reduce((a, b) => Math.max(a, b))];
      const ranges = run.ranges.filter((r) => r.layer === tensor);
      assert.equal(ranges.length, 1, `${tensor}: one range, for t=500`);
      const near = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(Math.abs(a), Math.abs(b), 1e-6);
      assert.ok(near(ranges[0].min, min) && near(ranges[0].max, max), `${tensor}: [${ranges[0].min}, ${ranges[0].max}] vs [${min}, ${max}]`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('cancel, crash and bad input', () => {
  it('cancel stops at the next run and keeps the finished rows on disk as "cancelled"', async () => {
    const file = recordPath();
    const controller = new AbortController();
    let rowsAtAbort = 0;
    const run = await runAnalysis(sampleSettings({ settings: [W4, W8], timestep: { input: 't', values: [999, 666, 333, 0] }, calibration: { samples: 2, batch: 1, seed: 1, dims: {} } }), {
      recordPath: file,
      signal: controller.signal,
      onEvent: (event) => {
        if (event.kind === 'rows' && event.rows.length > 0 && !controller.signal.aborted) {
          controller.abort();
          rowsAtAbort = event.rows.length;
        }
      },
    });
    assert.equal(run.status, 'cancelled');
    assert.ok(rowsAtAbort > 0);
    // The abort lands while a batch is being reported: at most the cell in progress finishes after it.
    assert.ok(run.rows.length >= rowsAtAbort && run.rows.length <= rowsAtAbort + 1, `${run.rows.length} rows, ${rowsAtAbort} at the abort`);
    assert.ok(run.rows.length < run.plan.total);
    const saved = await loadRun(file);
    assert.equal(saved.status, 'cancelled');
    assert.deepEqual(saved.rows, JSON.parse(JSON.stringify(run.rows)));
  });

  it('killing the engine process mid-run leaves a valid partial record; the next request gets a new engine', async () => {
    const file = recordPath();
    const client = new EngineClient({ enginePath });
    try {
      let killedWith = 0;
      const request = client.request(
        'analyze',
        { settings: sampleSettings({ settings: [W4, W8], timestep: { input: 't', values: [999, 800, 600, 400, 200, 0] }, calibration: { samples: 2, batch: 1, seed: 1, dims: {} } }), recordPath: file },
        {
          onEvent: (event) => {
            if (event.kind === 'rows' && event.rows.length > 0 && killedWith === 0) {
              // The engine saves the record before it reports the first rows.
              killedWith = event.rows.length;
              process.kill(client.pid as number, 'SIGKILL');
            }
          },
        },
      );
      const error = await request.then(
        () => assert.fail('the request should fail'),
        (err: unknown) => err,
      );
      assert.ok(error instanceof EngineError && error.code === 'engine-crashed', String(error));
      const saved = await loadRun(file);
      assert.equal(saved.status, 'running');
      assert.ok(saved.rows.length >= killedWith, `${saved.rows.length} rows saved, ${killedWith} reported`);
      assert.ok(saved.rows.length < saved.plan.total);
      const pong = await client.request('ping', {});
      assert.equal(pong.pid, client.pid);
    } finally {
      client.dispose();
    }
  });

  it('cancel through the engine process: the request rejects as cancelled and the record ends "cancelled"', async () => {
    const file = recordPath();
    const client = new EngineClient({ enginePath });
    try {
      const controller = new AbortController();
      const request = client.request(
        'analyze',
        { settings: sampleSettings({ settings: [W4, W8], timestep: { input: 't', values: [999, 800, 600, 400, 200, 0] }, calibration: { samples: 2, batch: 1, seed: 1, dims: {} } }), recordPath: file },
        { signal: controller.signal, onEvent: (event) => event.kind === 'rows' && event.rows.length > 0 && controller.abort() },
      );
      await assert.rejects(request, (err: unknown) => err instanceof EngineError && err.code === 'cancelled');
      // The engine finishes the run in progress, then writes the record one last time.
      let saved = await loadRun(file);
      for (let wait = 0; saved.status === 'running' && wait < 200; wait++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        saved = await loadRun(file);
      }
      assert.equal(saved.status, 'cancelled');
      assert.ok(saved.rows.length > 0 && saved.rows.length < saved.plan.total, `${saved.rows.length} of ${saved.plan.total}`);
    } finally {
      client.dispose();
    }
  });

  it('executionProvider "cuda" runs where onnxruntime has CUDA, else stops at once with a clear error', async () => {
    // Whether this machine has CUDA, asked of onnxruntime directly: the runner must neither fall back nor refuse wrongly.
    const hasCuda = await ort.InferenceSession.create(SAMPLE, { logSeverityLevel: 4, executionProviders: ['cuda'] }).then(
      async (s) => (await s.release(), true),
      () => false,
    );
    const file = recordPath();
    const settings = sampleSettings({ executionProvider: 'cuda' });
    if (hasCuda) {
      const run = await runAnalysis(settings, { recordPath: file });
      assert.equal(run.status, 'complete');
      assert.equal(run.environment.executionProvider, 'cuda');
      console.log('# the CUDA execution provider is available: the sample ran on it');
      return;
    }
    await assert.rejects(runAnalysis(settings, { recordPath: file }), (err: unknown) => {
      assert.ok(err instanceof ModelError, String(err));
      assert.equal(err.file, SAMPLE);
      assert.match(err.problem, /the CUDA execution provider is not available here .*onnxruntime-node-install=cuda12/);
      return true;
    });
    assert.equal(fs.existsSync(file), false, 'nothing was written');
  });

  it('a bad calibration file is a ModelError naming it; no record is written', async () => {
    const calib = path.join(dir, 'broken.npz');
    fs.writeFileSync(calib, 'PK\u0003\u0004 this is not a zip archive');
    const file = recordPath();
    await assert.rejects(
      runAnalysis(sampleSettings({ calibration: { source: calib, samples: 1, batch: 1, seed: 0, dims: {} } }), { recordPath: file }),
      (err: unknown) => err instanceof ModelError && err.file === calib,
    );
    assert.equal(fs.existsSync(file), false);
  });

  it('bad settings are ModelErrors naming the model', async () => {
    const cases: [Partial<AnalysisSettings>, RegExp][] = [
      [{ settings: [] }, /at least one quantization setting/],
      [{ settings: [{ id: 'W1', weight: { bits: 1, granularity: { kind: 'channel' } } }] }, /weight bits/],
      [{ settings: [W4, { id: 'W8a', weight: { bits: 8, granularity: { kind: 'channel' }, symmetric: false } }] }, /all symmetric or all asymmetric/],
      [{ settings: [{ id: 'W4', weight: { bits: 4, granularity: { kind: 'channel' }, symmetric: 'no' as unknown as boolean } }] }, /weight "symmetric" must be true or false/],
      [{ exclude: ['(unclosed'] }, /invalid regular expression/],
      [{ extraActivationTensors: ['no such tensor'] }, /no tensor named "no such tensor"/],
      [{ exclude: ['.'] }, /no layers left/],
      [{ timestep: { input: 'nope', values: [1] } }, /timestep input "nope"/],
    ];
    for (const [overrides, message] of cases) {
      await assert.rejects(runAnalysis(sampleSettings(overrides), { recordPath: recordPath() }), (err: unknown) => {
        assert.ok(err instanceof ModelError, String(err));
        assert.equal(err.file, SAMPLE);
        assert.match(err.problem, message);
        return true;
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('shards', () => {
  it('0/2 and 1/2 merged equal the unsharded run, number for number', async () => {
    const settings = sampleSettings({
      settings: [W4, { id: 'A8s', activation: { bits: 8, mode: 'static-minmax', symmetric: false } }],
      timestep: { input: 't', values: [999, 0] },
    });
    const whole = await runAnalysis(settings, { recordPath: recordPath() });
    const shards = [];
    for (const index of [0, 1]) shards.push(await runAnalysis(settings, { recordPath: recordPath(), shard: { index, count: 2 } }));
    assert.deepEqual(shards.map((s) => s.plan.total), [Math.ceil(whole.plan.total / 2), Math.floor(whole.plan.total / 2)]);
    const keys0 = new Set(shards[0].rows.map(key));
    assert.ok(shards[1].rows.every((r) => !keys0.has(key(r))), 'the slices do not overlap');

    const merged = mergeRuns(shards, ['shard-0.json', 'shard-1.json']);
    assert.equal(merged.status, 'complete');
    assert.equal(merged.plan.shard, undefined);
    assert.equal(merged.plan.total, whole.plan.total);
    assert.deepEqual(merged.rows, whole.rows, 'same rows, same numbers, plan order');
    assert.deepEqual(new Set(merged.ranges.map((r) => JSON.stringify(r))), new Set(whole.ranges.map((r) => JSON.stringify(r))));

    const partial = mergeRuns([shards[1]], ['shard-1.json']);
    assert.equal(partial.status, 'cancelled');
    assert.match(partial.message ?? '', /shard 0\/2 is missing/);
  });
});
