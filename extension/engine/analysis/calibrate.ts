// Calibrating static activation scales: the min and max (and percentiles) of every point of a model instrumented with
// range (and tensor) outputs, over the calibration samples, every switch off; and the range a static setting takes
// from them. The sensitivity sweep, the allocation meter and the QDQ export calibrate alike, so predicted, measured
// and exported scales agree.
import type * as ort from 'onnxruntime-node';
import type { ActivationMode } from '../../protocol/analysis';
import { ModelError } from '../errors';
import { instrumentFeeds, type InstrumentedModel } from '../instrument/instrument';
import { concatFloat32, floatOutput, ortTensors, quantile, type OrtFeeds } from '../ortSession';
import { DEFAULT_PERCENTILE } from './settings';

/** Calibrated statistics of one point over the samples. */
export interface PointRange {
  min: number;
  max: number;
  /** percentile → the range it gives: ±|x|_p (symmetric) and [x_(100−p), x_p] (asymmetric). */
  percentiles: Map<number, { abs: number; low: number; high: number }>;
}

/**
 * Runs every sample through `session` (made from `inst`, instrumented with range outputs, and with tensor outputs when
 * `percentiles` is not empty) with every switch off, and returns each point's range, by point index. `beforeRun` is
 * called before each run (to check for a cancel, to count runs).
 */
export async function calibratePoints(
  session: ort.InferenceSession,
  inst: InstrumentedModel,
  samples: readonly OrtFeeds[],
  percentiles: readonly number[],
  beforeRun: () => void = () => {},
): Promise<PointRange[]> {
  const off = ortTensors(instrumentFeeds(inst));
  const ranges: PointRange[] = inst.points.map(() => ({ min: Infinity, max: -Infinity, percentiles: new Map() }));
  const collected: Float32Array[][] = inst.points.map(() => []);
  for (const sample of samples) {
    beforeRun();
    const out = await session.run({ ...sample, ...off });
    for (const point of inst.points) {
      const range = ranges[point.index];
      const outputs = point.rangeOutputs as { min: string; max: string };
      range.min = Math.min(range.min, Number(floatOutput(out[outputs.min])?.[0]));
      range.max = Math.max(range.max, Number(floatOutput(out[outputs.max])?.[0]));
      // Copied: the values are kept past the next run.
      if (percentiles.length > 0 && point.tensorOutput) collected[point.index].push(Float32Array.from(floatOutput(out[point.tensorOutput]) ?? []));
    }
  }
  for (const point of percentiles.length > 0 ? inst.points : []) {
    const values = concatFloat32(collected[point.index]);
    const sorted = values.slice().sort();
    const magnitudes = values.map(Math.abs).sort();
    for (const p of percentiles) {
      ranges[point.index].percentiles.set(p, { abs: quantile(magnitudes, p / 100), low: quantile(sorted, 1 - p / 100), high: quantile(sorted, p / 100) });
    }
  }
  return ranges;
}

/**
 * The range a static setting quantizes to: the calibrated min and max, or with 'static-percentile' the percentile's
 * range. ModelError naming `file` when it is not finite (`what` names the tensor, and the timestep if any).
 */
export function calibratedRange(
  range: PointRange,
  activation: { mode: ActivationMode; symmetric: boolean; percentile?: number },
  file: string,
  what: string,
): { min: number; max: number } {
  let { min, max } = range;
  const p = activation.mode === 'static-percentile' ? range.percentiles.get(activation.percentile ?? DEFAULT_PERCENTILE) : undefined;
  if (p) [min, max] = activation.symmetric ? [-p.abs, p.abs] : [p.low, p.high];
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    throw new ModelError(file, `the calibrated range of ${what} is not finite ([${min}, ${max}]): static scales need finite activations`);
  }
  return { min, max };
}
