// The compiled `quantlens` CLI as a child process: analyze (with shards, CSV), merge, runs csv and instrument on the
// sample, and one-line refusals of bad flags and files.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { instrumentFeeds, instrumentModel } from '../../extension/engine/instrument/instrument';
import { layerPlan } from '../../extension/engine/instrument/plan';
import { loadRun } from '../../extension/engine/runs/records';
import { quantlens } from './cliProcess';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const SAMPLE = path.join(repoRoot, 'resources', 'sample', 'dit-sample.onnx');
const ppocrRec = path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');

let dir: string;
before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-cli-analyze-'))));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The flags of one small sweep of the sample: W4 and A8 at two timesteps, one sample. */
const SWEEP = ['--weights', '4', '--acts', '8', '--samples', '1', '--timesteps', '2'];

describe('quantlens analyze, merge, runs csv', () => {
  let whole: string;

  before(() => {
    whole = path.join(dir, 'whole.json');
  });

  it('analyze writes a valid record, a CSV and a summary; progress lines go to stderr', async () => {
    const csv = path.join(dir, 'whole.csv');
    const run = quantlens('analyze', SAMPLE, ...SWEEP, '--out', whole, '--csv', csv);
    assert.equal(run.code, 0, run.stderr);
    const record = await loadRun(whole);
    assert.equal(record.status, 'complete');
    assert.deepEqual(record.plan.timesteps, [999, 0]);
    // --weights and --acts together also give the combination.
    assert.deepEqual(record.plan.settings, ['W4', 'A8', 'W4A8']);
    assert.equal(record.rows.length, 26 * 3 * 2);
    assert.equal(record.settings.model, SAMPLE);
    assert.match(run.stdout.split('\n')[0], /^complete: 156\/156 cells in [\d.]+ s → /);
    assert.match(run.stdout, /^W4: most sensitive/m);
    assert.match(run.stderr, /analyze: 100% \(156\/156 cells\)/);
    assert.ok(!run.stderr.includes('\r'), 'no terminal redraws when stderr is not a terminal');
    const lines = fs.readFileSync(csv, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, record.rows.length + 1);
    assert.match(lines[0], /^unit,setting,timestep,mse,sqnr_db,cosine,/);

    const printed = quantlens('runs', 'csv', whole);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, fs.readFileSync(csv, 'utf8'));
  });

  it('--shard 0/2 and 1/2, merged, equal the unsharded record', async () => {
    const shards = [0, 1].map((i) => path.join(dir, `shard-${i}.json`));
    for (const [i, out] of shards.entries()) {
      const run = quantlens('analyze', SAMPLE, ...SWEEP, '--shard', `${i}/2`, '--out', out);
      assert.equal(run.code, 0, run.stderr);
    }
    const merged = path.join(dir, 'merged.json');
    const merge = quantlens('merge', ...shards, '--out', merged);
    assert.equal(merge.code, 0, merge.stderr);
    assert.match(merge.stdout, /^complete: 156\/156 cells from 2 records/);
    const [a, b] = [await loadRun(merged), await loadRun(whole)];
    assert.deepEqual(a.rows, b.rows);

    const lonely = quantlens('merge', shards[1], '--out', path.join(dir, 'partial.json'));
    assert.equal(lonely.code, 0, lonely.stderr);
    assert.match(lonely.stdout, /^cancelled: .*shard 0\/2 is missing/);
  });

  it('instrument writes a model onnxruntime loads; switched off, it computes the sample\'s output bit for bit', async () => {
    const out = path.join(dir, 'instrumented.onnx');
    const run = quantlens('instrument', SAMPLE, '-o', out, '--ranges');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^25 weight switches, 25 fake-quant points → /);
    // The model as the library instruments it with the layer plan: its controls are the written model's extra inputs.
    const proto = onnx.ModelProto.decode(fs.readFileSync(SAMPLE));
    const inst = instrumentModel(proto, layerPlan(proto, true));
    const controls = Object.entries(instrumentFeeds(inst)).map(([name, f]) => [name, new ort.Tensor(f.type, f.data, f.dims)] as const);
    const session = await ort.InferenceSession.create(out, { logSeverityLevel: 3 });
    assert.deepEqual([...session.inputNames].sort(), ['t', 'x', 'y', ...controls.map(([name]) => name)].sort());
    assert.equal(session.outputNames.length, 1 + 2 * 25, 'out, then a min and a max per point');
    const x = Float32Array.from({ length: 2 * 4 * 16 * 16 }, (_, i) => Math.sin(i * 0.37));
    const feeds = {
      x: new ort.Tensor('float32', x, [2, 4, 16, 16]),
      t: new ort.Tensor('float32', Float32Array.of(999, 10), [2]),
      y: new ort.Tensor('int64', BigInt64Array.of(1n, 7n), [2]),
    };
    const original = await ort.InferenceSession.create(SAMPLE, { logSeverityLevel: 3 });
    const expected = (await original.run(feeds)).out.data as Float32Array;
    const got = await session.run({ ...feeds, ...Object.fromEntries(controls) });
    assert.deepEqual(got.out.data, expected);
    // The first point sits on x: its range outputs are x's min and max.
    const first = inst.points.find((p) => p.tensor === 'x');
    assert.ok(first?.rangeOutputs);
    assert.equal((got[first.rangeOutputs.min].data as Float32Array)[0], x.reduce((a, b) => Math.min(a, b)));
    assert.equal((got[first.rangeOutputs.max].data as Float32Array)[0], x.reduce((a, b) => Math.max(a, b)));
    await Promise.all([session.release(), original.release()]);
  });
});

describe('quantlens analyze refuses bad input in one line', () => {
  const out = () => path.join(dir, `bad-${Math.random().toString(16).slice(2)}.json`);

  it('bad flags exit non-zero, naming the flag', () => {
    for (const [args, pattern] of [
      [['--weights', '4,x'], /--weights/],
      [['--shard', '2/2'], /--shard/],
      [['--act-mode', 'sometimes'], /--act-mode/],
      [['--timesteps', '-1'], /--timesteps/],
      [['--weights', '', '--acts', ''], /nothing to analyze/],
    ] as [string[], RegExp][]) {
      const run = quantlens('analyze', SAMPLE, ...args, '--out', out());
      assert.notEqual(run.code, 0, args.join(' '));
      assert.match(run.stderr.split('\n')[0], pattern, run.stderr);
      assert.ok(!/\n\s+at /.test(run.stderr), `no stack trace: ${run.stderr}`);
    }
    const noOut = quantlens('analyze', SAMPLE);
    assert.notEqual(noOut.code, 0);
    assert.match(noOut.stderr, /--out/);
  });

  it('a bad calibration file or model exits 2 with one line naming the file', () => {
    const calib = path.join(dir, 'broken.npy');
    fs.writeFileSync(calib, 'not an npy file');
    const cases: [string[], string][] = [
      [[SAMPLE, '--calib', calib, '--samples', '1', '--timesteps', '1'], calib],
      [[ppocrRec, '--timestep-values', '1,2'], ppocrRec],
      [[path.join(dir, 'missing.onnx')], path.join(dir, 'missing.onnx')],
    ];
    for (const [args, file] of cases) {
      const run = quantlens('analyze', ...args, '--out', out());
      assert.equal(run.code, 2, run.stderr);
      const lines = run.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('analyze: ') && !l.includes('looks like a diffusion timestep'));
      assert.equal(lines.length, 1, run.stderr);
      assert.ok(lines[0].startsWith(`quantlens: ${file}: `), run.stderr);
    }
  });
});
