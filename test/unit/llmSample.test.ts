// The bundled LLaMA-shaped sample: it matches its generator byte for byte, runs in onnxruntime, is causal, computes
// what a plain float64 LLaMA forward pass computes from its initializers, carries the planted massive activations,
// shows its 29 layers in the inspector, and reproduces QLLM-Eval's orderings under the sensitivity runner.
import { after, before, describe, it, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { DEFAULT_LLM_SAMPLE_PATH, LLM_SAMPLE_CONFIG, plantedMassiveActivations, writeLlmSampleModel } from '../../scripts/build-llm-sample';
import { runAnalysis } from '../../extension/engine/analysis/runner';
import { ALL_UNIT } from '../../extension/engine/analysis/settings';
import { inspectModel } from '../../extension/engine/inspect';
import { mulberry32 } from '../../extension/engine/random';
import type { AnalysisRun, AnalysisSettings, QuantSetting } from '../../extension/protocol/analysis';
import type { LayerRecord } from '../../extension/protocol/records';
import { bytesOf, npy } from './npyFiles';

const SAMPLE_PATH = path.resolve(__dirname, '..', '..', '..', 'resources', 'sample', 'llm-sample.onnx');
const { vocabSize, hidden, layers, heads, intermediate, ropeTheta, rmsNormEps, bosTokenId } = LLM_SAMPLE_CONFIG;
const HEAD_DIM = hidden / heads;
const PROJECTIONS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const LAYER_RANGE = Array.from({ length: layers }, (_, i) => i);
const KV_TENSORS = LAYER_RANGE.flatMap((l) => [`model.layers.${l}.self_attn.k`, `model.layers.${l}.self_attn.v`]);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-llm-sample-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Token ids as a language model sees them: BOS first, then ids uniform over the ordinary vocabulary (0–2 are special). */
function tokenIds(seed: number, batch: number, seq: number): number[][] {
  const uniform = mulberry32(seed);
  return Array.from({ length: batch }, () => Array.from({ length: seq }, (_, s) => (s === 0 ? bosTokenId : 3 + Math.floor(uniform() * (vocabSize - 3)))));
}

function idsTensor(ids: number[][]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(ids.flat(), BigInt), [ids.length, ids[0].length]);
}

function floats(tensor: ort.Tensor): Float32Array {
  return tensor.data as Float32Array;
}

function rms(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  return Math.sqrt(sum / values.length);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

function loadModel(): onnx.ModelProto {
  return onnx.ModelProto.decode(fs.readFileSync(SAMPLE_PATH));
}

/** Every float initializer as float64 values, read from its little-endian raw bytes. */
function initializers(model: onnx.ModelProto): Map<string, { dims: number[]; values: Float64Array }> {
  const found = new Map<string, { dims: number[]; values: Float64Array }>();
  for (const tensor of (model.graph as onnx.GraphProto).initializer as onnx.TensorProto[]) {
    if (tensor.dataType !== onnx.TensorProto.DataType.FLOAT) continue;
    const raw = tensor.rawData;
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    found.set(tensor.name, { dims: tensor.dims.map(Number), values: Float64Array.from({ length: raw.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true)) });
  }
  return found;
}

/** The sample with some intermediate tensors added as graph outputs, so onnxruntime hands them back. */
async function sessionWithOutputs(names: string[]): Promise<ort.InferenceSession> {
  const model = loadModel();
  const graph = model.graph as onnx.GraphProto;
  for (const name of names) graph.output.push({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
  return ort.InferenceSession.create(onnx.ModelProto.encode(model).finish(), { logSeverityLevel: 3, intraOpNumThreads: 1 });
}

// ---------------------------------------------------------------------------------------------------------------
// LLaMA's forward pass in float64, written from the Hugging Face definitions (LlamaRMSNorm, rotate_half with
// inv_freq = θ^(−2i/d), causal softmax attention, SiLU(gate)·up), reading only the weights from the file.

/** x [rows, inF] · w [inF, outF] (ONNX MatMul layout). */
function matmul(x: Float64Array, w: Float64Array, rows: number, inF: number, outF: number): Float64Array {
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < inF; k++) {
      const xv = x[r * inF + k];
      if (xv === 0) continue;
      for (let j = 0; j < outF; j++) out[r * outF + j] += xv * w[k * outF + j];
    }
  }
  return out;
}

function rmsNorm64(x: Float64Array, weight: Float64Array, rows: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let meanSquare = 0;
    for (let d = 0; d < hidden; d++) meanSquare += x[r * hidden + d] ** 2 / hidden;
    const inverse = 1 / Math.sqrt(meanSquare + rmsNormEps);
    for (let d = 0; d < hidden; d++) out[r * hidden + d] = weight[d] * x[r * hidden + d] * inverse;
  }
  return out;
}

/** Rotary embedding in place on [tokens, hidden] rows, head by head; position = token index within its sequence. */
function rope64(x: Float64Array, seq: number): void {
  const half = HEAD_DIM / 2;
  for (let t = 0; t < x.length / hidden; t++) {
    const position = t % seq;
    for (let h = 0; h < heads; h++) {
      const base = t * hidden + h * HEAD_DIM;
      for (let i = 0; i < half; i++) {
        const angle = position / Math.pow(ropeTheta, (2 * i) / HEAD_DIM);
        const [a, b] = [x[base + i], x[base + half + i]];
        x[base + i] = a * Math.cos(angle) - b * Math.sin(angle);
        x[base + half + i] = b * Math.cos(angle) + a * Math.sin(angle);
      }
    }
  }
}

interface Reference {
  logits: Float64Array;
  /** Layer 0, [tokens, hidden]: q_proj's output, K after the rotary embedding, V. */
  q0: Float64Array;
  k0: Float64Array;
  v0: Float64Array;
}

function forward64(weights: Map<string, { values: Float64Array }>, ids: number[][]): Reference {
  const w = (name: string) => (weights.get(name) ?? assert.fail(`initializer ${name} missing`)).values;
  const [batch, seq] = [ids.length, ids[0].length];
  const tokens = batch * seq;
  let x = new Float64Array(tokens * hidden);
  ids.flat().forEach((id, t) => x.set(w('model.embed_tokens.weight').subarray(id * hidden, (id + 1) * hidden), t * hidden));
  const captured: Partial<Reference> = {};
  for (let layer = 0; layer < layers; layer++) {
    const p = `model.layers.${layer}`;
    const normed = rmsNorm64(x, w(`${p}.input_layernorm.weight`), tokens);
    const [q, k, v] = ['q', 'k', 'v'].map((part) => matmul(normed, w(`${p}.self_attn.${part}_proj.weight`), tokens, hidden, hidden));
    if (layer === 0) captured.q0 = q.slice();
    rope64(q, seq);
    rope64(k, seq);
    if (layer === 0) Object.assign(captured, { k0: k, v0: v });
    const context = new Float64Array(tokens * hidden);
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < heads; h++) {
        for (let i = 0; i < seq; i++) {
          const qi = (b * seq + i) * hidden + h * HEAD_DIM;
          // Causal: query i sees keys 0..i only.
          const scores = Array.from({ length: i + 1 }, (_, j) => {
            const kj = (b * seq + j) * hidden + h * HEAD_DIM;
            let dot = 0;
            for (let d = 0; d < HEAD_DIM; d++) dot += q[qi + d] * k[kj + d];
            return dot / Math.sqrt(HEAD_DIM);
          });
          const top = Math.max(...scores);
          const exps = scores.map((s) => Math.exp(s - top));
          const total = exps.reduce((a, e) => a + e, 0);
          exps.forEach((e, j) => {
            const vj = (b * seq + j) * hidden + h * HEAD_DIM;
            for (let d = 0; d < HEAD_DIM; d++) context[qi + d] += (e / total) * v[vj + d];
          });
        }
      }
    }
    const attnOut = matmul(context, w(`${p}.self_attn.o_proj.weight`), tokens, hidden, hidden);
    x = x.map((value, i) => value + attnOut[i]);
    const mlpIn = rmsNorm64(x, w(`${p}.post_attention_layernorm.weight`), tokens);
    const gate = matmul(mlpIn, w(`${p}.mlp.gate_proj.weight`), tokens, hidden, intermediate);
    const up = matmul(mlpIn, w(`${p}.mlp.up_proj.weight`), tokens, hidden, intermediate);
    const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
    const down = matmul(act, w(`${p}.mlp.down_proj.weight`), tokens, intermediate, hidden);
    x = x.map((value, i) => value + down[i]);
  }
  const logits = matmul(rmsNorm64(x, w('model.norm.weight'), tokens), w('lm_head.weight'), tokens, hidden, vocabSize);
  return { logits, ...(captured as Omit<Reference, 'logits'>) };
}

/** [batch, heads, seq, head_dim] (ONNX) → [batch·seq, hidden] (token rows, heads side by side). */
function mergeHeads(values: Float32Array, batch: number, seq: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let s = 0; s < seq; s++)
        for (let d = 0; d < HEAD_DIM; d++) out[(b * seq + s) * hidden + h * HEAD_DIM + d] = values[((b * heads + h) * seq + s) * HEAD_DIM + d];
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

test('the LLM sample is where the generator writes it, with the promised header, signature and module names', () => {
  assert.equal(path.resolve(DEFAULT_LLM_SAMPLE_PATH), SAMPLE_PATH);
  const model = loadModel();
  const graph = model.graph as onnx.GraphProto;
  assert.equal(Number(model.irVersion), 8);
  assert.deepEqual(model.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 17]]);
  assert.ok(graph.node.every((n) => !n.domain), 'default-domain ops only');
  const shapeOf = (info: onnx.IValueInfoProto) => info.type?.tensorType?.shape?.dim?.map((d) => d.dimParam || Number(d.dimValue));
  assert.deepEqual(graph.input.map((i) => [i.name, i.type?.tensorType?.elemType, shapeOf(i)]), [['input_ids', onnx.TensorProto.DataType.INT64, ['batch', 'seq']]]);
  assert.deepEqual(graph.output.map((o) => [o.name, o.type?.tensorType?.elemType, shapeOf(o)]), [['logits', onnx.TensorProto.DataType.FLOAT, ['batch', 'seq', vocabSize]]]);
  const size = fs.statSync(SAMPLE_PATH).size;
  assert.ok(size > 2 * 2 ** 20 && size < 6 * 2 ** 20, `${size} bytes`);

  const nodes = new Map((graph.node as onnx.NodeProto[]).map((n) => [n.name, n]));
  const weights = initializers(model);
  assert.equal(nodes.get('model.embed_tokens')?.opType, 'Gather');
  assert.deepEqual(weights.get('model.embed_tokens.weight')?.dims, [vocabSize, hidden]);
  const expectedDims: Record<string, [number, number]> = { 'mlp.gate_proj': [hidden, intermediate], 'mlp.up_proj': [hidden, intermediate], 'mlp.down_proj': [intermediate, hidden] };
  for (const layer of LAYER_RANGE) {
    for (const projection of PROJECTIONS) {
      const name = `model.layers.${layer}.${projection}`;
      assert.equal(nodes.get(name)?.opType, 'MatMul', name);
      assert.equal(nodes.get(name)?.input[1], `${name}.weight`);
      assert.deepEqual(weights.get(`${name}.weight`)?.dims, expectedDims[projection] ?? [hidden, hidden], name);
    }
  }
  assert.deepEqual(nodes.get('lm_head')?.output, ['logits']);
  const values = new Set(graph.node.flatMap((n) => n.output));
  for (const tensor of KV_TENSORS) assert.ok(values.has(tensor), `${tensor} is a node output`);
});

test('re-running the generator reproduces the committed file byte for byte', () => {
  const regenerated = path.join(dir, 'llm-sample.onnx');
  writeLlmSampleModel(regenerated);
  assert.ok(fs.readFileSync(regenerated).equals(fs.readFileSync(SAMPLE_PATH)), 'run `node out/scripts/build-llm-sample.js` and commit the result');
});

test('onnxruntime runs batch 2 × seq 8; a token changes the logits at its own and later positions only', async () => {
  const session = await ort.InferenceSession.create(SAMPLE_PATH, { logSeverityLevel: 3, intraOpNumThreads: 1 });
  const [batch, seq] = [2, 8];
  const ids = tokenIds(5, batch, seq);
  const run = async (tokens: number[][]) => floats((await session.run({ input_ids: idsTensor(tokens) })).logits);
  const base = await run(ids);
  assert.equal(base.length, batch * seq * vocabSize);
  assert.ok(base.every(Number.isFinite));
  console.log(`llm sample logits: rms ${rms(base).toFixed(3)}`);
  assert.ok(rms(base) > 0.3 && rms(base) < 3, `logits rms ${rms(base)}`);

  const at = (logits: Float32Array, b: number, s: number) => logits.subarray((b * seq + s) * vocabSize, (b * seq + s + 1) * vocabSize);
  for (let j = 0; j < seq; j++) {
    const changed = ids.map((row) => row.slice());
    changed[0][j] = (ids[0][j] + 101) % vocabSize;
    const logits = await run(changed);
    for (let s = 0; s < seq; s++) {
      const moved = maxAbsDiff(at(base, 0, s), at(logits, 0, s));
      if (s < j) assert.equal(moved, 0, `token ${j} moved the logits at earlier position ${s}`);
      else assert.ok(moved > 1e-3, `token ${j} left position ${s} unchanged (${moved})`);
      assert.equal(maxAbsDiff(at(base, 1, s), at(logits, 1, s)), 0, 'the other batch row moved');
    }
  }
});

test('the logits and layer 0 (q_proj, K after the rotary embedding, V) match a float64 LLaMA forward pass', async () => {
  const model = loadModel();
  const session = await sessionWithOutputs(['model.layers.0.self_attn.q_proj_output', 'model.layers.0.self_attn.k', 'model.layers.0.self_attn.v']);
  const [batch, seq] = [2, 8];
  const ids = tokenIds(6, batch, seq);
  const result = await session.run({ input_ids: idsTensor(ids) });
  const reference = forward64(initializers(model), ids);

  assert.deepEqual(result['model.layers.0.self_attn.k'].dims, [batch, heads, seq, HEAD_DIM]);
  const checks: Array<[string, ArrayLike<number>, Float64Array]> = [
    ['q_proj', floats(result['model.layers.0.self_attn.q_proj_output']), reference.q0],
    ['k', mergeHeads(floats(result['model.layers.0.self_attn.k']), batch, seq), reference.k0],
    ['v', mergeHeads(floats(result['model.layers.0.self_attn.v']), batch, seq), reference.v0],
    ['logits', floats(result.logits), reference.logits],
  ];
  for (const [label, actual, expected] of checks) {
    const relative = maxAbsDiff(actual, expected) / rms(expected);
    console.log(`float64 check ${label}: max |Δ| / rms = ${relative.toExponential(2)}`);
    assert.ok(relative < 1e-4, `${label}: max |Δ| is ${relative} of the rms`);
  }
});

test('the planted massive activations: a few residual dims 20–50× the rest at BOS, and a down_proj input spike there', async () => {
  const planted = plantedMassiveActivations();
  const residuals = LAYER_RANGE.map((l) => `model.layers.${l}/Add_mlp_output`);
  const downInputs = LAYER_RANGE.map((l) => `model.layers.${l}.mlp/Mul_output`);
  const session = await sessionWithOutputs([...residuals, ...downInputs]);
  const [batch, seq] = [2, 16];
  const result = await session.run({ input_ids: idsTensor(tokenIds(7, batch, seq)) });
  const isBos = (token: number) => token % seq === 0;
  for (const layer of LAYER_RANGE) {
    const residual = floats(result[residuals[layer]]);
    const rest: number[] = [];
    const massiveElsewhere: number[] = [];
    for (let t = 0; t < batch * seq; t++) {
      for (let d = 0; d < hidden; d++) {
        const value = residual[t * hidden + d];
        if (!planted.residualDims.includes(d)) rest.push(value);
        else if (!isBos(t)) massiveElsewhere.push(value);
      }
    }
    const restRms = rms(rest);
    const ratios = [0, seq].flatMap((bos) => planted.residualDims.map((d, k) => (planted.signs[k] * residual[bos * hidden + d]) / restRms));
    for (const ratio of ratios) assert.ok(ratio > 20 && ratio < 50, `layer ${layer}: a massive dim at BOS is ${ratio}× the rest`);
    // Elsewhere those dims are ordinary.
    assert.ok(Math.max(...massiveElsewhere.map(Math.abs)) < 5 * restRms, `layer ${layer}: massive dims large at ordinary tokens`);

    const product = floats(result[downInputs[layer]]);
    let bosMax = 0;
    const others: number[] = [];
    for (let t = 0; t < batch * seq; t++) {
      const values = product.subarray(t * intermediate, (t + 1) * intermediate);
      if (isBos(t)) bosMax = Math.max(bosMax, ...values.map(Math.abs));
      else others.push(...values);
    }
    const otherMax = Math.max(...others.map(Math.abs));
    assert.equal(Math.abs(product[planted.spikeChannels[layer]]), bosMax, 'the spike sits in the planted channel');
    console.log(
      `layer ${layer}: BOS massive dims ${ratios.slice(0, 3).map((r) => r.toFixed(0)).join('/')}× the rest (rms ${restRms.toFixed(2)}); ` +
        `down_proj input: BOS ${bosMax.toFixed(0)}, other tokens ≤ ${otherMax.toFixed(1)} (rms ${rms(others).toFixed(2)})`,
    );
    // A static per-tensor scale set by the spike leaves the ordinary tokens a few levels at most.
    assert.ok(bosMax > 10 * otherMax && bosMax > 100 * rms(others), `layer ${layer}: down_proj input spike ${bosMax} vs ${otherMax}`);
  }
});

test('the inspector lists lm_head and the 4 × 7 projections, with the planted gate/up weights standing out', async () => {
  const records: LayerRecord[] = [];
  const result = await inspectModel(SAMPLE_PATH, { outlierSigma: 6, histogramBins: 32 }, (event) => {
    if (event.kind === 'layers') records.push(...event.layers);
  });
  const expected = [...LAYER_RANGE.flatMap((l) => PROJECTIONS.map((p) => `model.layers.${l}.${p}`)), 'lm_head'];
  assert.deepEqual(records.map((r) => r.name), expected);
  assert.equal(result.layerCount, expected.length);
  assert.deepEqual(result.summary.inputs.map((i) => [i.name, i.dtype, i.shape]), [['input_ids', 'I64', ['batch', 'seq']]]);
  const byName = new Map(records.map((r) => [r.name, r]));
  assert.deepEqual(byName.get('lm_head')?.shape, [hidden, vocabSize]);
  for (const record of records) {
    assert.equal(record.opType, 'MatMul');
    assert.equal(record.channelAxis, 1, `${record.name}: MatMul [in, out] has its output channels on axis 1`);
    assert.equal(record.stats.nonFinite, 0);
  }
  assert.deepEqual(byName.get('model.layers.2.self_attn.k_proj')?.group, ['layer 2', 'self_attn']);
  for (const layer of LAYER_RANGE) {
    const plain = (byName.get(`model.layers.${layer}.self_attn.q_proj`) as LayerRecord).stats.absMax;
    for (const planted of ['gate_proj', 'up_proj']) {
      const stats = (byName.get(`model.layers.${layer}.mlp.${planted}`) as LayerRecord).stats;
      assert.ok(stats.absMax > 1.5 * plain, `${planted} of layer ${layer}: absmax ${stats.absMax} vs q_proj ${plain}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// QLLM-Eval's questions, answered by the sensitivity runner (lm_head left in full precision, as QLLM-Eval does).

const channel = { kind: 'channel' } as const;
const SETTINGS: QuantSetting[] = [
  { id: 'W4', weight: { bits: 4, granularity: channel } },
  { id: 'W8', weight: { bits: 8, granularity: channel } },
  { id: 'A8-token', activation: { bits: 8, mode: 'dynamic-token', symmetric: false } },
  { id: 'A8-static', activation: { bits: 8, mode: 'static-minmax', symmetric: false } },
  { id: 'A4-token', activation: { bits: 4, mode: 'dynamic-token', symmetric: false } },
  { id: 'W4A8', weight: { bits: 4, granularity: channel }, activation: { bits: 8, mode: 'dynamic-token', symmetric: false } },
];
const KV_SETTINGS: QuantSetting[] = [
  { id: 'KV8', activation: { bits: 8, mode: 'dynamic-token', symmetric: false } },
  { id: 'KV4', activation: { bits: 4, mode: 'dynamic-token', symmetric: false } },
];

describe('QLLM-Eval on the LLM sample: weights, activations and the KV cache', () => {
  let run: AnalysisRun;
  let kvRun: AnalysisRun;
  const sqnr = (record: AnalysisRun, unit: string, setting: string): number => {
    const row = record.rows.find((r) => r.unit === unit && r.setting === setting);
    return (row ?? assert.fail(`no row for ${unit} × ${setting}`)).primary.sqnrDb;
  };

  before(async () => {
    // Calibration as an LLM gets it: 8 sequences of 16 tokens, each starting with BOS, 4 samples of 2 sequences.
    const [rows, seq] = [8, 16];
    const calibration = path.join(dir, 'token-ids.npy');
    fs.writeFileSync(calibration, npy('<i8', [rows, seq], bytesOf(BigInt64Array.from(tokenIds(8, rows, seq).flat(), BigInt))));
    const base: AnalysisSettings = {
      model: SAMPLE_PATH,
      settings: SETTINGS,
      unit: 'layer',
      groups: [],
      exclude: ['^lm_head$'],
      calibration: { source: calibration, samples: 4, batch: 2, seed: 0, dims: {} },
      extraActivationTensors: [],
      executionProvider: 'cpu',
    };
    run = await runAnalysis(base, { recordPath: path.join(dir, 'run.json'), threads: 1 });
    // KV cache alone: every layer excluded, K and V of every layer as extra activation tensors.
    kvRun = await runAnalysis(
      { ...base, settings: KV_SETTINGS, exclude: ['.'], extraActivationTensors: KV_TENSORS },
      { recordPath: path.join(dir, 'kv-run.json'), threads: 1 },
    );
    assert.equal(run.status, 'complete');
    assert.equal(kvRun.status, 'complete');

    const table = [...run.plan.units].map((unit) => `  ${unit.padEnd(32)} ${SETTINGS.map((s) => `${s.id} ${sqnr(run, unit, s.id).toFixed(1).padStart(5)}`).join('  ')}`);
    const kvTable = [...kvRun.plan.units].map((unit) => `  ${unit.padEnd(32)} ${KV_SETTINGS.map((s) => `${s.id} ${sqnr(kvRun, unit, s.id).toFixed(1).padStart(5)}`).join('  ')}`);
    console.log(`# logits SQNR (dB), one unit quantized at a time ("*": all at once; lm_head in float)\n${table.join('\n')}`);
    console.log(`# KV cache: logits SQNR (dB) with K/V fake-quantized per token and head\n${kvTable.join('\n')}`);
  });

  it('plans the 28 projections (lm_head excluded) and "*"; the KV run plans the 8 K/V tensors and "*"', () => {
    assert.deepEqual(run.plan.units, [...LAYER_RANGE.flatMap((l) => PROJECTIONS.map((p) => `model.layers.${l}.${p}`)), ALL_UNIT]);
    assert.deepEqual(kvRun.plan.units, [...KV_TENSORS, ALL_UNIT]);
    assert.deepEqual(run.warnings ?? [], []);
    assert.deepEqual(kvRun.warnings ?? [], []);
  });

  it('(a) everything at W8 is near-lossless, far above W4; W8 beats W4 on every layer', () => {
    const [w8, w4] = [sqnr(run, ALL_UNIT, 'W8'), sqnr(run, ALL_UNIT, 'W4')];
    assert.ok(w8 > 30, `"*" at W8: ${w8} dB`);
    assert.ok(w8 > w4 + 15, `"*": W8 ${w8} dB vs W4 ${w4} dB`);
    for (const unit of run.plan.units) assert.ok(sqnr(run, unit, 'W8') > sqnr(run, unit, 'W4') + 15, unit);
    // QLLM-Eval: W4A8 (per-token activations) costs about what W4 alone costs.
    assert.ok(Math.abs(sqnr(run, ALL_UNIT, 'W4A8') - w4) < 1, `W4A8 ${sqnr(run, ALL_UNIT, 'W4A8')} vs W4 ${w4}`);
  });

  it('(b) dynamic per-token A8 beats static per-tensor A8 by a wide margin where the BOS spike flows (down_proj)', () => {
    const margin = (unit: string) => sqnr(run, unit, 'A8-token') - sqnr(run, unit, 'A8-static');
    const downProj = LAYER_RANGE.map((l) => `model.layers.${l}.mlp.down_proj`);
    const others = run.plan.units.filter((u) => u !== ALL_UNIT && !downProj.includes(u));
    const widestElsewhere = Math.max(...others.map(margin));
    for (const unit of downProj) {
      assert.ok(margin(unit) > 15, `${unit}: per-token ${sqnr(run, unit, 'A8-token')} dB vs static ${sqnr(run, unit, 'A8-static')} dB`);
      assert.ok(margin(unit) > widestElsewhere + 5, `${unit}: margin ${margin(unit)} dB vs up to ${widestElsewhere} dB elsewhere`);
    }
    assert.ok(margin(ALL_UNIT) > 15, `"*": per-token ${sqnr(run, ALL_UNIT, 'A8-token')} dB vs static ${sqnr(run, ALL_UNIT, 'A8-static')} dB`);
  });

  it('(c) the KV cache at 8 bits loses far less than at 4 bits, and is more robust than activations', () => {
    for (const unit of kvRun.plan.units) assert.ok(sqnr(kvRun, unit, 'KV8') > sqnr(kvRun, unit, 'KV4') + 15, unit);
    // QLLM-Eval: KV-cache quantization holds up better than activation quantization at the same bits.
    assert.ok(sqnr(kvRun, ALL_UNIT, 'KV8') > sqnr(run, ALL_UNIT, 'A8-token'), 'KV8 vs A8');
    assert.ok(sqnr(kvRun, ALL_UNIT, 'KV4') > sqnr(run, ALL_UNIT, 'A4-token') + 5, 'KV4 vs A4');
  });
});
