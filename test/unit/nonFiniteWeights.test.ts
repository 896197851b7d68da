// NaN and ±Infinity weights: counted per tensor, named in a warning, and left out of every other statistic and of the
// SQNR, checked against the float64 reference on every kernel layout, at the positions the kernels treat differently
// (the first value, inside a SIMD quad, the scalar tail, copy-window edges, whole channels), and end to end through
// safetensors and ONNX files written here.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { inspectModel } from '../../extension/engine/inspect';
import { computeWeightStats } from '../../extension/engine/quant/weightStats';
import { SQNR_CAP_DB } from '../../extension/engine/quant/weightQuant';
import type { InspectEvent } from '../../extension/protocol/engine';
import { QUANT_BITS, type LayerRecord, type ModelSummary } from '../../extension/protocol/records';
import { channelsOf, gaussian, seededRandom } from './naiveWeightStats';
import { checkAgainstNaive, weightLike } from './weightStatsCheck';
import { halfExact, writeSafetensors, type FileTensor } from './weightFiles';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-nonfinite-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The copy window of weightStats.ts (elements): planted values on both sides of its edge. */
const WINDOW = 65536;

/** Flat indices of the elements of channel `channel`. */
function channelIndices(shape: number[], channelAxis: number, channel: number): number[] {
  const count = shape.reduce((a, b) => a * b, 1);
  const index = Float64Array.from({ length: count }, (_, i) => i);
  return channelsOf(index, shape, channelAxis)[channel].map((i) => i);
}

interface Planting {
  what: string;
  /** Flat indices to overwrite, given the tensor's size and layout. */
  at(n: number, shape: number[], channelAxis: number): number[];
}

const plantings: Planting[] = [
  { what: 'the first value (the shift of the sums)', at: () => [0] },
  { what: 'two lanes inside one SIMD quad', at: () => [5, 6] },
  { what: 'the last value (scalar tail)', at: (n) => [n - 1, n - 2] },
  { what: 'both sides of a copy-window edge', at: (n) => (n > WINDOW + 1 ? [WINDOW - 1, WINDOW] : [1]) },
  {
    what: 'a whole output channel (the first 200 values of rank 1)',
    at: (_, shape, axis) => (shape.length < 2 ? channelIndices(shape, axis, 0).slice(0, 200) : channelIndices(shape, axis, 1)),
  },
  {
    what: '1% scattered',
    at: (n) => {
      const random = seededRandom(n);
      return Array.from({ length: n }, (_, i) => i).filter(() => random() < 0.01);
    },
  },
];

const KINDS = [NaN, Infinity, -Infinity];

const layouts: { what: string; shape: number[]; channelAxis: number }[] = [
  { what: 'Linear [48, 300]', shape: [48, 300], channelAxis: 0 },
  { what: 'MatMul [300, 96], channels innermost', shape: [300, 96], channelAxis: 1 },
  { what: 'odd MatMul [13, 7]', shape: [13, 7], channelAxis: 1 },
  { what: 'odd Linear [7, 13]', shape: [7, 13], channelAxis: 0 },
  { what: 'ConvTranspose [16, 24, 3, 3]', shape: [16, 24, 3, 3], channelAxis: 1 },
  { what: 'rank 1 [1001]', shape: [1001], channelAxis: 0 },
  { what: 'channels longer than a window [2, 70001]', shape: [2, 70001], channelAxis: 0 },
  { what: 'rows across windows [3, 70001]', shape: [3, 70001], channelAxis: 1 },
];

for (const { what, shape, channelAxis } of layouts) {
  test(`NaN/±Inf are counted and left out, matching the float64 reference: ${what}`, () => {
    const clean = weightLike(shape, channelAxis, shape.reduce((a, b) => a + b, 3));
    for (const [p, planting] of plantings.entries()) {
      const data = clean.slice();
      const at = planting.at(data.length, shape, channelAxis);
      // Rotate through the kinds, starting at a different one per planting, so each position sees each kind.
      at.forEach((index, k) => {
        data[index] = KINDS[(k + p) % KINDS.length];
      });
      const stats = computeWeightStats(data, shape, channelAxis);
      assert.equal(stats.nonFinite, new Set(at).size, planting.what);
      checkAgainstNaive(stats, data, shape, channelAxis);
    }
  });
}

test('the warning names the count and each kind, and the statistics describe the finite values', () => {
  const stats = computeWeightStats(Float32Array.from([1, NaN, -2, Infinity, 0.5, -Infinity, 3, NaN]), [2, 4], 0, { histogramBins: 4 });
  assert.deepEqual([stats.count, stats.nonFinite, stats.nan, stats.posInf, stats.negInf], [8, 4, 2, 1, 1]);
  assert.deepEqual(stats.warnings, [
    '4 of 8 weights are non-finite (2 NaN, 1 +Inf, 1 −Inf); the statistics and SQNR cover the 4 finite ones',
  ]);
  // Finite values 1, −2, 0.5, 3: exact moments.
  assert.equal(stats.min, -2);
  assert.equal(stats.max, 3);
  assert.equal(stats.mean, 0.625);
  assert.equal(stats.std, Math.sqrt((0.375 ** 2 + 2.625 ** 2 + 0.125 ** 2 + 2.375 ** 2) / 4));
  assert.deepEqual(stats.histogram, { min: -2, max: 3, counts: [1, 0, 2, 1] });
  assert.deepEqual(stats.channelAbsMax, { min: 2, median: 2.5, max: 3 });

  const clean = computeWeightStats(gaussian(64, 1), [8, 8], 0);
  assert.deepEqual([clean.nonFinite, clean.nan, clean.posInf, clean.negInf, clean.warnings], [0, 0, 0, 0, []]);
});

test('a tensor without one finite value reads as empty, with every value counted', () => {
  for (const [fill, kinds] of [[NaN, [96, 0, 0]], [-Infinity, [0, 0, 96]]] as const) {
    const stats = computeWeightStats(new Float32Array(96).fill(fill), [8, 12], 1);
    assert.deepEqual([stats.count, stats.nonFinite, stats.nan, stats.posInf, stats.negInf], [96, 96, ...kinds]);
    assert.equal(stats.warnings.length, 1);
    assert.match(stats.warnings[0], /^all 96 weights are non-finite \(96 (NaN|−Inf)\): no statistic applies$/);
    assert.deepEqual([stats.min, stats.max, stats.mean, stats.std, stats.kurtosis, stats.absMax, stats.outlierShare], [0, 0, 0, 0, 0, 0, 0]);
    assert.equal(stats.histogram.counts.reduce((a, b) => a + b, 0), 0);
    assert.equal(stats.channels, 12);
    for (const bits of QUANT_BITS) assert.equal(stats.quantError.perChannel[bits], SQNR_CAP_DB);
  }
  const mixed = computeWeightStats(Float32Array.from([NaN, Infinity, -Infinity]), [3], 0);
  assert.deepEqual([mixed.nan, mixed.posInf, mixed.negInf], [1, 1, 1]);
});

test('a clean tensor measured after a corrupt one gives the numbers it gives alone', () => {
  const clean = weightLike([40, 130], 1, 4);
  const before = computeWeightStats(clean, [40, 130], 1);
  const corrupt = clean.slice();
  corrupt[7] = NaN;
  corrupt[5000] = Infinity;
  computeWeightStats(corrupt, [40, 130], 1);
  assert.deepEqual(computeWeightStats(clean, [40, 130], 1), before);
});

// ---------------------------------------------------------------------------------------------------------------
// files

async function inspectAll(file: string): Promise<{ events: InspectEvent[]; layers: LayerRecord[]; summary: ModelSummary }> {
  const events: InspectEvent[] = [];
  const result = await inspectModel(file, {}, (event) => events.push(event));
  const layers = events.flatMap((e) => (e.kind === 'layers' ? e.layers : []));
  return { events, layers, summary: result.summary };
}

function summaries(events: InspectEvent[]): ModelSummary[] {
  return events.flatMap((e) => (e.kind === 'summary' ? [e.summary] : []));
}

test('a safetensors checkpoint: F32 and F16 tensors with NaN/±Inf are flagged, the summary warns once at the end', async () => {
  const f32 = weightLike([64, 96], 0, 11);
  f32[0] = NaN;
  f32[4097] = Infinity;
  f32[f32.length - 1] = -Infinity;
  const f16 = halfExact(32 * 48, 12);
  for (const i of [3, 100, 101, 102]) f16[i] = NaN;
  f16[700] = -Infinity;
  const tensors: Record<string, FileTensor> = {
    'blocks.0.attn.qkv.weight': { dtype: 'F32', shape: [64, 96], values: f32 },
    'blocks.0.mlp.fc1.weight': { dtype: 'F16', shape: [32, 48], values: f16 },
    'blocks.0.mlp.fc2.weight': { dtype: 'F32', shape: [48, 32], values: weightLike([48, 32], 0, 13) },
    'blocks.0.norm.bad': { dtype: 'F16', shape: [4, 4], values: new Float32Array(16).fill(NaN) },
  };
  const file = path.join(dir, 'corrupt.safetensors');
  writeSafetensors(file, tensors);

  const { events, layers, summary } = await inspectAll(file);
  assert.equal(layers.length, 4);
  for (const layer of layers) {
    const { shape, values } = tensors[layer.weight];
    if (layer.weight === 'blocks.0.norm.bad') continue;
    checkAgainstNaive(layer.stats, values, shape, layer.channelAxis);
  }
  const byName = new Map(layers.map((l) => [l.name, l.stats]));
  assert.deepEqual([byName.get('blocks.0.attn.qkv.weight')!.nonFinite, byName.get('blocks.0.attn.qkv.weight')!.nan], [3, 1]);
  assert.deepEqual([byName.get('blocks.0.mlp.fc1.weight')!.nan, byName.get('blocks.0.mlp.fc1.weight')!.negInf], [4, 1]);
  assert.equal(byName.get('blocks.0.mlp.fc2.weight')!.nonFinite, 0);
  assert.equal(byName.get('blocks.0.norm.bad')!.nan, 16);

  // The first summary knows no statistics yet; the one sent after the last layer names the flagged layers.
  const sent = summaries(events);
  assert.equal(sent.length, 2);
  assert.equal(events.at(-1)?.kind, 'summary');
  assert.deepEqual(sent[0].warnings, []);
  assert.deepEqual(sent[1], summary);
  assert.deepEqual(summary.warnings, [
    '3 layers have NaN or infinite weights: "blocks.0.attn.qkv.weight" (3 of 6144), "blocks.0.mlp.fc1.weight" (5 of 1536), ' +
      '"blocks.0.norm.bad" (16 of 16); their statistics and SQNR cover the finite weights only',
  ]);
});

test('an ONNX model: initializers in raw_data and float_data with NaN/±Inf are flagged and measured without them', async () => {
  const matmul = weightLike([40, 24], 1, 21); // MatMul [K, N]: channels on axis 1
  matmul[1] = NaN;
  matmul[2] = NaN;
  matmul[matmul.length - 1] = Infinity;
  const gemm = weightLike([16, 40], 0, 22); // Gemm transB=1 [N, K]: channels on axis 0
  for (let k = 0; k < 40; k++) gemm[3 * 40 + k] = -Infinity; // all of output channel 3
  const raw = (values: Float32Array) => new Uint8Array(values.buffer.slice(0));
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'nonfinite',
      node: [
        { opType: 'MatMul', name: 'proj_in', input: ['x', 'w_in'], output: ['h'] },
        { opType: 'Gemm', name: 'proj_out', input: ['h', 'w_out'], output: ['y'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
      ],
      initializer: [
        { name: 'w_in', dataType: 1, dims: [40, 24], rawData: raw(matmul) },
        { name: 'w_out', dataType: 1, dims: [16, 40], floatData: Array.from(gemm) },
      ],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 40 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }, { dimValue: 16 }] } } } }],
    },
  });
  const file = path.join(dir, 'nonfinite.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());

  const { layers, summary } = await inspectAll(file);
  assert.deepEqual(layers.map((l) => [l.name, l.channelAxis]), [['proj_in', 1], ['proj_out', 0]]);
  checkAgainstNaive(layers[0].stats, matmul, [40, 24], 1);
  checkAgainstNaive(layers[1].stats, gemm, [16, 40], 0);
  assert.deepEqual([layers[0].stats.nan, layers[0].stats.posInf, layers[1].stats.negInf], [2, 1, 40]);
  // The Gemm's channel 3 has no finite weight: its absmax is 0, the smallest of the channels.
  assert.equal(layers[1].stats.channelAbsMax.min, 0);
  assert.equal(summary.warnings.length, 1);
  assert.match(summary.warnings[0], /^2 layers have NaN or infinite weights: "proj_in" \(3 of 960\), "proj_out" \(40 of 640\);/);
});
