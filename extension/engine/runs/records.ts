// Analysis run records on disk: written atomically (a crash leaves the previous complete file), read back with a
// schema check, exported as CSV, and merged from the shards of one sweep.
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { ActivationRange, AnalysisRun, AnalysisSettings, Metrics, SensitivityRow } from '../../protocol/analysis';
import { isWeightSymmetric } from '../analysis/settings';
import { ModelError } from '../errors';
import { writeAtomically } from '../export/allocation';
import { fileAccessError } from '../model/tensor';
import { runSchemaProblem } from './schema';

/** A fresh run id: UTC time to the second and 6 random hex digits. */
export function newRunId(date = new Date()): string {
  return `${date.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '')}-${randomBytes(3).toString('hex')}`;
}

let version: string | undefined;

/** QuantLens's version from its package.json, found above this file (out/… in development, dist/ when bundled). */
export function quantlensVersion(): string {
  if (version !== undefined) return version;
  version = 'unknown';
  for (let dir = __dirname, depth = 0; depth < 8; depth++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'quantlens' && typeof pkg.version === 'string') return (version = pkg.version);
    } catch {
      // no package.json here: look one folder up
    }
  }
  return version;
}

/** Writes the record beside its final name, then renames it into place: readers see the old file or the new one. */
export function saveRun(file: string, run: AnalysisRun): void {
  writeAtomically(path.resolve(file), JSON.stringify(run), 'run record');
}

/** Checks that a parsed value is a run record; ModelError naming `file` otherwise. */
export function validateRun(value: unknown, file: string): AnalysisRun {
  const problem = runSchemaProblem(value);
  if (problem !== undefined) throw new ModelError(file, `not a valid QuantLens analysis record (${problem})`);
  return value as AnalysisRun;
}

/** Reads and checks a run record. Metric values stored as null (not finite) come back as NaN. */
export async function loadRun(file: string): Promise<AnalysisRun> {
  const resolved = path.resolve(file);
  let text: string;
  try {
    const stat = await fs.promises.stat(resolved);
    if (!stat.isFile()) throw new ModelError(resolved, 'is not a regular file');
    text = await fs.promises.readFile(resolved, 'utf8');
  } catch (err) {
    throw err instanceof ModelError ? err : fileAccessError(resolved, err, 'run record');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ModelError(resolved, `not a valid QuantLens analysis record (not JSON: ${err instanceof Error ? err.message : String(err)})`);
  }
  const run = validateRun(value, resolved);
  for (const row of run.rows) {
    restoreNaN(row.primary);
    for (const m of Object.values(row.metrics)) restoreNaN(m);
  }
  for (const range of run.ranges) {
    if (range.min === null) range.min = NaN;
    if (range.max === null) range.max = NaN;
  }
  return run;
}

function restoreNaN(m: Metrics): void {
  for (const key of ['mse', 'sqnrDb', 'cosine'] as const) if (m[key] === null) m[key] = NaN;
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

/** A CSV field: quoted when needed; text that a spreadsheet would run as a formula is prefixed with '. */
function csvText(text: string): string {
  const safe = /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

function csvNumber(value: number | null): string {
  return value === null || !Number.isFinite(value) ? '' : String(value);
}

/**
 * One line per row: unit, setting, timestep, the primary metric (mse, sqnr_db, cosine), then the three metrics of
 * every output and metric tensor (`<name> mse`, …). Empty cells for missing or non-finite values.
 */
export function runToCsv(run: AnalysisRun): string {
  const keys = unionInOrder(run.rows.map((row) => Object.keys(row.metrics)));
  const header = ['unit', 'setting', 'timestep', 'mse', 'sqnr_db', 'cosine'];
  for (const key of keys) header.push(`${key} mse`, `${key} sqnr_db`, `${key} cosine`);
  const lines = [header.map(csvText).join(',')];
  const metricCells = (m: Metrics | undefined) => (m ? [csvNumber(m.mse), csvNumber(m.sqnrDb), csvNumber(m.cosine)] : ['', '', '']);
  for (const row of run.rows) {
    const cells = [csvText(row.unit), csvText(row.setting), row.timestep === null ? '' : csvNumber(row.timestep), ...metricCells(row.primary)];
    for (const key of keys) cells.push(...metricCells(Object.hasOwn(row.metrics, key) ? row.metrics[key] : undefined));
    lines.push(cells.join(','));
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------------------------
// merging shards

/**
 * Settings as compared across shards: the model by file name (shards may mount it at different paths), weight
 * symmetry spelled out (a record from before the flag existed is symmetric).
 */
function comparable(settings: AnalysisSettings): Record<string, string> {
  const quantSettings = settings.settings.map((setting) => (setting.weight ? { ...setting, weight: { ...setting.weight, symmetric: isWeightSymmetric(setting.weight) } } : setting));
  const entries = Object.entries({ ...settings, model: path.basename(settings.model), settings: quantSettings });
  return Object.fromEntries(entries.map(([key, value]) => [key, canonicalJson(value)]));
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function rowKey(unit: string, setting: string, timestep: number | null): string {
  return `${unit}\u0000${setting}\u0000${timestep === null ? 'null' : String(timestep)}`;
}

function unionInOrder<T>(lists: readonly (readonly T[])[], key: (value: T) => string = String): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const list of lists) {
    for (const value of list) {
      const k = key(value);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(value);
      }
    }
  }
  return out;
}

/**
 * Combines records of one sweep (usually its shards) into one: the same settings and model are required; rows and
 * ranges are united without duplicates, in plan order. The result is complete only when every slice of the plan is
 * present and complete; otherwise it is failed (a slice failed) or cancelled, and its message says which are missing.
 * `files` name the records in errors.
 */
export function mergeRuns(runs: readonly AnalysisRun[], files: readonly string[] = runs.map((_, i) => `record ${i + 1}`)): AnalysisRun {
  if (runs.length === 0) throw new RangeError('nothing to merge');
  const first = runs[0];
  const base = comparable(first.settings);
  runs.forEach((run, i) => {
    const name = files[i] ?? `record ${i + 1}`;
    const mine = comparable(run.settings);
    const differing = Object.keys({ ...base, ...mine }).filter((k) => base[k] !== mine[k]);
    if (differing.length > 0) {
      throw new ModelError(name, `cannot be merged with ${path.basename(files[0] ?? 'record 1')}: its settings differ (${differing.join(', ')})`);
    }
    if (run.model.fileName !== first.model.fileName || run.model.bytes !== first.model.bytes) {
      throw new ModelError(name, `cannot be merged with ${path.basename(files[0] ?? 'record 1')}: it analyzed another model file (${run.model.fileName}, ${run.model.bytes} bytes)`);
    }
  });
  const counts = new Set(runs.filter((r) => r.plan.shard).map((r) => (r.plan.shard as { count: number }).count));
  if (counts.size > 1) {
    throw new ModelError(files[runs.findIndex((r) => r.plan.shard && r.plan.shard.count !== [...counts][0])] ?? 'record', `shard counts differ (${[...counts].join(' and ')})`);
  }

  // Which slices are there, and how each ended.
  const whole = runs.find((r) => !r.plan.shard);
  const count = whole ? 1 : [...counts][0];
  const slices = new Map<number, AnalysisRun>();
  // With an unsharded record among them, the shards only add rows: the unsharded records decide the status.
  for (const run of whole ? runs.filter((r) => !r.plan.shard) : runs) {
    const index = run.plan.shard?.index ?? 0;
    const known = slices.get(index);
    // A complete copy of a slice wins over a partial one.
    if (!known || (known.status !== 'complete' && run.status === 'complete')) slices.set(index, run);
  }
  const problems: string[] = [];
  for (let index = 0; index < count; index++) {
    const slice = slices.get(index);
    const label = count > 1 ? `shard ${index}/${count}` : 'the run';
    if (!slice) problems.push(`${label} is missing`);
    else if (slice.status !== 'complete') problems.push(`${label} is ${slice.status === 'running' ? 'unfinished (its process stopped)' : slice.status}`);
  }
  const status: AnalysisRun['status'] =
    problems.length === 0 ? 'complete' : [...slices.values()].some((r) => r.status === 'failed') ? 'failed' : 'cancelled';

  const plan = {
    units: unionInOrder(runs.map((r) => r.plan.units)),
    settings: unionInOrder(runs.map((r) => r.plan.settings)),
    timesteps: unionInOrder(runs.map((r) => r.plan.timesteps), (t) => String(t)),
    total: [...slices.values()].reduce((sum, r) => sum + r.plan.total, 0),
  };
  const unitIndex = new Map(plan.units.map((u, i) => [u, i]));
  const settingIndex = new Map(plan.settings.map((s, i) => [s, i]));
  const timestepIndex = new Map(plan.timesteps.map((t, i) => [String(t), i]));
  const rows = unionInOrder<SensitivityRow>(runs.map((r) => r.rows), (row) => rowKey(row.unit, row.setting, row.timestep));
  const order = (row: SensitivityRow) => [unitIndex.get(row.unit) ?? 0, settingIndex.get(row.setting) ?? 0, timestepIndex.get(String(row.timestep)) ?? 0];
  rows.sort((a, b) => {
    const [x, y] = [order(a), order(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  const ranges = unionInOrder<ActivationRange>(runs.map((r) => r.ranges), (r) => `${r.layer}\u0000${String(r.timestep)}`);
  const warnings = unionInOrder(runs.map((r) => r.warnings ?? []));
  const timed = runs.filter((r) => r.timing);
  const createdAt = runs.map((r) => r.createdAt).sort()[0];
  return {
    schema: first.schema,
    id: newRunId(),
    createdAt,
    status,
    ...(problems.length > 0 ? { message: `merged from ${runs.length} records; ${problems.join('; ')}` } : {}),
    settings: first.settings,
    environment: first.environment,
    model: first.model,
    plan,
    referenceForwardMs: first.referenceForwardMs,
    ...(timed.length > 0
      ? {
          timing: {
            setupMs: timed.reduce((s, r) => s + (r.timing?.setupMs ?? 0), 0),
            setupRuns: timed.reduce((s, r) => s + (r.timing?.setupRuns ?? 0), 0),
            sweepMs: timed.reduce((s, r) => s + (r.timing?.sweepMs ?? 0), 0),
            sweepRuns: timed.reduce((s, r) => s + (r.timing?.sweepRuns ?? 0), 0),
          },
        }
      : {}),
    ...(warnings.length > 0 ? { warnings } : {}),
    rows,
    ranges,
  };
}
