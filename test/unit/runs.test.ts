// Run records: atomic saves, schema-checked loading with the file named in every refusal, CSV export (escaping
// hostile names), and merging shards (settings must agree; status complete only when every slice is).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { isWeightSymmetric } from '../../extension/engine/analysis/settings';
import { ModelError } from '../../extension/engine/errors';
import { loadRun, mergeRuns, runToCsv, saveRun } from '../../extension/engine/runs/records';
import type { AnalysisRun, SensitivityRow } from '../../extension/protocol/analysis';

let dir: string;
before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-runs-'))));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function row(unit: string, setting: string, timestep: number | null, sqnrDb: number): SensitivityRow {
  const metrics = { mse: 10 ** (-sqnrDb / 10), sqnrDb, cosine: 1 - 10 ** (-sqnrDb / 10) / 2 };
  return { unit, setting, timestep, metrics: { out: metrics }, primary: metrics };
}

/** A record of units a, b, "*" × W4 × timesteps 999, 0 (6 cells), or one shard's slice (every count-th cell). */
function record(shard?: { index: number; count: number }, status: AnalysisRun['status'] = 'complete'): AnalysisRun {
  const cells: SensitivityRow[] = [];
  for (const unit of ['a', 'b', '*']) for (const t of [999, 0]) cells.push(row(unit, 'W4', t, unit.charCodeAt(0) / 4 + t / 100));
  const rows = shard ? cells.filter((_, i) => i % shard.count === shard.index) : cells;
  return {
    schema: 'quantlens.analysis/1',
    id: `run-${shard?.index ?? 'all'}`,
    createdAt: `2025-01-0${1 + (shard?.index ?? 0)}T00:00:00.000Z`,
    status,
    settings: {
      model: `/mnt/pod-${shard?.index ?? 0}/model.onnx`,
      settings: [{ id: 'W4', weight: { bits: 4, granularity: { kind: 'channel' } } }],
      unit: 'layer',
      groups: [],
      exclude: [],
      calibration: { samples: 2, batch: 1, seed: 0, dims: {} },
      timestep: { input: 't', values: [999, 0] },
      extraActivationTensors: [],
      executionProvider: 'cpu',
    },
    environment: { quantlens: '0.1.0', onnxruntime: '1.30.0', node: 'v20', platform: 'linux-x64', cpu: 'cpu × 2', executionProvider: 'cpu' },
    model: { fileName: 'model.onnx', bytes: 1234, layerCount: 2 },
    plan: { units: ['a', 'b', '*'], settings: ['W4'], timesteps: [999, 0], total: rows.length, ...(shard ? { shard } : {}) },
    referenceForwardMs: 1.5,
    rows: status === 'complete' ? rows : rows.slice(0, 1),
    ranges: [{ layer: 'a', timestep: 999, min: -1, max: 2 }, { layer: 'a', timestep: 0, min: -3, max: 4 }],
  };
}

function write(name: string, content: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  return file;
}

async function rejectsNaming(file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(loadRun(file), (err: unknown) => {
    assert.ok(err instanceof ModelError, String(err));
    assert.equal(err.file, file);
    assert.match(err.problem, pattern);
    return true;
  });
}

describe('saving and loading records', () => {
  it('round-trips a record; non-finite metrics come back as NaN', async () => {
    const run = record();
    run.rows[0].primary.sqnrDb = NaN;
    const file = path.join(dir, 'nested', 'folder', 'run.json');
    saveRun(file, run);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['run.json'], 'no temporary file is left behind');
    const loaded = await loadRun(file);
    assert.ok(Number.isNaN(loaded.rows[0].primary.sqnrDb));
    assert.deepEqual(loaded, run);
  });

  it('refuses what is not a valid record, naming the file and the problem', async () => {
    const valid = record();
    const mutated = (change: (r: Record<string, unknown>) => void) => {
      const copy = JSON.parse(JSON.stringify(valid)) as Record<string, unknown>;
      change(copy);
      return JSON.stringify(copy);
    };
    await rejectsNaming(write('text.json', 'not json at all'), /not JSON/);
    await rejectsNaming(write('truncated.json', JSON.stringify(valid).slice(0, 200)), /not JSON/);
    await rejectsNaming(write('array.json', '[]'), /at the top level/);
    await rejectsNaming(write('schema.json', mutated((r) => (r.schema = 'someone-else/2'))), /\/schema/);
    await rejectsNaming(write('status.json', mutated((r) => (r.status = 'done'))), /\/status.*"running", "complete"/);
    await rejectsNaming(write('rows.json', mutated((r) => delete (r.rows as Record<string, unknown>[])[2].primary)), /\/rows\/2.*primary/);
    await rejectsNaming(write('metric.json', mutated((r) => ((r.rows as SensitivityRow[])[0].metrics.out as unknown as Record<string, unknown>).cosine = 'high')), /\/rows\/0\/metrics\/out\/cosine/);
    await rejectsNaming(write('bits.json', mutated((r) => ((r.settings as AnalysisRun['settings']).settings[0].weight as { bits: number }).bits = 1)), /bits/);
    await rejectsNaming(
      write('symmetric.json', mutated((r) => (((r.settings as AnalysisRun['settings']).settings[0].weight as unknown as Record<string, unknown>).symmetric = 'yes'))),
      /\/settings\/settings\/0\/weight\/symmetric/,
    );
    await rejectsNaming(path.join(dir, 'missing.json'), /^run record not found$/);
    await rejectsNaming(dir, /not a regular file/);
  });
});

describe('weight symmetry in records', () => {
  it('a record written before weights had "symmetric" loads, its weights symmetric; an asymmetric one round-trips', async () => {
    const old = record();
    assert.equal(Object.hasOwn(old.settings.settings[0].weight as object, 'symmetric'), false);
    const loaded = await loadRun(write('old-run.json', JSON.stringify(old)));
    assert.deepEqual(loaded, old);
    assert.equal(isWeightSymmetric(loaded.settings.settings[0].weight as NonNullable<AnalysisRun['settings']['settings'][0]['weight']>), true);

    const asymmetric = record();
    asymmetric.settings.settings[0].weight = { bits: 4, granularity: { kind: 'group', size: 128 }, symmetric: false };
    const file = path.join(dir, 'asym-run.json');
    saveRun(file, asymmetric);
    const back = await loadRun(file);
    assert.deepEqual(back.settings.settings[0].weight, { bits: 4, granularity: { kind: 'group', size: 128 }, symmetric: false });
    assert.equal(isWeightSymmetric(back.settings.settings[0].weight as NonNullable<AnalysisRun['settings']['settings'][0]['weight']>), false);
  });
});

describe('CSV export', () => {
  it('has a header and one line per row', () => {
    const run = record();
    const lines = runToCsv(run).trimEnd().split('\n');
    assert.equal(lines[0], 'unit,setting,timestep,mse,sqnr_db,cosine,out mse,out sqnr_db,out cosine');
    assert.equal(lines.length, run.rows.length + 1);
    for (const [i, line] of lines.slice(1).entries()) {
      const cells = line.split(',');
      const r = run.rows[i];
      assert.deepEqual(cells.slice(0, 3), [r.unit, r.setting, String(r.timestep)]);
      assert.equal(Number(cells[4]), r.primary.sqnrDb);
      assert.equal(Number(cells[7]), r.metrics.out.sqnrDb);
    }
  });

  it('quotes separators, defuses formulas, and leaves non-finite values empty', () => {
    const run = record();
    run.rows = [row('=HYPERLINK("x"),evil', 'W4', null, 10)];
    run.rows[0].primary = { mse: NaN, sqnrDb: 10, cosine: 0.5 };
    const [, line] = runToCsv(run).trimEnd().split('\n');
    assert.ok(line.startsWith(`"'=HYPERLINK(""x""),evil",W4,,,10,0.5,`), line);
  });
});

describe('merging shards', () => {
  it('two complete shards make a complete record with every row once, in plan order', () => {
    const merged = mergeRuns([record({ index: 1, count: 2 }), record({ index: 0, count: 2 })]);
    const whole = record();
    assert.equal(merged.status, 'complete');
    assert.equal(merged.message, undefined);
    assert.deepEqual(merged.rows, whole.rows);
    assert.deepEqual(merged.plan, { units: whole.plan.units, settings: whole.plan.settings, timesteps: whole.plan.timesteps, total: 6 });
    assert.deepEqual(merged.ranges, whole.ranges, 'ranges measured by both shards appear once');
    assert.equal(merged.createdAt, '2025-01-01T00:00:00.000Z');
  });

  it('a missing or unfinished shard leaves the merge incomplete, and says which', () => {
    const missing = mergeRuns([record({ index: 0, count: 3 }), record({ index: 2, count: 3 })]);
    assert.equal(missing.status, 'cancelled');
    assert.match(missing.message ?? '', /shard 1\/3 is missing/);
    const crashed = mergeRuns([record({ index: 0, count: 2 }), record({ index: 1, count: 2 }, 'running')]);
    assert.equal(crashed.status, 'cancelled');
    assert.match(crashed.message ?? '', /shard 1\/2 is unfinished/);
    const failed = mergeRuns([record({ index: 0, count: 2 }), record({ index: 1, count: 2 }, 'failed')]);
    assert.equal(failed.status, 'failed');
    // A complete copy of a slice wins over a partial one.
    const retried = mergeRuns([record({ index: 0, count: 2 }), record({ index: 1, count: 2 }, 'running'), record({ index: 1, count: 2 })]);
    assert.equal(retried.status, 'complete');
    assert.equal(retried.rows.length, 6);
  });

  it('a shard without weight symmetry merges with one that says symmetric, not with an asymmetric one', () => {
    const old = record({ index: 0, count: 2 });
    const explicit = record({ index: 1, count: 2 });
    explicit.settings.settings[0].weight = { bits: 4, granularity: { kind: 'channel' }, symmetric: true };
    assert.equal(mergeRuns([old, explicit]).status, 'complete');
    const asymmetric = record({ index: 1, count: 2 });
    asymmetric.settings.settings[0].weight = { bits: 4, granularity: { kind: 'channel' }, symmetric: false };
    assert.throws(() => mergeRuns([old, asymmetric], ['a.json', 'b.json']), /b\.json: cannot be merged with a\.json: its settings differ \(settings\)/);
  });

  it('refuses records of other settings or another model, naming the file', () => {
    const other = record({ index: 1, count: 2 });
    other.settings.calibration.seed = 7;
    assert.throws(
      () => mergeRuns([record({ index: 0, count: 2 }), other], ['/runs/shard-0.json', '/runs/shard-1.json']),
      (err: unknown) => err instanceof ModelError && err.file === '/runs/shard-1.json' && /settings differ \(calibration\)/.test(err.problem),
    );
    const model = record({ index: 1, count: 2 });
    model.model.bytes = 999;
    assert.throws(() => mergeRuns([record({ index: 0, count: 2 }), model], ['a.json', 'b.json']), /another model file/);
    assert.throws(() => mergeRuns([record({ index: 0, count: 2 }), record({ index: 1, count: 3 })], ['a.json', 'b.json']), /shard counts differ/);
  });
});
