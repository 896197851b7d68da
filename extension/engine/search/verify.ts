// Measuring an allocation for real: every allocated layer quantized at once — weights per channel (or group) at their
// bits, activations at theirs with the run's activation mode — on the calibration samples, at each timestep of each
// range, against the full-precision outputs. One instrumented onnxruntime session (instrument/instrument.ts) serves
// every allocation measured, so the refinement and the uniform baselines cost forward runs only.
//
// The measured error is the search's own unit, so predicted and measured compare directly: per timestep the relative
// noise power Σ(y−ŷ)²/Σy² of the primary output (sums over the samples, as sensitivity rows have them), averaged over a
// range's timesteps (problemFromRun's default 'mean'), and summed over ranges (as the allocation file's predicted
// total is). Its SQNR is −10·log10 of it; MSE and cosine are pooled over every run.
import * as path from 'path';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type { AllocationFile, AllocationGranularity, AllocationRange } from '../../protocol/allocation';
import { FLOAT_WEIGHT_BITS } from '../../protocol/allocation';
import type { Metrics } from '../../protocol/analysis';
import type { LayerInfo } from '../../protocol/records';
import { calibratedRange, calibratePoints, type PointRange } from '../analysis/calibrate';
import { MetricSums } from '../analysis/metrics';
import { DEFAULT_PERCENTILE } from '../analysis/settings';
import { graphIntRanges, loadCalibration, withTimestep, type CalibrationSet, type CalibrationSpec } from '../calib';
import { toOrtFeeds } from '../calib/ortFeeds';
import { CancelledError, ModelError } from '../errors';
import { allocationLayerNames, allocationWeightSymmetric, quantGranularity } from '../export/allocation';
import {
  FEEDABLE_WEIGHT_DTYPES,
  encodeModel,
  instrumentFeeds,
  instrumentModel,
  staticQuantParams,
  weightOverride,
  type ActivationPointSpec,
  type ActivationQuant,
  type InstrumentedModel,
  type InstrumentedPoint,
  type WeightOverride,
} from '../instrument/instrument';
import { layerNodes, layerPoints, placedPoints, pointKey } from '../instrument/plan';
import { createSession, floatOutput, ortTensors } from '../ortSession';
import { loadOnnxModel } from '../model/onnx';
import { openModel } from '../model/open';
import type { OpenedModel } from '../model/types';
import { quantizeWeight, sqnrFromEnergies } from '../quant/weightQuant';

/** A float output copied out of onnxruntime's buffer as float32 (kept across runs). */
function floatCopy(value: ort.OnnxValue | undefined): Float32Array | undefined {
  const data = floatOutput(value);
  return data && Float32Array.from(data);
}

/** How an allocation is measured: the calibration inputs and the quantizers the sensitivity run used. */
export interface MeasureSettings {
  /** With `timestep`, ranges whose timesteps are null are measured at every one of its values. */
  calibration: CalibrationSpec;
  activation: AllocationFile['activation'];
  /** Weight scales for layers whose allocation does not say. */
  granularity: AllocationGranularity;
  /** Every layer's weight quantizer: symmetric (the default) or asymmetric with zero points. */
  weightSymmetric?: boolean;
  executionProvider?: 'cpu' | 'cuda';
  threads?: number;
}

export interface MeasureProgress {
  done: number;
  total: number;
  message: string;
}

export interface MeasureOptions {
  signal?: AbortSignal;
  onProgress?: (progress: MeasureProgress) => void;
}

/** The part of an allocation range a measurement reads. */
export type MeasureRange = Pick<AllocationRange, 'timesteps' | 'layers'> & { label?: string };

export interface MeasuredMetrics {
  /** Relative noise power of the primary output: per timestep over the samples, mean over timesteps (sum over ranges). */
  error: number;
  /** −10·log10(error). */
  sqnrDb: number;
  /** Pooled over every run. */
  mse: number;
  cosine: number;
  /** Forward runs: samples × timesteps. */
  runs: number;
}

export interface MeasuredRange extends MeasuredMetrics {
  label: string;
  timesteps: (number | null)[];
  /** Per timestep, in the range's order. */
  perTimestep: { timestep: number | null; error: number }[];
}

export interface MeasuredAllocation extends MeasuredMetrics {
  /** The output the metrics are of. */
  output: string;
  ranges: MeasuredRange[];
}

/** Quantized weight copies kept between measurements; past this the cache starts over. */
const WEIGHT_CACHE_BYTES = 512 * 2 ** 20;

type Feeds = Record<string, ort.Tensor>;

interface MeteredLayer {
  layer: LayerInfo;
  /** Element type of the overridable weight, or undefined when its dtype cannot be fed. */
  elemType?: number;
  /** Its activation points in the instrumented model (and the calibration model), one per input tensor. */
  points: { sweep: InstrumentedPoint; calib?: InstrumentedPoint }[];
}

/** Per timestep (null: no timestep): the feeds, the reference outputs, and the calibrated ranges. */
interface TimestepData {
  feeds: Feeds[];
  references: Float32Array[];
  ranges?: PointRange[];
}

function granularityKey(granularity: AllocationGranularity): string {
  return granularity === 'channel' ? 'channel' : `group${granularity.group}`;
}

const quote = (text: string) => JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);

/** −10·log10 of a relative noise power, within the ±200 dB that SQNRs are reported in. */
export function noiseToSqnrDb(error: number): number {
  return sqnrFromEnergies(1, error);
}

/**
 * A model opened for measuring allocations: calibration loaded, one instrumented session, references and activation
 * ranges computed per timestep as they are first needed. Close it when done.
 */
export class AllocationMeter {
  private readonly timesteps = new Map<number | null, TimestepData>();
  private readonly weightCache = new Map<string, WeightOverride>();
  private weightCacheBytes = 0;
  private calibSession: ort.InferenceSession | undefined;

  private constructor(
    readonly modelFile: string,
    private readonly opened: OpenedModel,
    private readonly settings: MeasureSettings,
    private readonly calibration: CalibrationSet,
    private readonly layers: Map<string, MeteredLayer>,
    private readonly sweepInst: InstrumentedModel,
    private readonly session: ort.InferenceSession,
    private readonly calibInst: InstrumentedModel | undefined,
    /** The model output the metrics are of: its first floating-point output. */
    readonly output: string,
    /** Things that did not stop the measurement: points that could not be placed, weights that cannot be fed. */
    readonly warnings: string[],
  ) {}

  /**
   * Opens `modelPath` and instruments every quantizable layer's weight (and, with `activations`, the layers' input
   * activations). ModelError naming the file for models it cannot run.
   */
  static async open(modelPath: string, settings: MeasureSettings, options: { activations: boolean; signal?: AbortSignal }): Promise<AllocationMeter> {
    const opened = await openModel(modelPath);
    try {
      return await AllocationMeter.build(opened, settings, options);
    } catch (err) {
      await opened.close();
      throw err;
    }
  }

  private static async build(opened: OpenedModel, settings: MeasureSettings, options: { activations: boolean; signal?: AbortSignal }): Promise<AllocationMeter> {
    const summary = opened.summary;
    const modelFile = summary.path;
    if (summary.format !== 'onnx') throw new ModelError(modelFile, 'measuring an allocation runs ONNX models; a safetensors checkpoint has no graph to run');
    if (summary.externalDataFiles.length > 0) throw new ModelError(modelFile, 'measuring an allocation does not yet run models with external data files');
    const model = await loadOnnxModel(modelFile);
    const calibration = await loadCalibration(modelFile, summary.inputs, {
      ...settings.calibration,
      intRanges: graphIntRanges(model.graph as onnx.GraphProto, summary.inputs),
    });
    if (options.signal?.aborted) throw new CancelledError();
    const warnings = [...calibration.warnings];

    const graph = model.graph as onnx.GraphProto;
    const nodes = layerNodes(graph);
    const specsOf = new Map<string, ActivationPointSpec[]>();
    const allSpecs = new Map<string, ActivationPointSpec>();
    const names = allocationLayerNames(opened.layers);
    for (const [name, layer] of names) {
      const specs = layerPoints(layer.weight, nodes);
      specsOf.set(name, specs);
      for (const spec of specs) allSpecs.set(pointKey(spec), spec);
    }
    const feedable = [...new Set(opened.layers.filter((l) => FEEDABLE_WEIGHT_DTYPES.has(l.dtype)).map((l) => l.weight))];
    const specs = options.activations ? [...allSpecs.values()] : [];
    const file = { file: modelFile };
    const sweepInst = instrumentModel(model, { weights: feedable, activationPoints: specs }, file);
    const staticMode = settings.activation.mode !== 'dynamic-token';
    const calibInst =
      staticMode && specs.length > 0
        ? instrumentModel(model, { weights: [], activationPoints: specs, withRangeOutputs: true, withTensorOutputs: settings.activation.mode === 'static-percentile' }, file)
        : undefined;
    for (const { tensor, reason } of sweepInst.skipped) warnings.push(`no fake-quant point on ${quote(tensor)}: ${reason}`);
    const sweepPoints = placedPoints(specs, sweepInst);
    const calibPoints = calibInst ? placedPoints(specs, calibInst) : new Map<string, InstrumentedPoint>();
    const weightTypes = new Map(sweepInst.weights.map((w) => [w.weight, w.elemType]));
    const layers = new Map<string, MeteredLayer>();
    for (const [name, layer] of names) {
      const points = (specsOf.get(name) ?? []).flatMap((spec) => {
        const sweep = sweepPoints.get(pointKey(spec));
        const calib = calibPoints.get(pointKey(spec));
        return sweep ? [{ sweep, ...(calib ? { calib } : {}) }] : [];
      });
      const elemType = weightTypes.get(layer.weight);
      layers.set(name, { layer, ...(elemType !== undefined ? { elemType } : {}), points });
    }

    const session = await createSession(encodeModel(sweepInst.model), modelFile, 'instrumented model', settings);
    const output = session.outputNames.find((name) => summary.outputs.some((o) => o.name === name && ['F32', 'F16', 'F64'].includes(o.dtype)));
    if (output === undefined) {
      await session.release();
      throw new ModelError(modelFile, 'the model has no floating-point output to compare');
    }
    return new AllocationMeter(modelFile, opened, settings, calibration, layers, sweepInst, session, calibInst, output, warnings);
  }

  /** The model's quantizable layers, in file order. */
  get modelLayers(): readonly LayerInfo[] {
    return this.opened.layers;
  }

  /** The calibration samples each timestep is measured on. */
  get samples(): number {
    return this.calibration.samples.length;
  }

  /** Measures the ranges with every allocated layer quantized at once. */
  async measure(ranges: readonly MeasureRange[], options: MeasureOptions = {}): Promise<MeasuredAllocation> {
    if (ranges.length === 0) throw new ModelError(this.modelFile, 'the allocation has no ranges to measure');
    const plans = ranges.map((range, index) => ({ range, label: range.label ?? `range ${index + 1}`, timesteps: this.timestepsOf(range) }));
    for (const { range, label } of plans) this.checkLayers(range, label);
    const total = plans.reduce((sum, plan) => sum + plan.timesteps.length, 0) * this.calibration.samples.length;
    let done = 0;
    const overall = new MetricSums();
    const measured: MeasuredRange[] = [];
    for (const { range, label, timesteps } of plans) {
      const pooled = new MetricSums();
      const perTimestep: MeasuredRange['perTimestep'] = [];
      for (const timestep of timesteps) {
        const data = await this.timestepData(timestep, options.signal);
        const control = ortTensors(instrumentFeeds(this.sweepInst, await this.config(range, label, data)));
        const sums = new MetricSums();
        for (let s = 0; s < data.feeds.length; s++) {
          if (options.signal?.aborted) throw new CancelledError();
          options.onProgress?.({ done, total, message: `measuring ${label}` });
          const out = await this.session.run({ ...data.feeds[s], ...control });
          sums.add(data.references[s], floatCopy(out[this.output]) as Float32Array);
          done++;
        }
        perTimestep.push({ timestep, error: sums.relativeNoise() });
        pooled.addSums(sums);
      }
      overall.addSums(pooled);
      const error = perTimestep.reduce((sum, t) => sum + t.error, 0) / perTimestep.length;
      measured.push({ label, timesteps, perTimestep, ...this.summarize(error, pooled.result(), timesteps.length * this.calibration.samples.length) });
    }
    options.onProgress?.({ done, total, message: 'measured' });
    const error = measured.reduce((sum, range) => sum + range.error, 0);
    return { output: this.output, ranges: measured, ...this.summarize(error, overall.result(), done) };
  }

  async close(): Promise<void> {
    await this.session.release();
    await this.calibSession?.release();
    this.calibSession = undefined;
    await this.opened.close();
  }

  private summarize(error: number, pooled: Metrics, runs: number): MeasuredMetrics {
    // A non-finite output makes the measurement unusable; NaN says so (as sensitivity rows do).
    const finite = Number.isFinite(pooled.mse);
    return { error: finite ? error : NaN, sqnrDb: finite ? noiseToSqnrDb(error) : NaN, mse: pooled.mse, cosine: pooled.cosine, runs };
  }

  private timestepsOf(range: MeasureRange): (number | null)[] {
    if (range.timesteps !== null) return [...range.timesteps];
    return this.calibration.timestep ? [...this.calibration.timestep.values] : [null];
  }

  private checkLayers(range: MeasureRange, label: string): void {
    const unknown = Object.keys(range.layers).filter((name) => !this.layers.has(name));
    if (unknown.length > 0) {
      const listed = unknown.slice(0, 5).map(quote).join(', ') + (unknown.length > 5 ? ` and ${unknown.length - 5} more` : '');
      throw new ModelError(this.modelFile, `${label}: the allocation names layers ${path.basename(this.modelFile)} does not have: ${listed}`);
    }
  }

  /** The feeds that quantize every layer of the range as allocated, at one timestep. */
  private async config(range: MeasureRange, label: string, data: TimestepData): Promise<{ weights: Map<string, WeightOverride>; activations: Map<number, ActivationQuant> }> {
    const weights = new Map<string, WeightOverride>();
    const weightBits = new Map<string, string>();
    const activations = new Map<number, ActivationQuant>();
    for (const [name, allocated] of Object.entries(range.layers)) {
      const metered = this.layers.get(name) as MeteredLayer;
      const { layer } = metered;
      if (allocated.weightBits < FLOAT_WEIGHT_BITS) {
        if (metered.elemType === undefined) {
          throw new ModelError(this.modelFile, `${label}: layer ${quote(name)} has a ${layer.dtype} weight, which cannot be fed quantized`);
        }
        const granularity = allocated.granularity ?? this.settings.granularity;
        const key = `${allocated.weightBits}\u0000${granularityKey(granularity)}`;
        const earlier = weightBits.get(layer.weight);
        if (earlier !== undefined && earlier !== key) {
          throw new ModelError(this.modelFile, `${label}: layers sharing weight ${quote(layer.weight)} are allocated different weight bits`);
        }
        weightBits.set(layer.weight, key);
        weights.set(layer.weight, await this.quantizedWeight(layer, metered.elemType, allocated.weightBits, granularity));
      }
      if (allocated.activationBits !== null) {
        if (metered.points.length === 0) {
          throw new ModelError(this.modelFile, `${label}: layer ${quote(name)} has no activation point to quantize (was the meter opened for weights only?)`);
        }
        for (const point of metered.points) activations.set(point.sweep.index, this.activationQuant(allocated.activationBits, point, data, name));
      }
    }
    return { weights, activations };
  }

  private activationQuant(bits: number, point: MeteredLayer['points'][number], data: TimestepData, layer: string): ActivationQuant {
    const { mode, symmetric } = this.settings.activation;
    if (mode === 'dynamic-token') return { mode: 'dynamic', bits, symmetric };
    const range = point.calib && data.ranges ? data.ranges[point.calib.index] : undefined;
    if (!range) throw new ModelError(this.modelFile, `layer ${quote(layer)}: its input ${quote(point.sweep.tensor)} has no calibrated range`);
    const { min, max } = calibratedRange(range, this.settings.activation, this.modelFile, quote(point.sweep.tensor));
    return { mode: 'static', bits, symmetric, ...staticQuantParams(min, max, bits, symmetric) };
  }

  private async quantizedWeight(layer: LayerInfo, elemType: number, bits: number, granularity: AllocationGranularity): Promise<WeightOverride> {
    // The meter's settings (and so the symmetry) are fixed for its life: the key needs no symmetry.
    const key = `${layer.weight}\u0000${bits}\u0000${granularityKey(granularity)}`;
    const known = this.weightCache.get(key);
    if (known) return known;
    const symmetric = this.settings.weightSymmetric ?? true;
    const quantized = quantizeWeight(await this.opened.readTensorF32(layer.weight), layer.shape, layer.channelAxis, bits, quantGranularity(granularity), symmetric);
    const data = weightOverride(quantized, elemType);
    if (this.weightCacheBytes + data.byteLength > WEIGHT_CACHE_BYTES) {
      this.weightCache.clear();
      this.weightCacheBytes = 0;
    }
    this.weightCache.set(key, data);
    this.weightCacheBytes += data.byteLength;
    return data;
  }

  /** Feeds, reference outputs (every switch off) and calibrated ranges at one timestep, computed once. */
  private async timestepData(timestep: number | null, signal: AbortSignal | undefined): Promise<TimestepData> {
    const known = this.timesteps.get(timestep);
    if (known) return known;
    const input = this.calibration.timestep?.input;
    const inputInfo = input !== undefined ? this.opened.summary.inputs.find((i) => i.name === input) : undefined;
    if (timestep !== null && !inputInfo) throw new ModelError(this.modelFile, `the allocation has timesteps, but no timestep input was given for the calibration`);
    const feeds = this.calibration.samples.map((sample) => toOrtFeeds(timestep === null || !inputInfo ? sample : withTimestep(sample, inputInfo.name, timestep, inputInfo)));
    const off = ortTensors(instrumentFeeds(this.sweepInst));
    const references: Float32Array[] = [];
    for (const sample of feeds) {
      if (signal?.aborted) throw new CancelledError();
      references.push(floatCopy((await this.session.run({ ...sample, ...off }))[this.output]) as Float32Array);
    }
    const data: TimestepData = { feeds, references, ...(this.calibInst ? { ranges: await this.calibrate(feeds, signal) } : {}) };
    this.timesteps.set(timestep, data);
    return data;
  }

  /** Min, max (and the percentile) of every point over the samples, as the sensitivity runner calibrates them. */
  private async calibrate(feeds: Feeds[], signal: AbortSignal | undefined): Promise<PointRange[]> {
    const inst = this.calibInst as InstrumentedModel;
    this.calibSession ??= await createSession(encodeModel(inst.model), this.modelFile, 'model instrumented for calibration', this.settings);
    const { mode, percentile } = this.settings.activation;
    return calibratePoints(this.calibSession, inst, feeds, mode === 'static-percentile' ? [percentile ?? DEFAULT_PERCENTILE] : [], () => {
      if (signal?.aborted) throw new CancelledError();
    });
  }
}

/**
 * Measures one allocation on `modelPath`: an allocation file (its activation mode, weight granularity and weight
 * symmetry take the place of the settings'), or ranges of layer bits.
 */
export async function measureAllocation(
  modelPath: string,
  allocation: AllocationFile | readonly MeasureRange[],
  settings: MeasureSettings,
  options: MeasureOptions = {},
): Promise<MeasuredAllocation> {
  const ranges = 'ranges' in allocation ? allocation.ranges : allocation;
  if ('ranges' in allocation) {
    settings = { ...settings, activation: allocation.activation, granularity: allocation.weight.granularity, weightSymmetric: allocationWeightSymmetric(allocation) };
  }
  const activations = ranges.some((range) => Object.values(range.layers).some((layer) => layer.activationBits !== null));
  const meter = await AllocationMeter.open(modelPath, settings, { activations, ...(options.signal ? { signal: options.signal } : {}) });
  try {
    return await meter.measure(ranges, options);
  } finally {
    await meter.close();
  }
}
