// The sensitivity panel's data: a run's rows indexed by (unit, setting, timestep), the matrices the heatmaps draw,
// the ranking the bars show and the activation ranges. Pure (no DOM), so it is unit-tested in node.
import type { ActivationRange, AnalysisRun, Metrics, SensitivityRow } from '../../extension/protocol/analysis';

export type MetricKey = keyof Metrics;

export interface MetricInfo {
  key: MetricKey;
  label: string;
  /** Axis and tooltip name of what the bars plot. */
  barLabel: string;
}

export const METRICS: readonly MetricInfo[] = [
  { key: 'sqnrDb', label: 'SQNR (dB)', barLabel: 'SQNR (dB)' },
  { key: 'mse', label: 'MSE', barLabel: 'MSE' },
  { key: 'cosine', label: 'cosine similarity', barLabel: '1 − cosine' },
];

export function isMetricKey(key: unknown): key is MetricKey {
  return METRICS.some((m) => m.key === key);
}

/** The unit that quantizes every layer at once. */
export const ALL_UNIT = '*';

/** How a unit is written on axes and in tooltips. */
export function unitLabel(unit: string): string {
  return unit === ALL_UNIT ? 'all layers at once' : unit;
}

/** The floor used for log scales, so an exact reproduction (MSE 0, cosine 1) stays finite. */
const LOG_FLOOR = 1e-12;

/**
 * How bad a metric value is, on a scale where larger is worse and equal steps look equally different: −SQNR (dB is
 * already logarithmic), log10 MSE, log10 (1 − cosine). NaN for a missing value (JSON turns NaN into null).
 */
export function badness(metric: MetricKey, value: number | null | undefined): number {
  if (value === null || value === undefined || Number.isNaN(value)) return NaN;
  switch (metric) {
    case 'sqnrDb':
      return -value;
    case 'mse':
      return Math.log10(Math.max(value, LOG_FLOOR));
    case 'cosine':
      return Math.log10(Math.max(1 - value, LOG_FLOOR));
  }
}

/** The metric value a badness stands for (inverse of badness, for the color legend's ends). */
export function fromBadness(metric: MetricKey, bad: number): number {
  switch (metric) {
    case 'sqnrDb':
      return -bad;
    case 'mse':
      return 10 ** bad;
    case 'cosine':
      return 1 - 10 ** bad;
  }
}

/** What the bars plot for a metric: the value itself, except cosine, shown as the distance 1 − cosine. */
export function barValue(metric: MetricKey, value: number): number {
  return metric === 'cosine' ? 1 - value : value;
}

/** A layers × columns grid of metric values (NaN where no row has arrived), row-major. */
export interface Matrix {
  rows: readonly string[];
  columns: readonly string[];
  values: Float64Array;
  /** Cells with a value. */
  filled: number;
}

/** Which timestep the settings heatmap and the bars look at: one (by index in the plan) or the mean over all. */
export type TimestepChoice = number | 'mean';

export function timestepLabel(t: number | null): string {
  return t === null ? '—' : String(t);
}

export class RunData {
  readonly units: readonly string[];
  readonly settings: readonly string[];
  readonly timesteps: readonly (number | null)[];
  /** Every row, by unit × setting × timestep index; undefined until it arrives. */
  private readonly cells: (SensitivityRow | undefined)[];
  private readonly unitIndex = new Map<string, number>();
  private readonly settingIndex = new Map<string, number>();
  private readonly timestepIndex = new Map<string, number>();
  /** layer → activation range per timestep index. */
  private readonly ranges = new Map<string, (ActivationRange | undefined)[]>();
  /** Rows received, including any outside the plan (which are not drawn). */
  received = 0;
  /** Rows whose unit, setting or timestep is not in the plan. */
  outsidePlan = 0;

  constructor(run: Pick<AnalysisRun, 'plan'>) {
    this.units = run.plan.units;
    this.settings = run.plan.settings;
    this.timesteps = run.plan.timesteps.length > 0 ? run.plan.timesteps : [null];
    this.units.forEach((u, i) => this.unitIndex.has(u) || this.unitIndex.set(u, i));
    this.settings.forEach((s, i) => this.settingIndex.has(s) || this.settingIndex.set(s, i));
    this.timesteps.forEach((t, i) => this.timestepIndex.set(timestepKey(t), i));
    this.cells = new Array(this.units.length * this.settings.length * this.timesteps.length);
  }

  /** Rows in the plan that have arrived. */
  get rowCount(): number {
    return this.received - this.outsidePlan;
  }

  add(rows: readonly SensitivityRow[], ranges: readonly ActivationRange[] = []): void {
    for (const row of rows) {
      this.received++;
      const u = this.unitIndex.get(row.unit);
      const s = this.settingIndex.get(row.setting);
      const t = this.timestepIndex.get(timestepKey(row.timestep));
      if (u === undefined || s === undefined || t === undefined) {
        this.outsidePlan++;
        continue;
      }
      const at = this.index(u, s, t);
      // A repeated cell (e.g. a replayed batch) replaces the old one and is counted once.
      if (this.cells[at]) this.received--;
      this.cells[at] = row;
    }
    for (const range of ranges) {
      const t = this.timestepIndex.get(timestepKey(range.timestep));
      if (t === undefined) continue;
      let perTimestep = this.ranges.get(range.layer);
      if (!perTimestep) this.ranges.set(range.layer, (perTimestep = new Array(this.timesteps.length)));
      perTimestep[t] = range;
    }
  }

  row(unit: string, setting: string, timestep: number | null): SensitivityRow | undefined {
    const u = this.unitIndex.get(unit);
    const s = this.settingIndex.get(setting);
    const t = this.timestepIndex.get(timestepKey(timestep));
    return u === undefined || s === undefined || t === undefined ? undefined : this.cells[this.index(u, s, t)];
  }

  /** Units × timesteps for one setting. */
  byTimestep(setting: string, metric: MetricKey): Matrix {
    const s = this.settingIndex.get(setting);
    const columns = this.timesteps.map(timestepLabel);
    const values = new Float64Array(this.units.length * columns.length).fill(NaN);
    let filled = 0;
    if (s !== undefined) {
      for (let u = 0; u < this.units.length; u++) {
        for (let t = 0; t < this.timesteps.length; t++) {
          const v = metricOf(this.cells[this.index(u, s, t)], metric);
          values[u * columns.length + t] = v;
          if (!Number.isNaN(v)) filled++;
        }
      }
    }
    return { rows: this.units, columns, values, filled };
  }

  /** Units × settings at one timestep, or averaged over the timesteps that have arrived. */
  bySetting(choice: TimestepChoice, metric: MetricKey): Matrix {
    const columns = this.settings;
    const values = new Float64Array(this.units.length * columns.length).fill(NaN);
    let filled = 0;
    for (let u = 0; u < this.units.length; u++) {
      for (let s = 0; s < columns.length; s++) {
        const v = this.valueAt(u, s, choice, metric);
        values[u * columns.length + s] = v;
        if (!Number.isNaN(v)) filled++;
      }
    }
    return { rows: this.units, columns, values, filled };
  }

  /** The `limit` layers (not the all-at-once unit) whose metric is worst for `setting`, worst first. */
  mostSensitive(setting: string, choice: TimestepChoice, metric: MetricKey, limit: number): { unit: string; value: number }[] {
    const s = this.settingIndex.get(setting);
    if (s === undefined) return [];
    const ranked: { unit: string; value: number; bad: number }[] = [];
    this.units.forEach((unit, u) => {
      if (unit === ALL_UNIT) return;
      const value = this.valueAt(u, s, choice, metric);
      if (!Number.isNaN(value)) ranked.push({ unit, value, bad: badness(metric, value) });
    });
    ranked.sort((a, b) => b.bad - a.bad || a.unit.localeCompare(b.unit));
    return ranked.slice(0, limit).map(({ unit, value }) => ({ unit, value }));
  }

  /** A layer's activation range per timestep of the plan (undefined where none was recorded). */
  rangesOf(layer: string): readonly (ActivationRange | undefined)[] {
    return this.ranges.get(layer) ?? new Array(this.timesteps.length);
  }

  hasRanges(layer: string): boolean {
    return this.ranges.has(layer);
  }

  private valueAt(u: number, s: number, choice: TimestepChoice, metric: MetricKey): number {
    if (choice !== 'mean') return metricOf(this.cells[this.index(u, s, choice)], metric);
    let sum = 0;
    let count = 0;
    for (let t = 0; t < this.timesteps.length; t++) {
      const v = metricOf(this.cells[this.index(u, s, t)], metric);
      if (Number.isNaN(v)) continue;
      sum += v;
      count++;
    }
    return count > 0 ? sum / count : NaN;
  }

  private index(u: number, s: number, t: number): number {
    return (u * this.settings.length + s) * this.timesteps.length + t;
  }
}

function timestepKey(t: number | null | undefined): string {
  return t === null || t === undefined ? 'none' : String(t);
}

function metricOf(row: SensitivityRow | undefined, metric: MetricKey): number {
  const v = row?.primary?.[metric];
  return typeof v === 'number' ? v : NaN;
}

/**
 * The badness range the colors span: over the matrix's layers (the all-at-once unit is left out, since it is
 * usually far worse than any one layer and would wash out the rest). Undefined when nothing has a value yet.
 */
export function badnessRange(matrix: Matrix, metric: MetricKey): { lo: number; hi: number } | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  const cols = matrix.columns.length;
  matrix.rows.forEach((unit, u) => {
    if (unit === ALL_UNIT && matrix.rows.length > 1) return;
    for (let c = 0; c < cols; c++) {
      const b = badness(metric, matrix.values[u * cols + c]);
      if (!Number.isFinite(b)) continue;
      if (b < lo) lo = b;
      if (b > hi) hi = b;
    }
  });
  return lo <= hi ? { lo, hi } : undefined;
}

/** Position of a badness on the color scale: 0 = least sensitive shown, 1 = most (values outside are clamped). */
export function colorPosition(bad: number, range: { lo: number; hi: number }): number {
  if (range.hi <= range.lo) return 0.5;
  return Math.min(1, Math.max(0, (bad - range.lo) / (range.hi - range.lo)));
}

/**
 * Row order for "most sensitive first": the all-at-once unit on top, then rows by their mean badness over the
 * matrix's columns, worst first; rows with no value yet keep model order at the end.
 */
export function sensitivityOrder(matrix: Matrix, metric: MetricKey): number[] {
  const cols = matrix.columns.length;
  const score = matrix.rows.map((_, u) => {
    let sum = 0;
    let count = 0;
    for (let c = 0; c < cols; c++) {
      const b = badness(metric, matrix.values[u * cols + c]);
      if (!Number.isFinite(b)) continue;
      sum += b;
      count++;
    }
    return count > 0 ? sum / count : NaN;
  });
  const rank = (u: number) => (matrix.rows[u] === ALL_UNIT ? 0 : Number.isNaN(score[u]!) ? 2 : 1);
  return matrix.rows
    .map((_, u) => u)
    .sort((a, b) => rank(a) - rank(b) || (rank(a) === 1 ? score[b]! - score[a]! : 0) || a - b);
}
