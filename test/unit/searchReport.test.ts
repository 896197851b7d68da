// The search panel's engine side: runSearch on a real sensitivity run of the sample writes the allocation, its YAML
// and the panel's report, and the report says what the allocation file and the run say (checked from those files,
// not from the report code); runExport writes a QDQ model onnxruntime loads; the pure helpers on small inputs.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { runAnalysis } from '../../extension/engine/analysis/runner';
import { quantSettings } from '../../extension/engine/analysis/settings';
import { CancelledError } from '../../extension/engine/errors';
import { loadAllocation } from '../../extension/engine/export/allocation';
import { allocationGrid, displayCost, reportPathFor, reportProblem, yamlPathsFor } from '../../extension/engine/search/report';
import { qdqPaths, runExport, runSearch } from '../../extension/engine/search/session';
import type { AnalysisRun } from '../../extension/protocol/analysis';
import type { SearchEvent, SearchReport } from '../../extension/protocol/searchPanel';
import { SAMPLE, sampleSweep } from './sampleSweep';


describe('search report helpers', () => {
  it('lays an allocation out as layers × ranges in first-seen order; unlisted layers are floating point', () => {
    const grid = allocationGrid({
      ranges: [
        { label: '999-500', timesteps: [999, 500], layers: { a: { weightBits: 4, activationBits: null }, b: { weightBits: 8, activationBits: 8 } } },
        { label: '0', timesteps: [0], layers: { b: { weightBits: 2, activationBits: null }, c: { weightBits: 16, activationBits: null } } },
      ],
    });
    assert.deepEqual(grid.layers, ['a', 'b', 'c']);
    assert.deepEqual(grid.rangeLabels, ['999-500', '0']);
    assert.deepEqual(grid.bits, [[4, 16], [8, 2], [16, 16]]);
    assert.deepEqual(grid.activationBits, [[null, null], [8, null], [null, null]]);
  });

  it('leaves activation bits out when no layer quantizes activations', () => {
    const grid = allocationGrid({ ranges: [{ label: 'all', timesteps: null, layers: { x: { weightBits: 4, activationBits: null } } }] });
    assert.equal(grid.activationBits, undefined);
  });

  it('shows costs in the budget\'s words', () => {
    const problem = { costUnit: 'bits' as const, totalParams: 1000 };
    assert.equal(displayCost(problem, 5000, 'averageBits'), 5);
    assert.equal(displayCost(problem, 16e6, 'sizeMB'), 2);
    assert.equal(displayCost({ costUnit: 'bops', totalParams: 1000 }, 3e9, 'bops'), 3e9);
  });

  it('puts the report, YAML and QDQ files beside their sources', () => {
    assert.equal(reportPathFor('/w/x.alloc.json'), '/w/x.search.json');
    assert.deepEqual(yamlPathsFor('/w/x.alloc.json'), ['/w/x.yaml', '/w/x.act.yaml']);
    assert.deepEqual(qdqPaths('/m/dit.onnx', ['all']), [path.join('/m', 'dit.qdq.onnx')]);
    assert.deepEqual(qdqPaths('/m/dit.onnx', ['999-500', '0']), [path.join('/m', 'dit.999-500.qdq.onnx'), path.join('/m', 'dit.0.qdq.onnx')]);
    assert.deepEqual(qdqPaths('/m/dit.onnx', ['../x', 'y']), [path.join('/m', 'dit.___x.qdq.onnx'), path.join('/m', 'dit.y.qdq.onnx')]);
  });

  it('refuses saved reports that are not shaped like one', () => {
    assert.match(reportProblem(null) ?? '', /not a JSON object/);
    assert.match(reportProblem({ schema: 'x' }) ?? '', /schema/);
    assert.match(reportProblem({ schema: 'quantlens.searchReport/1', ranges: [], layers: ['a'], rangeLabels: ['all'], bits: [[4, 4]] }) ?? '', /layers × ranges/);
  });
});

describe('engine search on the sample', () => {
  let dir: string;
  let runFile: string;
  let run: AnalysisRun;
  let report: SearchReport;
  const events: SearchEvent[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-search-report-'));
    runFile = path.join(dir, 'run.json');
    run = await runAnalysis(
      sampleSweep(quantSettings({ weightBits: [2, 4, 6, 8], activationBits: [], combine: false, groupSize: 0, activationMode: 'dynamic-token', activationSymmetric: false }), {
        timestep: { input: 't', values: [999, 0] },
      }),
      { recordPath: runFile, threads: 1 },
    );
    assert.equal(run.status, 'complete');
    const outPath = path.join(dir, 'search', 'dit.alloc.json');
    report = await runSearch({ runPath: runFile, budget: '5bits', rangeCount: 2, refine: 2, outPath }, (event) => events.push(event), new AbortController().signal);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes the allocation, its two YAML files and the report beside it', async () => {
    const allocation = await loadAllocation(report.allocationPath);
    assert.deepEqual(report.yamlPaths, yamlPathsFor(report.allocationPath));
    // Read back with a YAML parser: weight bits, then activation bits (16: left in floating point), per range and layer.
    const jsYaml = require('js-yaml') as typeof import('js-yaml');
    const [weightYaml, activationYaml] = report.yamlPaths.map((file) => jsYaml.load(fs.readFileSync(file, 'utf8')));
    const perRange = (bits: (layer: { weightBits: number; activationBits: number | null }) => number) =>
      Object.fromEntries(allocation.ranges.map((range) => [range.label, Object.fromEntries(Object.entries(range.layers).map(([name, layer]) => [name, bits(layer)]))]));
    assert.deepEqual(weightYaml, perRange((layer) => layer.weightBits));
    assert.deepEqual(activationYaml, perRange((layer) => layer.activationBits ?? 16));
    const saved = JSON.parse(fs.readFileSync(reportPathFor(report.allocationPath), 'utf8')) as unknown;
    assert.equal(reportProblem(saved), undefined);
    assert.deepEqual(saved, JSON.parse(JSON.stringify(report)));
    // The heatmap is the file's allocation, cell by cell.
    assert.deepEqual(report.rangeLabels, ['999', '0']);
    assert.equal(report.bits.length, report.layers.length);
    for (const [r, range] of allocation.ranges.entries()) {
      for (const [name, bits] of Object.entries(range.layers)) assert.equal(report.bits[report.layers.indexOf(name)]![r], bits.weightBits, `${name} in ${range.label}`);
    }
    assert.deepEqual(new Set(report.layers), new Set(run.plan.units.filter((unit) => unit !== '*')));
    // What the user is told is the measured number, the one the file holds.
    assert.equal(report.chosen.measured.error, allocation.measured?.error);
    assert.ok(Number.isFinite(report.chosen.measured.error) && (report.chosen.measured.error as number) > 0);
  });

  it('reports each range\'s front in average bits: cost up, error down, the pick within the budget', () => {
    assert.equal(report.costLabel, 'average weight bits');
    assert.equal(report.ranges.length, 2);
    for (const range of report.ranges) {
      assert.ok(range.front.length > 2, `front ${range.label} has ${range.front.length} points`);
      for (let i = 1; i < range.front.length; i++) {
        assert.ok(range.front[i]!.cost > range.front[i - 1]!.cost && range.front[i]!.error < range.front[i - 1]!.error, `front ${range.label} at ${i}`);
      }
      assert.equal(range.maxCost, 5);
      assert.ok(range.front[range.chosenIndex]!.cost <= 5 + 1e-9);
      // Average bits lie between the cheapest option and full precision.
      assert.ok(range.front[0]!.cost >= 2 - 1e-9 && range.front[range.front.length - 1]!.cost <= 16 + 1e-9);
    }
    assert.ok(report.chosen.predicted.cost <= 5 + 1e-9);
  });

  it('measures uniform W2…W8 and streams progress and the refinement steps', () => {
    assert.deepEqual(report.uniform.map((u) => u.label), ['uniform W2', 'uniform W4', 'uniform W6', 'uniform W8']);
    // Uniform W4 costs 4 average bits on the searched layers (plus any float layers the run left out), W8 is over 5.
    assert.equal(report.uniform.find((u) => u.label === 'uniform W8')!.fits, false);
    assert.equal(report.uniform.find((u) => u.label === 'uniform W2')!.fits, true);
    assert.ok(events.some((e) => e.kind === 'progress' && /uniform W4/.test(e.stage)));
    const steps = events.filter((e) => e.kind === 'step');
    assert.equal(steps.length, report.refinement.length);
    assert.ok(report.refinement.length <= 2);
  });

  it('exports each range as a QDQ model onnxruntime loads', async () => {
    const modelCopy = path.join(dir, 'dit-sample.onnx');
    fs.copyFileSync(SAMPLE, modelCopy);
    const exported = await runExport({ modelPath: modelCopy, allocationPath: report.allocationPath, runPath: runFile }, new AbortController().signal);
    assert.deepEqual(exported.models.map((m) => path.basename(m.outPath)), ['dit-sample.999.qdq.onnx', 'dit-sample.0.qdq.onnx']);
    for (const model of exported.models) {
      assert.equal(model.exportedBytes, fs.statSync(model.outPath).size);
      assert.equal(model.originalBytes, fs.statSync(SAMPLE).size);
      const [session, original] = await Promise.all([ort.InferenceSession.create(model.outPath), ort.InferenceSession.create(SAMPLE)]);
      assert.deepEqual(session.inputNames, original.inputNames);
      assert.deepEqual(session.outputNames, original.outputNames);
      await Promise.all([session.release(), original.release()]);
      for (const db of Object.values(model.sqnrDb)) assert.ok(db !== null && db > 0, `${model.rangeLabel}: SQNR ${db}`);
    }
  });

  it('stops when cancelled', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(
      runSearch({ runPath: runFile, budget: '5bits', rangeCount: 1, refine: 0, outPath: path.join(dir, 'cancelled.alloc.json') }, () => undefined, controller.signal),
      (err: unknown) => err instanceof CancelledError || (err instanceof Error && /cancel|abort/i.test(err.message)),
    );
    assert.equal(fs.existsSync(path.join(dir, 'cancelled.alloc.json')), false);
  });

  it('refuses more ranges than the run has timesteps, naming the run', async () => {
    await assert.rejects(
      runSearch({ runPath: runFile, budget: '5bits', rangeCount: 3, refine: 0, outPath: path.join(dir, 'x.alloc.json') }, () => undefined, new AbortController().signal),
      (err: Error & { file?: string }) => err.file === runFile && err.message.includes('run.json') && /3 timestep ranges/.test(err.message),
    );
  });
});
