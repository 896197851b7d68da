// `npm run bench`: open times of real models, weight-statistics throughput, peak memory of an inspection, and the
// costs of sensitivity sweeps (P1, P2, P3 of issue 3), all measured in this one run. Throughput is printed beside a plain loop over the same bytes measured alongside it: the
// ratio holds when the machine is slow or noisy, the MB/s do not.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { inspectModel } from '../extension/engine/inspect';
import { openModel } from '../extension/engine/model/open';
import { computeWeightStats } from '../extension/engine/quant/weightStats';
import { mulberry32 } from '../extension/engine/random';
import { THREADS, sensitivityBench } from './sensitivityBench';
import { benchSearchQuality, formatSearchQuality } from './searchBench';
import { benchSolver } from './solverBench';

const MB = 1e6;
const repoRoot = path.join(__dirname, '..', '..');

type Row = string[];

function table(section: string, header: Row, body: Row[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: Row) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(`\n${section}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
}

const ms = (value: number) => `${value.toFixed(1)} ms`;
const mbps = (bytes: number, millis: number) => `${((bytes / MB) / (millis / 1000)).toFixed(0)} MB/s`;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

function timeSync(fn: () => unknown): number {
  const started = performance.now();
  fn();
  return performance.now() - started;
}

// ---------------------------------------------------------------------------------------------------------------
// 1. open time of real models

async function openTimes(): Promise<void> {
  const models: [string, string][] = [
    ['DiT sample (resources/sample)', path.join(repoRoot, 'resources', 'sample', 'dit-sample.onnx')],
    ['PP-OCRv4 rec', path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx')],
  ];
  const body: Row[] = [];
  for (const [label, file] of models) {
    if (!fs.existsSync(file)) {
      console.log(`skipping ${label}: ${path.relative(repoRoot, file)} is missing`);
      continue;
    }
    const opens: number[] = [];
    let layers = 0;
    for (let i = 0; i < 5; i++) {
      opens.push(
        await timeAsync(async () => {
          const model = await openModel(file);
          layers = model.summary.layerCount;
          await model.close();
        }),
      );
    }
    const inspect = await timeAsync(() => inspectModel(file, {}, () => undefined));
    body.push([label, `${(fs.statSync(file).size / MB).toFixed(1)} MB`, String(layers), ms(opens[0]), ms(median(opens)), ms(inspect)]);
  }
  table('Open time (openModel: parse + summary + layer index)', ['model', 'file', 'layers', 'first open', 'median of 5', 'full inspect'], body);
}

// ---------------------------------------------------------------------------------------------------------------
// 2. a checkpoint of ≥ 200 MB

/** Deterministic Gaussian data (σ = 0.02), generated once and shared by the checkpoint's tensors. */
function gaussianData(count: number, seed: number): Float32Array {
  const uniform = mulberry32(seed);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = 0.02 * Math.sqrt(-2 * Math.log(1 - uniform())); // 1 − u ∈ (0, 1]: the logarithm stays finite
    const angle = 2 * Math.PI * uniform();
    data[i] = radius * Math.cos(angle);
    if (i + 1 < count) data[i + 1] = radius * Math.sin(angle);
  }
  return data;
}

/** Weight-like: the shared Gaussian scaled per tensor, with every 97th output channel (from `first`) 10× larger. */
function weightData(base: Float32Array, rows: number, columns: number, scale: number, first: number): Float32Array {
  const data = base.slice(0, rows * columns);
  for (let i = 0; i < data.length; i++) data[i] *= scale;
  for (let r = first % 97; r < rows; r += 97) for (let c = 0; c < columns; c++) data[r * columns + c] *= 10;
  return data;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half, round to nearest even (normal and subnormal range; weights here never overflow). */
function toF16(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  if (exponent >= 0x1f) return sign | 0x7c00;
  const [shift, base, full] = exponent > 0 ? [13, exponent << 10, mantissa] : [14 - exponent, 0, mantissa | 0x800000];
  if (shift > 24) return sign;
  let half = base | (full >>> shift);
  const rest = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
  return sign | half;
}

function toBF16(value: number): number {
  f32Scratch[0] = value;
  const bits = u32Scratch[0];
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

interface BenchTensor {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: [number, number];
}

function encode(tensor: BenchTensor, base: Float32Array, index: number): Uint8Array {
  const data = weightData(base, tensor.shape[0], tensor.shape[1], 1 + index / 4, index);
  if (tensor.dtype === 'F32') return new Uint8Array(data.buffer);
  const words = new Uint16Array(data.length);
  const convert = tensor.dtype === 'F16' ? toF16 : toBF16;
  for (let i = 0; i < data.length; i++) words[i] = convert(data[i]);
  return new Uint8Array(words.buffer);
}

function writeCheckpoint(file: string, tensors: BenchTensor[], base: Float32Array): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.shape[0] * t.shape[1] * (t.dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, length);
    fs.writeSync(fd, json);
    tensors.forEach((t, i) => fs.writeSync(fd, encode(t, base, i)));
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 3. statistics throughput

/** The floor every statistic pays: one pass summing the floats in float64. */
function plainLoop(data: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += data[i];
  return sum;
}

function statsThroughput(base: Float32Array): void {
  const side = 4096;
  const data = weightData(base, side, side, 1, 0);
  const bytes = data.byteLength;
  // A tensor with non-finite weights is measured twice (see weightStats.ts); one in 1,000 NaN shows that price.
  const withNaN = () => {
    const corrupt = data.slice();
    for (let i = 0; i < corrupt.length; i += 1000) corrupt[i] = NaN;
    return corrupt;
  };
  const body: Row[] = [];
  const cases = [
    ['[4096, 4096] F32, channels on axis 0 (Linear)', () => data, 0],
    ['[4096, 4096] F32, channels on axis 1 (MatMul)', () => data, 1],
    ['[4096, 4096] F32, axis 0, 1 in 1,000 weights NaN', withNaN, 0],
  ] as const;
  for (const [label, make, channelAxis] of cases) {
    const tensor = make();
    const stats: number[] = [];
    const plain: number[] = [];
    // Alternate the two so that a slow spell of the machine hits both.
    for (let i = 0; i < 5; i++) {
      plain.push(timeSync(() => plainLoop(tensor)));
      stats.push(timeSync(() => computeWeightStats(tensor, [side, side], channelAxis)));
    }
    const best = Math.min(...stats);
    const bestPlain = Math.min(...plain);
    body.push([label, ms(best), mbps(bytes, best), mbps(bytes, bestPlain), `${(best / bestPlain).toFixed(1)}×`, best <= bytes / MB ? 'yes' : 'no']);
  }
  table(
    'Statistics throughput, in memory (best of 5; goal ≥ 1000 MB/s of float32)',
    ['tensor', 'time', 'stats', 'plain loop', 'stats / plain', 'goal met'],
    body,
  );
}

async function endToEnd(file: string, f32Bytes: number): Promise<void> {
  // Baseline: read and decode every tensor, then one plain pass over it.
  const baseline = await timeAsync(async () => {
    const model = await openModel(file);
    try {
      for (const layer of model.layers) plainLoop(await model.readTensorF32(layer.weight));
    } finally {
      await model.close();
    }
  });
  let layers = 0;
  const inspect = await timeAsync(() =>
    inspectModel(file, {}, (event) => {
      if (event.kind === 'layers') layers += event.layers.length;
    }),
  );
  const fileBytes = fs.statSync(file).size;
  table(
    `inspectModel on the checkpoint (${layers} layers, ${(fileBytes / MB).toFixed(0)} MB on disk, ${(f32Bytes / MB).toFixed(0)} MB as float32)`,
    ['pass', 'time', 'float32 MB/s', 'file MB/s', 'vs read+plain'],
    [
      ['read + decode + plain loop', ms(baseline), mbps(f32Bytes, baseline), mbps(fileBytes, baseline), '1.0×'],
      ['inspectModel (all statistics)', ms(inspect), mbps(f32Bytes, inspect), mbps(fileBytes, inspect), `${(inspect / baseline).toFixed(1)}×`],
    ],
  );
}

// ---------------------------------------------------------------------------------------------------------------
// 4. peak memory of an inspection, in its own process

function childRss(nodeFlags: string[], file?: string): { maxRssBytes: number; layers: number; elapsedMs: number } {
  const script = path.join(__dirname, 'inspectRss.js');
  const result = spawnSync(process.execPath, [...nodeFlags, script, ...(file ? [file] : [])], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`RSS child failed: ${result.stderr || result.error?.message}`);
  return JSON.parse(result.stdout);
}

function peakMemory(file: string, largestF32Bytes: number): void {
  const limit = largestF32Bytes + 200 * MB;
  const mb = (bytes: number) => `${(bytes / MB).toFixed(0)} MB`;
  const idle = childRss([]);
  const body: Row[] = [['engine loaded, nothing inspected', mb(idle.maxRssBytes), '', '', '']];
  // With --expose-gc, inspectModel collects each large tensor as soon as it is measured.
  for (const flags of [[], ['--expose-gc']]) {
    const run = childRss(flags, file);
    const label = `inspectModel, ${run.layers} layers${flags.length ? `, node ${flags.join(' ')}` : ''}`;
    body.push([label, mb(run.maxRssBytes), mb(largestF32Bytes), mb(limit), run.maxRssBytes <= limit ? 'yes' : 'no']);
  }
  table(
    'Peak RSS of a separate node process (VmHWM)',
    ['process', 'peak RSS', 'largest tensor (float32)', 'goal: ≤ largest + 200 MB', 'goal met'],
    body,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// 5. sensitivity sweeps (sensitivityBench.ts)

async function sweepCosts(): Promise<void> {
  const rows = await sensitivityBench(repoRoot);
  const ratio = (value: number) => value.toFixed(2);
  const met = (ok: boolean) => (ok ? 'yes' : 'no');
  table(
    `Sensitivity sweep: W4, W8, A8 (dynamic per-token) per layer and "*", 2 samples; onnxruntime CPU, ${THREADS} intra-op thread`,
    ['model', 'cells', 'runs', 'bare fwd', 'sweep/run', 'P1', 'P1 incl. setup', 'rebuild+session', 'runs/config', 'P2', 'P2 per cell', 'P3'],
    rows.map((r) => [
      r.label,
      String(r.cells),
      String(r.runs),
      `${r.bareMs.toFixed(2)} ms`,
      `${r.sweepMsPerRun.toFixed(2)} ms`,
      ratio(r.p1),
      ratio(r.p1WithSetup),
      ms(r.naiveBuildMs),
      String(r.runsPerConfig),
      `${r.p2.toFixed(1)}×`,
      `${r.p2PerCell.toFixed(1)}×`,
      ratio(r.p3),
    ]),
  );
  table(
    'Goals: P1 ≤ 1.10, P2 ≥ 5, P3 ≤ 1.15',
    ['model', 'P1 ≤ 1.10', 'P2 ≥ 5', 'P3 ≤ 1.15'],
    rows.map((r) => [r.label, met(r.p1 <= 1.1), met(r.p2 >= 5), met(r.p3 <= 1.15)]),
  );
  console.log(
    'P2 = (rebuild+session + n × run of the rebuilt model) ÷ (n × sweep/run), n = runs per configuration (a layer at a setting:\n' +
      'timesteps × samples); "P2 per cell" takes each timestep as its own configuration (n = samples). The fewer runs a\n' +
      'configuration takes, the more one session saves; with many, P2 tends to 1/P1.',
  );
}

async function main(): Promise<void> {
  console.log(`QuantLens bench — node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores`);
  // `node out/bench/bench.js --sweep` measures only the sensitivity sweeps.
  if (process.argv.includes('--sweep')) return sweepCosts();
  const side = 4096;
  const base = gaussianData(side * side, 7);
  // `--stats` measures only the statistics throughput (seconds, where the whole bench takes minutes).
  if (process.argv.includes('--stats')) return statsThroughput(base);
  await openTimes();
  statsThroughput(base);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-bench-'));
  try {
    const file = path.join(dir, 'bench.safetensors');
    const tensors: BenchTensor[] = [
      { name: 'blocks.0.attn.qkv.weight', dtype: 'F32', shape: [side, side] },
      { name: 'blocks.0.mlp.fc1.weight', dtype: 'F32', shape: [side, side] },
      { name: 'blocks.0.mlp.fc2.weight', dtype: 'F32', shape: [side, side] },
      { name: 'blocks.1.attn.qkv.weight', dtype: 'F16', shape: [side, side] },
      { name: 'blocks.1.mlp.fc1.weight', dtype: 'F16', shape: [side, side] },
      { name: 'blocks.1.mlp.fc2.weight', dtype: 'BF16', shape: [side, side] },
      { name: 'blocks.1.norm.weight', dtype: 'F32', shape: [1, side] },
    ];
    const started = performance.now();
    writeCheckpoint(file, tensors, base);
    console.log(`\nwrote ${(fs.statSync(file).size / MB).toFixed(0)} MB checkpoint in ${ms(performance.now() - started)}: ${file}`);
    const elements = tensors.map((t) => t.shape[0] * t.shape[1]);
    const f32Bytes = elements.reduce((a, b) => a + b, 0) * 4;
    await endToEnd(file, f32Bytes);
    peakMemory(file, Math.max(...elements) * 4);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await sweepCosts();
  solverTime();
  // The searched allocation's measured error against uniform allocations of the same or nearby cost (the sample).
  console.log(formatSearchQuality(await benchSearchQuality()));
}

// 6. mixed-precision solver (solverBench.ts)
function solverTime(): void {
  const runs = [benchSolver(), benchSolver(), benchSolver()];
  const { layers, options, gridCells } = runs[0];
  table(
    'Mixed-precision solver: one exact Pareto-front solve (goal < 1 s)',
    ['problem', 'grid cells', 'first solve', 'best of 3', 'goal met'],
    [[`${layers} layers × ${options} options`, String(gridCells), ms(runs[0].ms), ms(Math.min(...runs.map((r) => r.ms))), runs[0].ms < 1000 ? 'yes' : 'no']],
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
