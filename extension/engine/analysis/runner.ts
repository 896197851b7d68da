// The sensitivity runner: one layer (or group) quantized at a time, every calibration sample run, the outputs
// compared with the full-precision reference, per setting and per timestep.
//
// The model is instrumented once for the sweep (instrument/instrument.ts): the planned layers' weights overridable and
// fake-quant points on their inputs, only what the settings use, and every configuration is a different set of feeds
// to one onnxruntime session. Calibration (activation ranges, percentiles) runs first on a second instrumentation of
// the same points that also outputs their ranges (and tensors), released before the sweep session is made: its
// reductions would otherwise cost every sweep run. The reference outputs come from the sweep session with every
// switch off, once per sample and timestep, so a cell's error is its quantization's alone. Quantized weight copies are
// made once per layer × weight setting before the cells (or as they are needed, when they would not fit in memory).
//
// onnxruntime-node defers every run to a setImmediate callback, so each run passes the event loop's poll phase: a
// cancel message is read between two runs, and the signal is checked before each.
//
// The record is written (atomically) when the plan is made, with the first rows, then about every second while rows
// arrive, and at the end: a crash keeps what finished, a cancel keeps it as 'cancelled', a failure as 'failed'.
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type {
  AnalysisRun,
  AnalysisSettings,
  Metrics,
  QuantSetting,
  SensitivityRow,
} from '../../protocol/analysis';
import type { AnalysisEvent } from '../../protocol/engine';
import type { LayerInfo } from '../../protocol/records';
import { graphIntRanges, loadCalibration, withTimestep, type CalibrationSet } from '../calib';
import { toOrtFeeds } from '../calib/ortFeeds';
import { CancelledError, ModelError } from '../errors';
import { DataType, valueInfo } from '../instrument/graph';
import {
  FEEDABLE_WEIGHT_DTYPES,
  encodeModel,
  instrumentFeeds,
  instrumentModel,
  staticQuantParams,
  type ActivationPointSpec,
  type ActivationQuant,
  type InstrumentedModel,
  type InstrumentedPoint,
  type WeightOverride,
  weightOverride,
} from '../instrument/instrument';
import { layerNodes, placedPoints, pointKey } from '../instrument/plan';
import { createSession, floatOutput, ortFailureReason, ortTensors } from '../ortSession';
import { loadOnnxModel } from '../model/onnx';
import { openModel } from '../model/open';
import type { OpenedModel } from '../model/types';
import { quantizeWeight } from '../quant/weightQuant';
import { newRunId, quantlensVersion, saveRun } from '../runs/records';
import { calibratedRange, calibratePoints, type PointRange } from './calibrate';
import { MetricSums } from './metrics';
import { planCells, planUnits, type Cell, type PlannedUnit } from './plan';
import { ALL_UNIT, DEFAULT_PERCENTILE, checkSettings, checkShard, isWeightSymmetric, settingsError } from './settings';

export interface RunAnalysisOptions {
  /** Where the record is saved as the run goes. */
  recordPath: string;
  /** Run only slice `index` of `count` of the plan (every count-th cell). */
  shard?: { index: number; count: number };
  onEvent?: (event: AnalysisEvent) => void;
  signal?: AbortSignal;
  /** onnxruntime intra-op threads per session (default: onnxruntime's, one per physical core of the machine, which
   *  oversubscribes a container limited to fewer CPUs). Not part of the settings: it does not change the numbers. */
  threads?: number;
}

const ROWS_EVERY_MS = 100;
const SAVE_EVERY_MS = 1000;
/** A record that takes long to write is saved less often: at most this share of the run's time goes to saving. */
const SAVE_SHARE = 0.1;
const TIMING_RUNS = 5;
/** Quantized weight copies kept for reuse; above this, copies the next unit does not use are dropped. */
const WEIGHT_CACHE_BYTES = 512 * 2 ** 20;

type Outputs = Record<string, ArrayLike<number>>;
type Feeds = Record<string, ort.Tensor>;

/** A unit's layer whose weight the sweep model can override, and the weight's ONNX element type. */
interface UnitWeight {
  layer: LayerInfo;
  elemType: number;
}

/** One of a unit's points in the sweep model, and the same point in the calibration model. */
interface UnitPoint {
  sweep: InstrumentedPoint;
  calib: InstrumentedPoint;
}

/** A layer (or extra tensor) and the calibration points whose ranges make its activation range. */
interface RangeSource {
  name: string;
  points: InstrumentedPoint[];
}

interface SweepPlan {
  calibration: CalibrationSet;
  calibInst: InstrumentedModel;
  sweepInst: InstrumentedModel;
  units: PlannedUnit[];
  unitPoints: UnitPoint[][];
  unitWeights: UnitWeight[][];
  rangeSources: RangeSource[];
  cells: Cell[];
  /** Percentiles the static-percentile settings use. */
  percentiles: number[];
}

/** A copy of the model that also outputs `tensors` (intermediate values a group is ranked by). */
function withExtraOutputs(model: onnx.ModelProto, tensors: readonly string[]): onnx.ModelProto {
  const graph = model.graph as onnx.GraphProto;
  const present = new Set(graph.output.map((o) => o.name));
  const added = tensors.filter((t) => !present.has(t)).map((t) => valueInfo(t));
  if (added.length === 0) return model;
  return onnx.ModelProto.create({ ...model, graph: onnx.GraphProto.create({ ...graph, output: [...graph.output, ...added] }) });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function environment(settings: AnalysisSettings): AnalysisRun['environment'] {
  const cpus = os.cpus();
  return {
    quantlens: quantlensVersion(),
    onnxruntime: ort.env.versions?.node ?? ort.env.versions?.common ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: `${cpus[0]?.model?.trim() ?? 'unknown'} × ${cpus.length}`,
    executionProvider: settings.executionProvider,
  };
}

/**
 * Runs a sensitivity sweep and returns its record (status 'complete', or 'cancelled' when the signal fired after the
 * plan was made). Bad models, settings and calibration files throw ModelError naming the file; a failure after the
 * record was first written saves it as 'failed' before throwing.
 */
export async function runAnalysis(settings: AnalysisSettings, options: RunAnalysisOptions): Promise<AnalysisRun> {
  checkSettings(settings);
  if (options.shard && !checkShard(options.shard)) {
    throw settingsError(path.resolve(settings.model), `a shard is {index, count} with 0 ≤ index < count (got ${JSON.stringify(options.shard)})`);
  }
  if (options.threads !== undefined && !(Number.isSafeInteger(options.threads) && options.threads >= 1)) {
    throw settingsError(path.resolve(settings.model), `threads must be a positive integer (got ${options.threads})`);
  }
  if (settings.executionProvider !== 'cpu') await checkExecutionProvider(settings);
  const opened = await openModel(settings.model);
  try {
    return await new Sweep(settings, options, opened).run();
  } finally {
    await opened.close();
  }
}

/** A one-node model, to find out before any work whether onnxruntime can create sessions on the provider. */
function identityModel(): Uint8Array {
  const type = { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: 1 }] } } };
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: { name: 'probe', node: [{ opType: 'Identity', input: ['x'], output: ['y'] }], input: [{ name: 'x', type }], output: [{ name: 'y', type }] },
  });
}

async function checkExecutionProvider(settings: AnalysisSettings): Promise<void> {
  const ep = settings.executionProvider;
  // Its native log would repeat the failure in red on stderr; the exception carries it.
  ort.env.logLevel = 'fatal';
  try {
    await (await ort.InferenceSession.create(identityModel(), { logSeverityLevel: 4, executionProviders: [ep] })).release();
  } catch (err) {
    const reason = ortFailureReason(err);
    throw settingsError(
      path.resolve(settings.model),
      `the ${ep.toUpperCase()} execution provider is not available here (${reason}); install onnxruntime-node with its CUDA ` +
        'libraries (npm install onnxruntime-node --onnxruntime-node-install=cuda12) or choose the CPU',
    );
  }
}

class Sweep {
  private readonly modelFile: string;
  private readonly emit: (event: AnalysisEvent) => void;
  private readonly startedAt = performance.now();
  private record!: AnalysisRun;
  private recordSaved = false;
  private lastSaveEnd = 0;
  private lastSaveMs = 0;
  private savedRows = 0;
  private setupRuns = 0;
  private sweepRuns = 0;
  private setupMs: number | undefined;
  private sweepMs = 0;
  private readonly warnings: string[] = [];

  constructor(
    private readonly settings: AnalysisSettings,
    private readonly options: RunAnalysisOptions,
    private readonly opened: OpenedModel,
  ) {
    this.modelFile = opened.summary.path;
    this.emit = (event) => options.onEvent?.(event);
  }

  private checkAbort(): void {
    if (this.options.signal?.aborted) throw new CancelledError();
  }

  /** A step of the setup: no cells done yet. */
  private progress(message: string): void {
    this.emit({ kind: 'progress', done: 0, total: 0, etaMs: null, message });
  }

  async run(): Promise<AnalysisRun> {
    const { settings, modelFile } = this;
    const summary = this.opened.summary;
    const plan = await this.prepare();
    const timesteps: (number | null)[] = settings.timestep ? settings.timestep.values : [null];
    this.record = {
      schema: 'quantlens.analysis/1',
      id: newRunId(),
      createdAt: new Date().toISOString(),
      status: 'running',
      settings: { ...settings, model: modelFile },
      environment: environment(settings),
      model: { fileName: summary.fileName, bytes: summary.fileBytes, layerCount: summary.layerCount },
      plan: {
        units: plan.units.map((u) => u.name),
        settings: settings.settings.map((s) => s.id),
        timesteps,
        total: plan.cells.length,
        ...(this.options.shard ? { shard: { ...this.options.shard } } : {}),
      },
      referenceForwardMs: 0,
      ...(this.warnings.length > 0 ? { warnings: this.warnings } : {}),
      rows: [],
      ranges: [],
    };
    this.save();

    try {
      await this.sweep(plan);
      this.record.status = 'complete';
    } catch (err) {
      if (!(err instanceof CancelledError)) {
        this.record.status = 'failed';
        this.record.message = err instanceof Error ? err.message : String(err);
        this.finish();
        throw err;
      }
      this.record.status = 'cancelled';
      this.record.message = 'cancelled before the end; the finished rows are kept';
    }
    this.finish();
    return this.record;
  }

  /** Calibration data, units, the two instrumentations, and the cells of this slice of the plan. */
  private async prepare(): Promise<SweepPlan> {
    const { settings, modelFile } = this;
    const summary = this.opened.summary;
    if (summary.format !== 'onnx') {
      throw new ModelError(modelFile, 'sensitivity analysis runs ONNX models; a safetensors checkpoint has no graph to run (export the model to ONNX)');
    }
    if (summary.externalDataFiles.length > 0) {
      throw new ModelError(modelFile, 'sensitivity analysis does not yet run models with external data files');
    }
    this.progress('loading the model and calibration data');
    const model = await loadOnnxModel(modelFile);
    const calibration = await loadCalibration(modelFile, summary.inputs, {
      ...(settings.calibration.source !== undefined ? { source: settings.calibration.source } : {}),
      samples: settings.calibration.samples,
      batch: settings.calibration.batch,
      seed: settings.calibration.seed,
      dims: settings.calibration.dims,
      intRanges: graphIntRanges(model.graph as onnx.GraphProto, summary.inputs),
      ...(settings.timestep ? { timestep: settings.timestep } : {}),
    });
    this.warnings.push(...calibration.warnings);
    this.checkAbort();

    const graph = model.graph as onnx.GraphProto;
    const unitPlan = planUnits(settings, this.opened.layers, layerNodes(graph));
    if (unitPlan.units.length === 0) {
      throw new ModelError(modelFile, settings.exclude.length > 0 ? 'no layers left to analyze after "exclude"' : 'the model has no quantizable layers to analyze');
    }
    const values = new Set<string>([...graph.input.map((i) => i.name ?? ''), ...graph.node.flatMap((n) => n.output ?? [])]);
    for (const tensor of [...unitPlan.metricTensors, ...settings.extraActivationTensors]) {
      if (!values.has(tensor)) throw settingsError(modelFile, `no tensor named ${JSON.stringify(tensor)} in the model's main graph`);
    }
    const needWeights = settings.settings.some((s) => s.weight);
    const needPoints = settings.settings.some((s) => s.activation);
    const feedable = unitPlan.layers.filter((l) => FEEDABLE_WEIGHT_DTYPES.has(l.layer.dtype));
    if (needWeights) {
      for (const layer of unitPlan.layers.filter((l) => !FEEDABLE_WEIGHT_DTYPES.has(l.layer.dtype))) {
        this.warnings.push(`layer ${JSON.stringify(layer.name)}: its ${layer.layer.dtype} weight cannot be fed from Node; weight settings leave it alone`);
      }
    }

    // Every point once: the layers' inputs, then the extra tensors.
    const specs = new Map<string, ActivationPointSpec>();
    for (const spec of [...unitPlan.layers.flatMap((l) => l.points), ...settings.extraActivationTensors.map((tensor) => ({ tensor }))]) {
      if (!specs.has(pointKey(spec))) specs.set(pointKey(spec), spec);
    }
    const percentiles = [
      ...new Set(settings.settings.filter((s) => s.activation?.mode === 'static-percentile').map((s) => s.activation?.percentile ?? DEFAULT_PERCENTILE)),
    ];
    const file = { file: modelFile };
    const calibInst = instrumentModel(
      model,
      { weights: [], activationPoints: [...specs.values()], withRangeOutputs: true, withTensorOutputs: percentiles.length > 0 },
      file,
    );
    const sweepInst = instrumentModel(
      withExtraOutputs(model, unitPlan.metricTensors),
      { weights: needWeights ? feedable.map((l) => l.layer.weight) : [], activationPoints: needPoints ? [...specs.values()] : [] },
      file,
    );
    const skipped = new Set<string>();
    for (const { tensor, reason } of [...calibInst.skipped, ...sweepInst.skipped]) {
      const warning = `no fake-quant point on ${JSON.stringify(tensor)}: ${reason}`;
      if (!skipped.has(warning)) this.warnings.push(warning);
      skipped.add(warning);
    }
    const calibPoints = placedPoints([...specs.values()], calibInst);
    const sweepPoints = placedPoints([...specs.values()], sweepInst);
    const sweepWeights = new Map(sweepInst.weights.map((w) => [w.weight, w]));

    const specsOf = (unit: PlannedUnit): ActivationPointSpec[] => [...unit.layers.flatMap((l) => l.points), ...unit.tensors.map((tensor) => ({ tensor }))];
    const unitPoints = unitPlan.units.map((unit) => {
      const byIndex = new Map<number, UnitPoint>();
      for (const spec of specsOf(unit)) {
        const sweep = sweepPoints.get(pointKey(spec));
        const calib = calibPoints.get(pointKey(spec));
        if (sweep && calib) byIndex.set(sweep.index, { sweep, calib });
      }
      return [...byIndex.values()];
    });
    const unitWeights: UnitWeight[][] = unitPlan.units.map((unit) =>
      unit.layers.flatMap((l) => {
        const target = sweepWeights.get(l.layer.weight);
        return target ? [{ layer: l.layer, elemType: target.elemType }] : [];
      }),
    );
    // Ranges are recorded for every layer and extra tensor ("*" holds them all).
    const all = unitPlan.units.find((u) => u.name === ALL_UNIT);
    const rangeSources: RangeSource[] = [
      ...(all?.layers ?? []).map((l) => ({ name: l.name, specs: l.points })),
      ...(all?.tensors ?? []).map((tensor) => ({ name: tensor, specs: [{ tensor }] })),
    ].map(({ name, specs: own }) => ({ name, points: own.map((spec) => calibPoints.get(pointKey(spec))).filter((p): p is InstrumentedPoint => !!p) }));

    const applies = (u: number, s: number) => {
      const setting = settings.settings[s];
      return (!!setting.weight && unitWeights[u].length > 0) || (!!setting.activation && unitPoints[u].length > 0);
    };
    const cells = planCells(
      { units: unitPlan.units.length, settings: settings.settings.length, timesteps: settings.timestep?.values.length ?? 1 },
      applies,
      this.options.shard,
    );
    return { calibration, calibInst, sweepInst, units: unitPlan.units, unitPoints, unitWeights, rangeSources, cells, percentiles };
  }

  private finish(): void {
    this.record.timing = {
      setupMs: this.setupMs ?? performance.now() - this.startedAt,
      setupRuns: this.setupRuns,
      sweepMs: this.sweepMs,
      sweepRuns: this.sweepRuns,
    };
    this.save();
  }

  private save(): void {
    const started = performance.now();
    saveRun(this.options.recordPath, this.record);
    this.recordSaved = true;
    this.savedRows = this.record.rows.length;
    this.lastSaveEnd = performance.now();
    this.lastSaveMs = this.lastSaveEnd - started;
  }

  private saveDue(now: number): boolean {
    if (!this.recordSaved) return true;
    if (this.record.rows.length === this.savedRows) return false;
    if (this.savedRows === 0) return true;
    return now - this.lastSaveEnd >= Math.max(SAVE_EVERY_MS, this.lastSaveMs / SAVE_SHARE);
  }

  private createSession(bytes: Uint8Array | string, what: string): Promise<ort.InferenceSession> {
    return createSession(bytes, this.modelFile, what, {
      executionProvider: this.settings.executionProvider,
      ...(this.options.threads ? { threads: this.options.threads } : {}),
    });
  }

  /** Model feeds per timestep (index into the plan's timesteps) and sample, for the timesteps this slice uses. */
  private modelFeeds(plan: SweepPlan): Map<number, Feeds[]> {
    const { settings } = this;
    const timesteps = this.record.plan.timesteps;
    const input = settings.timestep ? this.opened.summary.inputs.find((i) => i.name === settings.timestep?.input) : undefined;
    const feeds = new Map<number, Feeds[]>();
    for (const t of [...new Set(plan.cells.map((c) => c.timestep))].sort((x, y) => x - y)) {
      const value = timesteps[t];
      feeds.set(t, plan.calibration.samples.map((sample) => toOrtFeeds(value === null || !input ? sample : withTimestep(sample, input.name, value, input))));
    }
    return feeds;
  }

  /** Ranges (and percentiles) of every point per timestep, every switch off; the session is released after. */
  private async calibrate(plan: SweepPlan, feeds: Map<number, Feeds[]>): Promise<Map<number, PointRange[]>> {
    const { calibInst, percentiles } = plan;
    this.progress('calibrating activation ranges');
    const session = await this.createSession(encodeModel(calibInst.model), 'model instrumented for calibration');
    const stats = new Map<number, PointRange[]>();
    try {
      for (const [t, samples] of feeds) {
        stats.set(t, await calibratePoints(session, calibInst, samples, percentiles, () => {
          this.checkAbort();
          this.setupRuns++;
        }));
      }
    } finally {
      await session.release();
    }
    return stats;
  }

  /** The original model's forward time on the first sample, median of a few runs after a warm-up. */
  private async bareForwardMs(first: Feeds | undefined): Promise<number> {
    if (!first) return 0;
    const session = await this.createSession(this.modelFile, 'model');
    try {
      const times: number[] = [];
      for (let i = 0; i <= TIMING_RUNS; i++) {
        this.checkAbort();
        const begin = performance.now();
        await session.run(first);
        if (i > 0) times.push(performance.now() - begin);
        this.setupRuns++;
      }
      return median(times);
    } finally {
      await session.release();
    }
  }

  /** The float outputs (and metric tensors) of every sample at every timestep with every switch off. */
  private async references(session: ort.InferenceSession, sweepInst: InstrumentedModel, feeds: Map<number, Feeds[]>): Promise<Map<number, Outputs[]>> {
    this.progress('computing full-precision references');
    const off = ortTensors(instrumentFeeds(sweepInst));
    const references = new Map<number, Outputs[]>();
    for (const [t, samples] of feeds) {
      const perSample: Outputs[] = [];
      for (const sample of samples) {
        this.checkAbort();
        const out = await session.run({ ...sample, ...off });
        this.setupRuns++;
        const kept: Outputs = {};
        for (const name of session.outputNames) {
          const data = floatOutput(out[name]);
          if (data) kept[name] = data;
        }
        perSample.push(kept);
      }
      references.set(t, perSample);
    }
    return references;
  }

  /** The quantized weight copies the slice's cells use, made now when they fit the cache, else as the cells need them. */
  private async quantizeWeights(plan: SweepPlan): Promise<WeightCache> {
    const cache = new WeightCache(this.opened);
    const needed = new Map<string, { weight: UnitWeight; setting: NonNullable<QuantSetting['weight']> }>();
    for (const cell of plan.cells) {
      const setting = this.settings.settings[cell.setting].weight;
      if (!setting) continue;
      for (const weight of plan.unitWeights[cell.unit]) needed.set(WeightCache.key(weight.layer, setting), { weight, setting });
    }
    const bytes = [...needed.values()].reduce((sum, { weight }) => sum + weight.layer.params * 4, 0);
    if (bytes > WEIGHT_CACHE_BYTES) return cache;
    this.progress('quantizing weights');
    for (const { weight, setting } of needed.values()) {
      this.checkAbort();
      await cache.get(weight.layer, weight.elemType, setting);
    }
    return cache;
  }

  private async sweep(plan: SweepPlan): Promise<void> {
    const { sweepInst, units, cells } = plan;
    const run = this.record;
    const feeds = this.modelFeeds(plan);
    const stats = await this.calibrate(plan, feeds);
    run.ranges = [...stats].flatMap(([t, perPoint]) =>
      plan.rangeSources
        .filter((source) => source.points.length > 0)
        .map((source) => ({
          layer: source.name,
          timestep: run.plan.timesteps[t],
          min: Math.min(...source.points.map((p) => perPoint[p.index].min)),
          max: Math.max(...source.points.map((p) => perPoint[p.index].max)),
        })),
    );
    run.referenceForwardMs = await this.bareForwardMs(feeds.values().next().value?.[0]);

    const session = await this.createSession(encodeModel(sweepInst.model), 'instrumented model');
    try {
      const references = await this.references(session, sweepInst, feeds);
      const keys = Object.keys(references.values().next().value?.[0] ?? {});
      const firstOutput = session.outputNames.find((name) => keys.includes(name) && this.opened.summary.outputs.some((o) => o.name === name));
      if (cells.length > 0 && firstOutput === undefined) throw new ModelError(this.modelFile, 'the model has no floating-point output to compare');
      for (const unit of units) {
        if (unit.metricTensor && cells.length > 0 && !keys.includes(unit.metricTensor)) {
          throw settingsError(this.modelFile, `metric tensor ${JSON.stringify(unit.metricTensor)} is not a floating-point tensor`);
        }
      }
      const weightCache = await this.quantizeWeights(plan);
      this.setupMs = performance.now() - this.startedAt;
      run.timing = { setupMs: this.setupMs, setupRuns: this.setupRuns, sweepMs: 0, sweepRuns: 0 };
      this.emit({ kind: 'started', run: { ...run, rows: [], ranges: [...run.ranges] } });
      this.emit({ kind: 'rows', rows: [], ranges: [...run.ranges] });
      this.save();
      await this.runCells(plan, session, weightCache, { feeds, stats, references, keys, firstOutput: firstOutput as string });
    } finally {
      await session.release();
    }
  }

  /** Every cell of the slice: quantize the unit, run every sample, compare; rows batched, the record saved. */
  private async runCells(
    plan: SweepPlan,
    session: ort.InferenceSession,
    weightCache: WeightCache,
    data: { feeds: Map<number, Feeds[]>; stats: Map<number, PointRange[]>; references: Map<number, Outputs[]>; keys: string[]; firstOutput: string },
  ): Promise<void> {
    const { sweepInst, units, unitPoints, unitWeights, cells } = plan;
    const { settings, record: run } = this;
    const sweepStart = performance.now();
    let pending: SensitivityRow[] = [];
    let lastFlush = sweepStart;
    const flush = (force: boolean) => {
      const now = performance.now();
      if (!force && now - lastFlush < ROWS_EVERY_MS) return;
      lastFlush = now;
      // Saved before the rows are reported: whoever sees a row can find it on disk.
      if (force || this.saveDue(now)) this.save();
      if (pending.length > 0) this.emit({ kind: 'rows', rows: pending, ranges: [] });
      pending = [];
      const done = run.rows.length;
      const etaMs = done > 0 ? ((now - sweepStart) / done) * (cells.length - done) : null;
      this.emit({ kind: 'progress', done, total: cells.length, etaMs });
    };
    let currentUnit = -1;
    const offControl = ortTensors(instrumentFeeds(sweepInst));
    try {
      for (const cell of cells) {
        const setting = settings.settings[cell.setting];
        if (cell.unit !== currentUnit) {
          currentUnit = cell.unit;
          weightCache.keepOnly(unitWeights[cell.unit].map((w) => w.layer.weight));
        }
        const config: { weights: Map<string, WeightOverride>; activations: Map<number, ActivationQuant> } = { weights: new Map(), activations: new Map() };
        if (setting.weight) {
          for (const { layer, elemType } of unitWeights[cell.unit]) config.weights.set(layer.weight, await weightCache.get(layer, elemType, setting.weight));
        }
        if (setting.activation) {
          const perPoint = data.stats.get(cell.timestep) as PointRange[];
          for (const { sweep, calib } of unitPoints[cell.unit]) {
            config.activations.set(sweep.index, this.activationQuant(setting, perPoint[calib.index], calib.tensor, run.plan.timesteps[cell.timestep]));
          }
        }
        const control = ortTensors(instrumentFeeds(sweepInst, config), offControl);
        const sums = new Map(data.keys.map((key) => [key, new MetricSums()]));
        const reference = data.references.get(cell.timestep) as Outputs[];
        const samples = data.feeds.get(cell.timestep) as Feeds[];
        for (let s = 0; s < samples.length; s++) {
          this.checkAbort();
          const out = await session.run({ ...samples[s], ...control });
          this.sweepRuns++;
          for (const [key, sum] of sums) sum.add(reference[s][key], floatOutput(out[key]) as ArrayLike<number>);
        }
        const metrics: Record<string, Metrics> = {};
        for (const [key, sum] of sums) metrics[key] = sum.result();
        const unit = units[cell.unit];
        const row: SensitivityRow = {
          unit: unit.name,
          setting: setting.id,
          timestep: run.plan.timesteps[cell.timestep],
          metrics,
          primary: metrics[unit.metricTensor ?? data.firstOutput],
        };
        run.rows.push(row);
        pending.push(row);
        flush(false);
      }
    } finally {
      this.sweepMs = performance.now() - sweepStart;
      run.timing = { setupMs: this.setupMs ?? 0, setupRuns: this.setupRuns, sweepMs: this.sweepMs, sweepRuns: this.sweepRuns };
      flush(true);
    }
  }

  private activationQuant(setting: QuantSetting, stats: PointRange, tensor: string, timestep: number | null): ActivationQuant {
    const a = setting.activation as NonNullable<QuantSetting['activation']>;
    if (a.mode === 'dynamic-token') return { mode: 'dynamic', bits: a.bits, symmetric: a.symmetric };
    const at = timestep === null ? '' : ` at timestep ${timestep}`;
    const { min, max } = calibratedRange(stats, a, this.modelFile, `${JSON.stringify(tensor)}${at}`);
    return { mode: 'static', bits: a.bits, symmetric: a.symmetric, ...staticQuantParams(min, max, a.bits, a.symmetric) };
  }
}

/** Quantized weight copies per layer × weight setting, reused across timesteps and units while they fit the budget. */
class WeightCache {
  private readonly copies = new Map<string, { weight: string; data: WeightOverride }>();
  private bytes = 0;

  constructor(private readonly opened: OpenedModel) {}

  /** Drops the copies of other weights once the cache is over its budget. */
  keepOnly(weights: string[]): void {
    if (this.bytes <= WEIGHT_CACHE_BYTES) return;
    const keep = new Set(weights);
    for (const [key, copy] of this.copies) {
      if (keep.has(copy.weight)) continue;
      this.bytes -= copy.data.byteLength;
      this.copies.delete(key);
    }
  }

  static key(layer: LayerInfo, setting: NonNullable<QuantSetting['weight']>): string {
    const g = setting.granularity;
    return `${layer.weight}\u0000${setting.bits}\u0000${g.kind === 'group' ? g.size : 0}\u0000${isWeightSymmetric(setting)}`;
  }

  async get(layer: LayerInfo, elemType: number, setting: NonNullable<QuantSetting['weight']>): Promise<WeightOverride> {
    const g = setting.granularity;
    const key = WeightCache.key(layer, setting);
    const known = this.copies.get(key);
    if (known) return known.data;
    const quantized = quantizeWeight(await this.opened.readTensorF32(layer.weight), layer.shape, layer.channelAxis, setting.bits, g, isWeightSymmetric(setting));
    const data = weightOverride(quantized, elemType);
    this.copies.set(key, { weight: layer.weight, data });
    this.bytes += data.byteLength;
    return data;
  }
}
