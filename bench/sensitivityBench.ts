// Sensitivity sweep costs (issue 3), for the sample and PP-OCRv4 rec, measured in one run:
//   P1 = sweep time ÷ (forward runs × bare forward time of the original model)      goal ≤ 1.10
//   P2 = time per configuration (a layer at a setting, over every timestep and sample) of a loop that builds a new
//        session per configuration (the model rebuilt with the layer's weight quantized: decode, quantize, encode,
//        create, run, compare) ÷ the sweep's; measured on a few single-layer W4 configurations       goal ≥ 5
//   P3 = forward time with every weight switch and fake-quant point present but off ÷ bare forward    goal ≤ 1.15
// Other processes may share the cores: every session runs one intra-op thread, P3 takes the best of alternating rounds,
// P1 the fastest of three sweeps against the fastest of three bare loops of as many runs, each right after a sweep.
// P2 depends on how many runs a configuration takes (timesteps × samples, `runs/config`): the sweep saves a session
// creation per configuration and pays its instrumentation's overhead on every run.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { MetricSums } from '../extension/engine/analysis/metrics';
import { runAnalysis } from '../extension/engine/analysis/runner';
import { loadCalibration, withTimestep } from '../extension/engine/calib';
import { toOrtFeeds } from '../extension/engine/calib/ortFeeds';
import { encodeModel, instrumentFeeds, instrumentModel, type FeedTensor } from '../extension/engine/instrument/instrument';
import { layerPlan } from '../extension/engine/instrument/plan';
import { loadOnnxModel } from '../extension/engine/model/onnx';
import { openModel } from '../extension/engine/model/open';
import { quantizeWeight } from '../extension/engine/quant/weightQuant';
import type { AnalysisSettings, QuantSetting } from '../extension/protocol/analysis';

type Feeds = Record<string, ort.Tensor>;

interface BenchModel {
  label: string;
  file: string;
  timesteps?: { input: string; values: number[] };
  dims?: Record<string, number>;
}

const SETTINGS: QuantSetting[] = [
  { id: 'W4', weight: { bits: 4, granularity: { kind: 'channel' } } },
  { id: 'W8', weight: { bits: 8, granularity: { kind: 'channel' } } },
  { id: 'A8', activation: { bits: 8, mode: 'dynamic-token', symmetric: false } },
];
const SAMPLES = 2;
const NAIVE_CONFIGS = 4;
const SWEEP_ROUNDS = 3;
/** One intra-op thread everywhere: a thread pool's spinning makes times swing when other processes share the cores. */
export const THREADS = 1;

function toOrt(feeds: Record<string, FeedTensor>): Feeds {
  return Object.fromEntries(Object.entries(feeds).map(([name, f]) => [name, new ort.Tensor(f.type, f.data, f.dims)]));
}

async function timeRuns(session: ort.InferenceSession, feeds: Feeds, runs: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < runs; i++) await session.run(feeds);
  return (performance.now() - started) / runs;
}

/** Best per-run time of each session over rounds that alternate between them. */
async function forwardTimes(sessions: { session: ort.InferenceSession; feeds: Feeds }[], runs: number, rounds = 7): Promise<number[]> {
  for (const s of sessions) await timeRuns(s.session, s.feeds, 3);
  const best = sessions.map(() => Infinity);
  for (let round = 0; round < rounds; round++) {
    for (const [i, s] of sessions.entries()) best[i] = Math.min(best[i], await timeRuns(s.session, s.feeds, runs));
  }
  return best;
}

/** The model's stored tensor (initializer or Constant value) named `name`. */
function storedTensor(model: onnx.ModelProto, name: string): onnx.ITensorProto {
  const graph = model.graph as onnx.GraphProto;
  const initializer = graph.initializer.find((t) => t.name === name);
  if (initializer) return initializer;
  const constant = graph.node.find((n) => n.opType === 'Constant' && n.output?.[0] === name);
  const value = constant?.attribute?.find((a) => a.name === 'value')?.t;
  if (!value) throw new Error(`no stored tensor ${name}`);
  return value;
}

export interface SensitivityBenchRow {
  label: string;
  cells: number;
  runsPerConfig: number;
  runs: number;
  bareMs: number;
  sweepMsPerRun: number;
  p1: number;
  p1WithSetup: number;
  /** Rebuilding the model and creating its session, per configuration. */
  naiveBuildMs: number;
  /** One run of the rebuilt model, with the comparison. */
  naiveRunMs: number;
  p2: number;
  /** P2 if every cell (one timestep) were a configuration of its own. */
  p2PerCell: number;
  p3: number;
}

async function benchModel(model: BenchModel, dir: string): Promise<SensitivityBenchRow> {
  const settings: AnalysisSettings = {
    model: model.file,
    settings: SETTINGS,
    unit: 'layer',
    groups: [],
    exclude: [],
    calibration: { samples: SAMPLES, batch: 1, seed: 0, dims: model.dims ?? {} },
    ...(model.timesteps ? { timestep: model.timesteps } : {}),
    extraActivationTensors: [],
    executionProvider: 'cpu',
  };
  const opened = await openModel(model.file);
  const inputs = opened.summary.inputs;
  const calibration = await loadCalibration(model.file, inputs, { ...settings.calibration, ...(settings.timestep ? { timestep: settings.timestep } : {}) });
  const tInput = model.timesteps ? inputs.find((i) => i.name === model.timesteps?.input) : undefined;
  // Every (timestep, sample) feed a configuration runs.
  const allFeeds = (model.timesteps?.values ?? [null]).flatMap((t) =>
    calibration.samples.map((sample) => toOrtFeeds(tInput && t !== null ? withTimestep(sample, tInput.name, t, tInput) : sample)),
  );
  const first = allFeeds[0];

  // P3: every layer's weight switch and input point, all off, against the bare model; best of alternating rounds.
  const proto = await loadOnnxModel(model.file);
  const instrumented = instrumentModel(proto, layerPlan(proto), { file: model.file });
  const options: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, intraOpNumThreads: THREADS };
  const bare = await ort.InferenceSession.create(model.file, options);
  const off = await ort.InferenceSession.create(encodeModel(instrumented.model), options);
  const runsPerRound = Math.max(5, Math.round(200 / Math.max(0.05, await timeRuns(bare, first, 3))));
  const [bareBest, offBest] = await forwardTimes([{ session: bare, feeds: first }, { session: off, feeds: { ...first, ...toOrt(instrumentFeeds(instrumented)) } }], runsPerRound);
  await off.release();

  // P1: sweeps as the runner does them, each beside a bare loop of as many runs over the same feeds (same statistic:
  // the mean over a long loop); the fastest of each counts.
  let best: { sweepMs: number; runs: number; setupMs: number; setupRuns: number; cells: number } | undefined;
  let bareLoop = Infinity;
  for (let round = 0; round < SWEEP_ROUNDS; round++) {
    const run = await runAnalysis(settings, { recordPath: path.join(dir, `${path.basename(model.file)}.json`), threads: THREADS });
    const timing = run.timing as NonNullable<typeof run.timing>;
    if (!best || timing.sweepMs < best.sweepMs) best = { ...timing, runs: timing.sweepRuns, cells: run.plan.total };
    const started = performance.now();
    for (let i = 0; i < timing.sweepRuns; i++) await bare.run(allFeeds[i % allFeeds.length]);
    bareLoop = Math.min(bareLoop, (performance.now() - started) / timing.sweepRuns);
  }
  const sweep = best as NonNullable<typeof best>;

  // P2: a new session per configuration (one layer at W4), run on every timestep and sample, compared with the
  // reference; on a few layers spread over the model.
  const references: Float32Array[] = [];
  for (const feeds of allFeeds) references.push((await bare.run(feeds))[bare.outputNames[0]].data as Float32Array);
  const layers = opened.layers.filter((l) => l.dtype === 'F32');
  const chosen = Array.from({ length: NAIVE_CONFIGS }, (_, i) => layers[Math.floor(((i + 0.5) * layers.length) / NAIVE_CONFIGS)]);
  let buildMs = 0;
  let runMs = 0;
  for (const layer of chosen) {
    const buildStart = performance.now();
    const copy = onnx.ModelProto.decode(fs.readFileSync(model.file));
    const tensor = storedTensor(copy, layer.weight);
    const quantized = quantizeWeight(await opened.readTensorF32(layer.weight), layer.shape, layer.channelAxis, 4, { kind: 'channel' });
    tensor.rawData = new Uint8Array(quantized.buffer);
    tensor.floatData = [];
    const session = await ort.InferenceSession.create(onnx.ModelProto.encode(copy).finish(), options);
    const runStart = performance.now();
    buildMs += runStart - buildStart;
    const sums = new MetricSums();
    for (const [i, feeds] of allFeeds.entries()) sums.add(references[i], (await session.run(feeds))[session.outputNames[0]].data as Float32Array);
    sums.result();
    runMs += performance.now() - runStart;
    await session.release();
  }
  const naiveBuildMs = buildMs / chosen.length;
  const naiveRunMs = runMs / chosen.length / allFeeds.length;
  await bare.release();
  await opened.close();

  const sweepMsPerRun = sweep.sweepMs / sweep.runs;
  // A configuration runs every timestep and sample; a cell of the plan one timestep's samples.
  const perConfig = allFeeds.length;
  const perCell = SAMPLES;
  return {
    label: model.label,
    cells: sweep.cells,
    runsPerConfig: perConfig,
    runs: sweep.runs,
    bareMs: bareLoop,
    sweepMsPerRun,
    p1: sweepMsPerRun / bareLoop,
    p1WithSetup: (sweep.setupMs + sweep.sweepMs) / ((sweep.setupRuns + sweep.runs) * bareLoop),
    naiveBuildMs,
    naiveRunMs,
    p2: (naiveBuildMs + perConfig * naiveRunMs) / (perConfig * sweepMsPerRun),
    p2PerCell: (naiveBuildMs + perCell * naiveRunMs) / (perCell * sweepMsPerRun),
    p3: offBest / bareBest,
  };
}

export async function sensitivityBench(repoRoot: string): Promise<SensitivityBenchRow[]> {
  const models: BenchModel[] = [
    { label: 'DiT sample, 10 timesteps', file: path.join(repoRoot, 'resources', 'sample', 'dit-sample.onnx'), timesteps: { input: 't', values: [999, 888, 777, 666, 555, 444, 333, 222, 111, 0] } },
    {
      label: 'PP-OCRv4 rec [1,3,48,320]',
      file: path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx'),
      dims: { 'x[3]': 320 },
    },
  ];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-bench-sweep-'));
  const rows: SensitivityBenchRow[] = [];
  try {
    for (const model of models) {
      if (!fs.existsSync(model.file)) {
        console.log(`skipping ${model.label}: ${path.relative(repoRoot, model.file)} is missing`);
        continue;
      }
      rows.push(await benchModel(model, dir));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
