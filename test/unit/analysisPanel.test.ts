// The sensitivity panel's pure pieces (settings → form → AnalysisSettings, the heatmaps' data and colors, the HTML's
// CSP) and its host-side run session against the real engine process on the sample: streaming, cancel, and a killed
// engine leaving a partial record.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { webviewHtml } from '../../extension/features/webview/html';
import { RunSession, type RunUpdate } from '../../extension/features/analysis/runSession';
import {
  analysisSettings,
  applyOverrides,
  FORM_DEFAULTS,
  formFromConfig,
  formProblem,
  groupsFromConfig,
  recordFileName,
} from '../../extension/features/analysis/settings';
import { loadRun } from '../../extension/engine/runs/records';
import { EngineClient } from '../../extension/process/client';
import type { AnalysisRun, SensitivityRow } from '../../extension/protocol/analysis';
import type { ValueInfo } from '../../extension/protocol/records';
import { Colormap, mix, parseColor, type Rgb } from '../../webview/analysis/colormap';
import {
  ALL_UNIT,
  badness,
  badnessRange,
  colorPosition,
  fromBadness,
  RunData,
  sensitivityOrder,
} from '../../webview/analysis/runData';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const enginePath = path.join(repoRoot, 'out', 'extension', 'process', 'main.js');
const sample = path.join(repoRoot, 'resources', 'sample', 'dit-sample.onnx');
const SAMPLE_INPUTS: ValueInfo[] = [
  { name: 'x', dtype: 'F32', shape: ['batch', 4, 16, 16] },
  { name: 't', dtype: 'F32', shape: ['batch'] },
  { name: 'y', dtype: 'I64', shape: ['batch'] },
];

describe('launch form and settings', () => {
  it('prefills from the settings and detects the timestep input by name', () => {
    const { form, timestepInputs } = formFromConfig({ weightBits: [8, 4, 4], timesteps: 20, activationMode: 'static-minmax' }, SAMPLE_INPUTS);
    assert.deepEqual(form.weightBits, [4, 8]);
    assert.deepEqual(form.activationBits, FORM_DEFAULTS.activationBits);
    assert.equal(form.activationMode, 'static-minmax');
    assert.equal(form.timestepInput, 't');
    assert.equal(form.timestepCount, 20);
    assert.deepEqual(timestepInputs, ['t']);
  });

  it('falls back to the defaults for values a user mistyped in settings.json', () => {
    const { form } = formFromConfig(
      { weightBits: 'four', activationBits: [1, 99, 8.5], activationMode: 'fast', samples: -2, timesteps: 5000, unit: 'block', groupSize: 1.5 },
      [{ name: 'latent', dtype: 'F32', shape: [1, 4, 8, 8] }],
    );
    assert.deepEqual(form.weightBits, FORM_DEFAULTS.weightBits);
    assert.deepEqual(form.activationBits, []);
    assert.equal(form.activationMode, FORM_DEFAULTS.activationMode);
    assert.equal(form.samples, FORM_DEFAULTS.samples);
    assert.equal(form.timestepCount, FORM_DEFAULTS.timestepCount);
    assert.equal(form.unit, 'layer');
    assert.equal(form.groupSize, 0);
    assert.equal(form.timestepInput, '', 'a model without a timestep-like input has none');
  });

  it('applies command overrides and names the first bad one', () => {
    const base = formFromConfig({}, SAMPLE_INPUTS).form;
    const form = applyOverrides(base, { weightBits: [4, 8], activationBits: [8], samples: 1, timestepCount: 2, combine: true });
    assert.deepEqual({ ...form }, { ...base, samples: 1, timestepCount: 2, combine: true });
    assert.throws(() => applyOverrides(base, { samples: 'two' }), /analysis option samples/);
    assert.throws(() => applyOverrides(base, { weightBits: [4, 1] }), /analysis option weightBits/);
    assert.throws(() => applyOverrides(base, { bits: 4 }), /unknown analysis option bits/);
    assert.throws(() => applyOverrides(base, [4]), /must be an object/);
  });

  it('turns the form into AnalysisSettings: one setting per width, evenly spaced timesteps, resolved paths', () => {
    const form = applyOverrides(formFromConfig({}, SAMPLE_INPUTS).form, { timestepCount: 5, calibrationSource: 'calib/x.npz', groupSize: 128 });
    const settings = analysisSettings(form, { model: sample, baseDir: '/work/ws', executionProvider: 'gpu?', groups: [{ name: 'attn', patterns: ['attn'] }, { name: 3 }] });
    assert.deepEqual(settings.settings.map((s) => s.id), ['W4', 'W8', 'A8']);
    assert.deepEqual(settings.settings[0]!.weight, { bits: 4, granularity: { kind: 'group', size: 128 }, symmetric: true });
    assert.deepEqual(settings.settings[2]!.activation, { bits: 8, mode: 'dynamic-token', symmetric: false });
    assert.deepEqual(settings.timestep, { input: 't', values: [999, 749, 500, 250, 0] });
    assert.equal(settings.calibration.source, path.resolve('/work/ws', 'calib/x.npz'));
    assert.equal(settings.calibration.samples, 2);
    assert.equal(settings.executionProvider, 'cpu', 'anything but "cuda" runs on the CPU');
    assert.deepEqual(settings.groups, [{ name: 'attn', patterns: ['attn'] }]);
    const combined = analysisSettings({ ...form, combine: true, timestepInput: '' }, { model: sample, baseDir: '/', executionProvider: 'cuda', groups: undefined });
    assert.deepEqual(combined.settings.map((s) => s.id), ['W4', 'W8', 'A8', 'W4A8', 'W8A8']);
    assert.equal(combined.timestep, undefined);
    assert.equal(combined.executionProvider, 'cuda');
  });

  it('asymmetric weights: quantlens.analysis.weightSymmetric and the command prefill the form; the run\'s weight settings carry it', () => {
    assert.equal(formFromConfig({}, SAMPLE_INPUTS).form.weightSymmetric, true, 'symmetric by default');
    assert.equal(formFromConfig({ weightSymmetric: 'no' }, SAMPLE_INPUTS).form.weightSymmetric, true, 'a mistyped value falls back to the default');
    const { form } = formFromConfig({ weightSymmetric: false, groupSize: 64 }, SAMPLE_INPUTS);
    assert.equal(form.weightSymmetric, false);
    const settings = analysisSettings({ ...form, combine: true }, { model: sample, baseDir: '/', executionProvider: 'cpu', groups: [] });
    assert.deepEqual(settings.settings.map((s) => s.id), ['W4', 'W8', 'A8', 'W4A8', 'W8A8'], 'the ids stay W4, W8');
    for (const setting of settings.settings.filter((s) => s.weight)) assert.deepEqual(setting.weight?.granularity, { kind: 'group', size: 64 });
    assert.ok(settings.settings.every((s) => !s.weight || s.weight.symmetric === false));
    assert.deepEqual(settings.settings[2]!.activation, { bits: 8, mode: 'dynamic-token', symmetric: false }, 'activations unchanged');
    assert.equal(applyOverrides(form, { weightSymmetric: true }).weightSymmetric, true);
    assert.throws(() => applyOverrides(form, { weightSymmetric: 'false' }), /analysis option weightSymmetric/);
    // A form from before the field existed (a restored webview's state) is symmetric.
    const { weightSymmetric: _, ...older } = form;
    const olderWeights = analysisSettings(older, { model: sample, baseDir: '/', executionProvider: 'cpu', groups: [] }).settings.flatMap((s) => (s.weight ? [s.weight.symmetric] : []));
    assert.deepEqual(olderWeights, [true, true]);
  });

  it('takes extra activation tensors (KV cache) from the settings and the command, and passes them to the engine', () => {
    const { form } = formFromConfig({ extraActivationTensors: [' k_cache ', 'v_cache', 'k_cache', '', 7] }, SAMPLE_INPUTS);
    assert.deepEqual(form.extraActivationTensors, ['k_cache', 'v_cache'], 'trimmed, once each, non-strings and blanks dropped');
    assert.deepEqual(formFromConfig({}, SAMPLE_INPUTS).form.extraActivationTensors, []);
    const overridden = applyOverrides(form, { extraActivationTensors: ['blocks.0.attn.k'] });
    assert.deepEqual(overridden.extraActivationTensors, ['blocks.0.attn.k']);
    assert.throws(() => applyOverrides(form, { extraActivationTensors: 'k' }), /analysis option extraActivationTensors/);
    assert.throws(() => applyOverrides(form, { extraActivationTensors: ['k', ''] }), /analysis option extraActivationTensors/);
    const settings = analysisSettings(overridden, { model: sample, baseDir: '/', executionProvider: 'cpu', groups: [] });
    assert.deepEqual(settings.extraActivationTensors, ['blocks.0.attn.k']);
    assert.match(formProblem({ ...overridden, activationBits: [] }) ?? '', /Extra tensors are quantized at the activation bits/);
  });

  it('takes symbolic dim sizes from the settings and the command, and passes them to the engine', () => {
    const llmInputs: ValueInfo[] = [{ name: 'input_ids', dtype: 'I64', shape: ['batch', 'seq'] }];
    const { form } = formFromConfig({ dims: { seq: 16, 'x[2]': 32, bad: 0, half: 1.5, text: '8', '': 4 } }, llmInputs);
    assert.deepEqual(form.dims, { seq: 16, 'x[2]': 32 }, 'sizes that are not positive integers, and an empty name, are dropped');
    assert.deepEqual(formFromConfig({}, llmInputs).form.dims, {});
    assert.deepEqual(formFromConfig({ dims: [16] }, llmInputs).form.dims, {});
    const overridden = applyOverrides(form, { dims: { seq: 8 } });
    assert.deepEqual(overridden.dims, { seq: 8 }, 'the command replaces the settings\' dims');
    // A hostile key stays a plain key.
    assert.ok(Object.hasOwn(applyOverrides(form, JSON.parse('{"dims": {"__proto__": 3}}')).dims ?? {}, '__proto__'));
    for (const bad of [{ seq: 0 }, { seq: 2.5 }, { seq: '8' }, [8], 'seq=8', null]) {
      assert.throws(() => applyOverrides(form, { dims: bad }), (err: Error) => err.message === `analysis option dims: ${JSON.stringify(bad)} is not valid`);
    }
    const settings = analysisSettings(overridden, { model: sample, baseDir: '/', executionProvider: 'cpu', groups: [] });
    assert.deepEqual(settings.calibration.dims, { seq: 8 });
    const { dims: _, ...withoutDims } = overridden;
    assert.deepEqual(analysisSettings(withoutDims, { model: sample, baseDir: '/', executionProvider: 'cpu', groups: [] }).calibration.dims, {}, 'a form without dims');
  });

  it('refuses a form that measures nothing', () => {
    const form = { ...FORM_DEFAULTS, weightBits: [], activationBits: [] };
    assert.match(formProblem(form) ?? '', /at least one/);
    assert.throws(() => analysisSettings(form, { model: sample, baseDir: '/', executionProvider: 'cpu', groups: [] }), /at least one/);
    assert.equal(formProblem(FORM_DEFAULTS), undefined);
    assert.deepEqual(groupsFromConfig('attn'), []);
  });

  it('names records after the model and the local time', () => {
    assert.equal(recordFileName('/m/dit sample.onnx', new Date(2025, 0, 2, 3, 4, 5)), 'dit_sample-20250102-030405.json');
    assert.equal(recordFileName('C:/x/ckpt.ONNX', new Date(2025, 11, 31, 23, 59, 59)), 'ckpt-20251231-235959.json');
  });
});

/** Deterministic rows for a plan, with the metric values a function of the cell. */
function syntheticRun(units: string[], settings: string[], timesteps: (number | null)[]): { run: Pick<AnalysisRun, 'plan'>; rows: SensitivityRow[] } {
  const rows: SensitivityRow[] = [];
  units.forEach((unit, u) =>
    settings.forEach((setting, s) =>
      timesteps.forEach((timestep, t) => {
        const sqnrDb = 40 - 3 * s - ((u * 7 + t * 3) % 11);
        const mse = 10 ** (-sqnrDb / 10);
        const metrics = { mse, sqnrDb, cosine: 1 - mse / 3 };
        rows.push({ unit, setting, timestep, metrics: { out: metrics }, primary: metrics });
      }),
    ),
  );
  return { run: { plan: { units, settings, timesteps, total: rows.length } }, rows };
}

describe('panel data (webview/analysis/runData)', () => {
  const units = ['a', 'b', 'c', ALL_UNIT];
  const settings = ['W4', 'W8'];
  const timesteps = [999, 500, 0];
  const { run, rows } = syntheticRun(units, settings, timesteps);

  it('fills the layers × timesteps matrix as rows arrive, ignoring rows outside the plan', () => {
    const data = new RunData(run);
    assert.equal(data.byTimestep('W4', 'sqnrDb').filled, 0);
    data.add(rows.slice(0, 5));
    data.add([{ ...rows[0]!, unit: 'not-planned' }, { ...rows[1]!, timestep: 7 }]);
    data.add(rows.slice(0, 2), []);
    assert.equal(data.rowCount, 5, 'repeated cells count once');
    assert.equal(data.outsidePlan, 2);
    data.add(rows.slice(5));
    const matrix = data.byTimestep('W8', 'sqnrDb');
    assert.equal(matrix.filled, units.length * timesteps.length);
    for (const row of rows.filter((r) => r.setting === 'W8')) {
      const at = units.indexOf(row.unit) * timesteps.length + timesteps.indexOf(row.timestep as number);
      assert.equal(matrix.values[at], row.primary.sqnrDb);
    }
    assert.equal(data.byTimestep('W16', 'mse').filled, 0);
  });

  it('averages over timesteps for the settings matrix and ranks the worst layers (not the all-at-once unit)', () => {
    const data = new RunData(run);
    data.add(rows.filter((r) => r.timestep !== 0 || r.unit !== 'b'));
    const mean = data.bySetting('mean', 'mse');
    for (const [u, unit] of units.entries()) {
      for (const [s, setting] of settings.entries()) {
        const values = rows.filter((r) => r.unit === unit && r.setting === setting && (r.timestep !== 0 || r.unit !== 'b')).map((r) => r.primary.mse);
        const expected = values.reduce((a, b) => a + b, 0) / values.length;
        assert.ok(Math.abs(mean.values[u * settings.length + s]! - expected) <= 1e-15 * expected, `${unit} ${setting}`);
      }
    }
    const atOne = data.bySetting(1, 'cosine');
    assert.equal(atOne.values[0], rows.find((r) => r.unit === 'a' && r.setting === 'W4' && r.timestep === 500)!.primary.cosine);

    const ranked = data.mostSensitive('W4', 2, 'sqnrDb', 2);
    const naive = rows
      .filter((r) => r.setting === 'W4' && r.timestep === 0 && r.unit !== ALL_UNIT && data.row(r.unit, 'W4', 0))
      .sort((x, y) => x.primary.sqnrDb - y.primary.sqnrDb || x.unit.localeCompare(y.unit))
      .slice(0, 2)
      .map((r) => ({ unit: r.unit, value: r.primary.sqnrDb }));
    assert.deepEqual(ranked, naive);
  });

  it('orders rows most sensitive first with the all-at-once unit on top', () => {
    const data = new RunData(run);
    data.add(rows);
    const matrix = data.byTimestep('W4', 'sqnrDb');
    const order = sensitivityOrder(matrix, 'sqnrDb');
    assert.equal(matrix.rows[order[0]!], ALL_UNIT);
    const meanSqnr = (unit: string) => {
      const values = rows.filter((r) => r.unit === unit && r.setting === 'W4').map((r) => r.primary.sqnrDb);
      return values.reduce((a, b) => a + b, 0) / values.length;
    };
    const layers = order.slice(1).map((i) => matrix.rows[i]!);
    assert.deepEqual(layers, ['a', 'b', 'c'].sort((x, y) => meanSqnr(x) - meanSqnr(y)));
  });

  it('keeps activation ranges per layer and timestep; a model without timesteps has one column', () => {
    const data = new RunData(run);
    data.add([], [{ layer: 'a', timestep: 500, min: -1, max: 2 }, { layer: 'a', timestep: 3, min: 0, max: 0 }]);
    assert.deepEqual(Array.from(data.rangesOf('a'), (r) => r?.max), [undefined, 2, undefined]);
    assert.equal(data.hasRanges('b'), false);
    const flat = syntheticRun(['a', ALL_UNIT], ['W4'], []);
    const noTimesteps = new RunData(flat.run);
    noTimesteps.add(syntheticRun(['a', ALL_UNIT], ['W4'], [null]).rows);
    assert.deepEqual(noTimesteps.timesteps, [null]);
    assert.equal(noTimesteps.byTimestep('W4', 'sqnrDb').filled, 2);
  });

  it('maps metrics to one badness scale (larger is worse) and back', () => {
    assert.equal(badness('sqnrDb', 12), -12);
    assert.equal(badness('mse', 1e-3), -3);
    assert.ok(Math.abs(badness('cosine', 0.99) - -2) < 1e-12);
    assert.ok(Number.isNaN(badness('mse', null)));
    for (const [metric, value] of [['sqnrDb', 7.5], ['mse', 0.02], ['cosine', 0.999]] as const) {
      assert.ok(Math.abs(fromBadness(metric, badness(metric, value)) - value) < 1e-12, metric);
    }
    const data = new RunData(run);
    data.add(rows);
    const matrix = data.byTimestep('W4', 'sqnrDb');
    const range = badnessRange(matrix, 'sqnrDb')!;
    const layerValues = rows.filter((r) => r.setting === 'W4' && r.unit !== ALL_UNIT).map((r) => r.primary.sqnrDb);
    assert.deepEqual(range, { lo: -Math.max(...layerValues), hi: -Math.min(...layerValues) });
    assert.equal(colorPosition(range.hi + 5, range), 1);
    assert.equal(colorPosition(range.lo, range), 0);
  });
});

describe('heatmap colors (webview/analysis/colormap)', () => {
  it('parses the color forms themes use', () => {
    assert.deepEqual(parseColor('#F14C4C'), { rgb: [241, 76, 76], alpha: 1 });
    assert.deepEqual(parseColor('#abc'), { rgb: [170, 187, 204], alpha: 1 });
    assert.deepEqual(parseColor('#00000080'), { rgb: [0, 0, 0], alpha: 128 / 255 });
    assert.deepEqual(parseColor('rgba(128, 128, 128, 0.35)'), { rgb: [128, 128, 128], alpha: 0.35 });
    assert.deepEqual(parseColor('rgb(1 2 3 / 50%)'), { rgb: [1, 2, 3], alpha: 0.5 });
    assert.equal(parseColor('var(--x)'), undefined);
  });

  it('runs from a tint of the background through the theme yellow and orange to its red, mixed in linear light', () => {
    const linear = (c: number) => ((c / 255) <= 0.04045 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4);
    const srgb = (x: number) => Math.round(255 * (x <= 0.0031308 ? 12.92 * x : 1.055 * x ** (1 / 2.4) - 0.055));
    const naiveMix = (a: Rgb, b: Rgb, t: number) => a.map((c, i) => srgb(linear(c) * (1 - t) + linear(b[i]!) * t));
    for (const theme of [
      { background: '#ffffff', foreground: '#616161', yellow: '#bf8803', orange: '#d18616', red: '#e51400' },
      { background: '#1e1e1e', foreground: '#cccccc', yellow: '#cca700', orange: '#d18616', red: '#f14c4c' },
    ]) {
      const map = new Colormap(theme);
      const bg = parseColor(theme.background)!.rgb;
      const tint = naiveMix(bg, parseColor(theme.foreground)!.rgb, 0.14);
      assert.deepEqual(map.rgbAt(0), tint);
      assert.deepEqual(map.rgbAt(0.4), parseColor(theme.yellow)!.rgb);
      assert.deepEqual(map.rgbAt(1), parseColor(theme.red)!.rgb);
      assert.deepEqual(map.rgbAt(0.2), naiveMix(tint as Rgb, parseColor(theme.yellow)!.rgb, 0.5));
      assert.deepEqual(mix(bg, bg, 0.3), bg);
      assert.equal(map.color(2), map.color(1));
      assert.equal(map.color(Number.NaN), map.color(0));
      assert.equal(map.steps.length, 256);
    }
  });
});

describe('panel HTML', () => {
  it('allows only the nonce-bearing script and the extension’s own styles', () => {
    const html = webviewHtml({ title: 'QuantLens Sensitivity', cspSource: 'vscode-resource:', nonce: 'N0nce', scriptUri: 'a.js', styleUris: ['panel.css', 'a.css'], codiconsUri: 'c.css' });
    const csp = (/Content-Security-Policy" content="([^"]*)"/.exec(html)?.[1] ?? '').replace(/&#39;/g, "'");
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'nonce-N0nce'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(html, /<script nonce="N0nce" src="a\.js"><\/script>/);
    assert.equal((html.match(/<script/g) ?? []).length, 1);
    assert.ok(html.indexOf('href="panel.css"') < html.indexOf('href="a.css"'), 'shared panel styles first, the panel\'s own after');
    assert.doesNotMatch(html, /style="/);
  });
});

describe('run session against the real engine process (sample model)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-panel-'));
  const client = new EngineClient({ enginePath });
  after(() => {
    client.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const settingsFor = (overrides: Record<string, unknown>) =>
    analysisSettings(applyOverrides(formFromConfig({}, SAMPLE_INPUTS).form, overrides), { model: sample, baseDir: tmp, executionProvider: 'cpu', groups: [] });
  const start = (recordPath: string, overrides: Record<string, unknown>) =>
    new RunSession(recordPath, 'dit-sample.onnx', (onEvent, signal) =>
      client.request('analyze', { settings: settingsFor(overrides), recordPath }, { onEvent, signal }),
    );

  it('streams every cell of the plan, matching the record the engine saved', async () => {
    const recordPath = path.join(tmp, 'complete.json');
    const session = start(recordPath, { timestepCount: 2, samples: 1 });
    const updates: RunUpdate[] = [];
    session.subscribe((u) => updates.push(u), false);
    await session.finished;
    assert.equal(session.status, 'complete', session.message);
    const run = session.run!;
    assert.deepEqual(run.plan.settings, ['W4', 'W8', 'A8']);
    assert.deepEqual(run.plan.timesteps, [999, 0]);
    assert.equal(run.plan.units.at(-1), ALL_UNIT);
    assert.equal(run.plan.total, run.plan.units.length * 3 * 2);
    const streamed = updates.flatMap((u) => (u.kind === 'rows' ? u.rows : []));
    assert.equal(streamed.length, run.plan.total);
    const firstRun = updates.findIndex((u) => u.kind === 'run');
    assert.ok(firstRun >= 0 && firstRun < updates.findIndex((u) => u.kind === 'rows'), 'the plan comes before the rows');
    assert.deepEqual(updates.at(-1), { kind: 'status', status: 'complete' });

    const saved = await loadRun(recordPath);
    assert.equal(saved.status, 'complete');
    assert.equal(saved.rows.length, run.plan.total);
    const key = (r: SensitivityRow) => `${r.unit}|${r.setting}|${r.timestep}`;
    const savedByKey = new Map(saved.rows.map((r) => [key(r), r]));
    for (const row of streamed) assert.equal(savedByKey.get(key(row))?.primary.sqnrDb, row.primary.sqnrDb, key(row));
    const rangeKeys = run.ranges.map((r) => `${r.layer}|${r.timestep}`);
    assert.equal(new Set(rangeKeys).size, rangeKeys.length, 'each activation range is held once');
    const byKey = (ranges: AnalysisRun['ranges']) => [...ranges].sort((a, b) => `${a.layer}|${a.timestep}`.localeCompare(`${b.layer}|${b.timestep}`));
    assert.deepEqual(byKey(run.ranges), byKey(saved.ranges));

    // A webview that (re)loads late is sent the same state.
    const replay: RunUpdate[] = [];
    session.subscribe((u) => replay.push(u)).dispose();
    assert.equal(replay.length, 2);
    assert.equal(replay[0]?.kind === 'run' && replay[0].run.rows.length, run.plan.total);
  });

  it('cancel stops the run and says where the finished cells are', async () => {
    const recordPath = path.join(tmp, 'cancelled.json');
    const session = start(recordPath, { timestepCount: 10, samples: 2 });
    let rowsSeen = 0;
    session.subscribe((u) => {
      if (u.kind === 'rows' && u.rows.length > 0 && rowsSeen === 0) session.cancel();
      if (u.kind === 'rows') rowsSeen += u.rows.length;
    }, false);
    await session.finished;
    assert.equal(session.status, 'cancelled');
    assert.equal(session.failure?.code, 'cancelled');
    assert.ok(session.run!.rows.length > 0 && session.run!.rows.length < session.run!.plan.total);
    assert.match(session.message ?? '', /^Cancelled with \d+ of \d+ cells finished; they are saved in /);
    assert.ok(session.message!.includes(recordPath));
    // The engine writes the final record after it answered; wait for it (bounded).
    let saved = await loadRun(recordPath);
    for (let i = 0; i < 100 && saved.status === 'running'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      saved = await loadRun(recordPath);
    }
    assert.equal(saved.status, 'cancelled');
    assert.ok(saved.rows.length > 0 && saved.rows.length < saved.plan.total);
  });

  it('a killed engine ends the run with "engine stopped; partial results saved at …" and the next run works', async () => {
    const recordPath = path.join(tmp, 'killed.json');
    const session = start(recordPath, { timestepCount: 10, samples: 2 });
    let killed = false;
    session.subscribe((u) => {
      if (!killed && u.kind === 'rows' && u.rows.length > 0 && client.pid) {
        killed = true;
        process.kill(client.pid, 'SIGKILL');
      }
    }, false);
    await session.finished;
    assert.ok(killed);
    assert.equal(session.status, 'failed');
    assert.equal(session.failure?.code, 'engine-crashed');
    assert.match(session.message ?? '', /^The engine stopped; partial results \(\d+ of \d+ cells\) saved at /);
    assert.ok(session.message!.endsWith(`${recordPath}.`));
    const partial = await loadRun(recordPath);
    assert.equal(partial.status, 'running', 'the record is the one saved mid-run');
    assert.ok(partial.rows.length < partial.plan.total);

    const again = start(path.join(tmp, 'after-kill.json'), { timestepCount: 1, samples: 1, activationBits: [] });
    await again.finished;
    assert.equal(again.status, 'complete', again.message);
    assert.equal(again.run!.rows.length, again.run!.plan.total);
  });

  it('a bad calibration file fails the run with a message naming the file', async () => {
    const bad = path.join(tmp, 'calib.npy');
    fs.writeFileSync(bad, 'not numpy');
    const session = start(path.join(tmp, 'bad.json'), { timestepCount: 1, samples: 1, calibrationSource: bad });
    await session.finished;
    assert.equal(session.status, 'failed');
    assert.equal(session.failure?.code, 'bad-input');
    assert.ok(session.message?.includes('calib.npy'), session.message);
  });
});
