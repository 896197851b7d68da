// Search verified by measurement on the sample (weights W2…W8, one sample, timesteps 999 and 0): measured errors
// against rebuilt models run in separate onnxruntime sessions with a per-channel quantizer written here, the searched
// allocation against uniform ones, the refinement's guarantees, and `quantlens search` end to end.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { runAnalysis } from '../../extension/engine/analysis/runner';
import { quantSettings } from '../../extension/engine/analysis/settings';
import { graphIntRanges, loadCalibration, withTimestep } from '../../extension/engine/calib';
import { toOrtFeeds } from '../../extension/engine/calib/ortFeeds';
import { loadAllocation, validateAllocation } from '../../extension/engine/export/allocation';
import { openModel } from '../../extension/engine/model/open';
import { loadRun } from '../../extension/engine/runs/records';
import { problemFromRun } from '../../extension/engine/search/fromRun';
import { maxCostOf } from '../../extension/engine/search/problem';
import { measureSettingsFromRun, refine, searchAndVerify, withOptions, type RefineRange, type SearchVerifyResult } from '../../extension/engine/search/refine';
import { search } from '../../extension/engine/search/solver';
import { AllocationMeter, measureAllocation, type MeasureRange } from '../../extension/engine/search/verify';
import type { AnalysisRun } from '../../extension/protocol/analysis';
import type { LayerInfo, ValueInfo } from '../../extension/protocol/records';
import type { Allocation } from '../../extension/protocol/search';
import { quantlens } from './cliProcess';
import { naiveAsymmetricPerChannel, naiveSymmetricPerChannel } from './naiveQuant';
import { SAMPLE, sampleSweep } from './sampleSweep';

const TIMESTEPS = [999, 0];
const BUDGET = { kind: 'averageBits', bits: 5 } as const;

let dir: string;
let run: AnalysisRun;
let runFile: string;
let inputs: ValueInfo[];
let layers: LayerInfo[];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-search-verify-'));
  const opened = await openModel(SAMPLE);
  inputs = opened.summary.inputs;
  layers = opened.layers;
  await opened.close();
  runFile = path.join(dir, 'run.json');
  run = await runAnalysis(
    sampleSweep(quantSettings({ weightBits: [2, 3, 4, 6, 8], activationBits: [], combine: false, groupSize: 0, activationMode: 'dynamic-token', activationSymmetric: false }), {
      timestep: { input: 't', values: TIMESTEPS },
    }),
    { recordPath: runFile, threads: 1 },
  );
  assert.equal(run.status, 'complete');
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------------------------
// The independent computation: the sample's weights quantized by a plain loop, written into a copy of the model.

/** The output-channel axis of each layer's weight, read from the graph: Conv [out, in, …], Gemm by transB, MatMul [in, out]. */
function weightAxes(graph: onnx.IGraphProto): Map<string, { weight: string; axis: number }> {
  const axes = new Map<string, { weight: string; axis: number }>();
  for (const node of graph.node ?? []) {
    const weight = node.input?.[1];
    if (!node.name || !weight || !(graph.initializer ?? []).some((t) => t.name === weight)) continue;
    if (node.opType === 'Conv') axes.set(node.name, { weight, axis: 0 });
    if (node.opType === 'MatMul') axes.set(node.name, { weight, axis: 1 });
    if (node.opType === 'Gemm') axes.set(node.name, { weight, axis: node.attribute?.some((a) => a.name === 'transB' && Number(a.i) === 1) ? 0 : 1 });
  }
  return axes;
}

/** The sample with every weight of `bits` (layer name → weight bits; 16 = left alone) replaced by its quantized copy. */
function quantizedSample(bits: Record<string, number>, symmetric: boolean): Uint8Array {
  const model = onnx.ModelProto.decode(fs.readFileSync(SAMPLE));
  const graph = model.graph as onnx.GraphProto;
  const axes = weightAxes(graph);
  for (const [layer, b] of Object.entries(bits)) {
    if (b >= 16) continue;
    const found = axes.get(layer);
    assert.ok(found, `layer ${layer} is a node of the sample`);
    const tensor = graph.initializer.find((t) => t.name === found.weight) as onnx.TensorProto;
    const raw = tensor.rawData;
    const values = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    const quantized = (symmetric ? naiveSymmetricPerChannel : naiveAsymmetricPerChannel)(values, tensor.dims.map(Number), found.axis, b);
    tensor.rawData = new Uint8Array(quantized.buffer);
  }
  return onnx.ModelProto.encode(model).finish();
}

interface Independent {
  error: number;
  mse: number;
}

/** Relative noise power per timestep over the samples, mean over each range's timesteps, summed over ranges. */
async function independentError(ranges: { timesteps: number[]; bits: Record<string, number> }[], symmetric = true): Promise<Independent> {
  // The meter's feeds: y drawn from the rows of the class embedding it indexes, as graphIntRanges says.
  const intRanges = graphIntRanges(onnx.ModelProto.decode(fs.readFileSync(SAMPLE)).graph as onnx.IGraphProto, inputs);
  const calibration = await loadCalibration(SAMPLE, inputs, { samples: 1, batch: 1, seed: 0, dims: {}, intRanges, timestep: { input: 't', values: TIMESTEPS } });
  const tInput = inputs.find((input) => input.name === 't') as ValueInfo;
  const original = await ort.InferenceSession.create(SAMPLE, { intraOpNumThreads: 1 });
  let error = 0;
  let squares = 0;
  let count = 0;
  for (const range of ranges) {
    const quantized = await ort.InferenceSession.create(quantizedSample(range.bits, symmetric), { intraOpNumThreads: 1 });
    let rangeError = 0;
    for (const t of range.timesteps) {
      let signal = 0;
      let noise = 0;
      for (const sample of calibration.samples) {
        const feeds = toOrtFeeds(withTimestep(sample, 't', t, tInput));
        const y = (await original.run(feeds)).out.data as Float32Array;
        const q = (await quantized.run(feeds)).out.data as Float32Array;
        for (let i = 0; i < y.length; i++) {
          signal += y[i] * y[i];
          noise += (y[i] - q[i]) ** 2;
        }
        squares += noise;
        count += y.length;
      }
      rangeError += noise / signal;
    }
    error += rangeError / range.timesteps.length;
    await quantized.release();
  }
  await original.release();
  // noise accumulates per timestep; the pooled MSE is its sum over every run.
  return { error, mse: squares / count };
}

function bitsOf(range: MeasureRange): Record<string, number> {
  return Object.fromEntries(Object.entries(range.layers).map(([name, layer]) => [name, layer.weightBits]));
}

function close(actual: number, expected: number, relative: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= relative * Math.abs(expected), `${what}: ${actual} against ${expected}`);
}

// ---------------------------------------------------------------------------------------------------------------

describe('search verified by measurement', () => {
  let result: SearchVerifyResult;

  before(async () => {
    result = await searchAndVerify(run, BUDGET, { model: SAMPLE, refine: 4, threads: 1 });
  });

  it('measures the searched allocation as a model rebuilt with its quantized weights does', async () => {
    const range = result.allocation.ranges[0];
    assert.deepEqual(range.timesteps, TIMESTEPS);
    const independent = await independentError([{ timesteps: TIMESTEPS, bits: bitsOf(range) }]);
    close(result.chosen.measured.error, independent.error, 1e-4, 'measured error');
    close(result.chosen.measured.mse, independent.mse, 1e-4, 'measured MSE');
    close(result.chosen.measured.sqnrDb, -10 * Math.log10(independent.error), 1e-5, 'measured SQNR');
    assert.equal(result.chosen.measured.runs, 2);
    // The file carries what was measured.
    assert.equal(result.allocation.measured?.error, result.chosen.measured.error);
    validateAllocation(JSON.parse(JSON.stringify(result.allocation)), 'alloc.json');
  });

  it('measures per timestep range, each range with its own bits, and the allocation file as given', async () => {
    // Mixed bits that differ between the two ranges; a few layers left in floating point.
    const cycle = [2, 3, 4, 6, 8, 16];
    const ranges = TIMESTEPS.map((t, r) => ({
      timesteps: [t],
      bits: Object.fromEntries(layers.map((layer, i) => [layer.name, cycle[(i + 3 * r) % cycle.length]])),
    }));
    const measureRanges: MeasureRange[] = ranges.map((range) => ({
      timesteps: range.timesteps,
      label: String(range.timesteps[0]),
      layers: Object.fromEntries(Object.entries(range.bits).map(([name, weightBits]) => [name, { weightBits, activationBits: null }])),
    }));
    const measured = await measureAllocation(SAMPLE, measureRanges, { ...measureSettingsFromRun(run, 1) });
    const independent = await independentError(ranges);
    close(measured.error, independent.error, 1e-4, 'two-range error');
    close(measured.mse, independent.mse, 1e-4, 'two-range MSE');
    assert.deepEqual(measured.ranges.map((range) => range.label), ['999', '0']);
    console.log(`two ranges of mixed bits: measured ${measured.error.toPrecision(6)}, independent ${independent.error.toPrecision(6)}`);

    // An allocation file: its own granularity and activation mode are used.
    const file = { ...result.allocation, ranges: measureRanges.map((range) => ({ ...range, label: range.label as string })) };
    const fromFile = await measureAllocation(SAMPLE, validateAllocation(file, 'two.json'), measureSettingsFromRun(run, 1));
    assert.equal(fromFile.error, measured.error);
  });

  it('beats uniform W4 (which costs less) at 5 average bits; the uniform allocations that fit are marked', () => {
    const maxCost = result.ranges[0].result.maxCost as number;
    assert.ok(result.chosen.predicted.cost <= maxCost);
    const uniform = new Map(result.uniform.map((baseline) => [baseline.setting, baseline]));
    assert.deepEqual([...uniform.keys()], ['W2', 'W3', 'W4', 'W6', 'W8']);
    assert.deepEqual([...uniform.values()].map((baseline) => baseline.fits), [true, true, true, false, false]);
    const w4 = uniform.get('W4')!;
    assert.ok(w4.predicted.cost < result.chosen.predicted.cost);
    // The best uniform allocation within the budget is W4; the searched one measures less noise.
    const fitting = result.uniform.filter((baseline) => baseline.fits);
    const best = fitting.reduce((a, b) => (b.measured.error < a.measured.error ? b : a));
    assert.equal(best.setting, 'W4');
    assert.ok(result.chosen.measured.error < w4.measured.error, `searched ${result.chosen.measured.error} against W4 ${w4.measured.error}`);
    // Uniform W6 costs more than the budget allows; it is also measured, for reference.
    assert.ok(uniform.get('W6')!.predicted.cost > maxCost);
    for (const baseline of result.uniform) {
      console.log(
        `uniform ${baseline.setting}${baseline.fits ? '' : ' (over budget)'}: ${(baseline.predicted.cost / result.ranges[0].problem.totalParams).toFixed(3)} bits, ` +
          `predicted ${baseline.predicted.error.toPrecision(4)}, measured ${baseline.measured.error.toPrecision(4)} (${baseline.measured.sqnrDb.toFixed(2)} dB)`,
      );
    }
    console.log(
      `searched: ${(result.chosen.predicted.cost / result.ranges[0].problem.totalParams).toFixed(3)} bits, predicted ${result.chosen.predicted.error.toPrecision(4)}, ` +
        `measured ${result.chosen.measured.error.toPrecision(4)} (${result.chosen.measured.sqnrDb.toFixed(2)} dB); solver's point measured ${result.solved.measured.error.toPrecision(4)}`,
    );
    assert.match(result.notes[0], /measures .* dB against .* dB for uniform W4/);
  });

  it('refinement keeps the budget and never ends worse than it started', async () => {
    assert.ok(result.chosen.measured.error <= result.solved.measured.error);
    assert.equal(result.refinement.length, 4);
    for (const step of result.refinement) assert.ok(step.predicted.cost <= (result.ranges[0].result.maxCost as number));

    // From uniform W4 with a budget of 5 bits there is room to raise layers: refinement finds moves that help.
    const problem = problemFromRun(run, { layers });
    const maxCost = maxCostOf(problem, BUDGET);
    const start = search(problem, { kind: 'averageBits', bits: 4 }).allocation;
    const w4 = withOptions(problem, start, new Map(problem.units.map((_, i) => [i, 'W4'])));
    const ranges: RefineRange[] = [{ label: '999-0', timesteps: TIMESTEPS, problem, allocation: w4, maxCost }];
    const meter = await AllocationMeter.open(SAMPLE, measureSettingsFromRun(run, 1), { activations: false });
    try {
      const measureOne = async (allocation: Allocation) =>
        (await meter.measure([{ timesteps: TIMESTEPS, layers: Object.fromEntries(allocation.choices.map((c) => [c.unit, { weightBits: c.weightBits, activationBits: null }])) }])).error;
      const startMeasured = await meter.measure([{ timesteps: TIMESTEPS, layers: Object.fromEntries(w4.choices.map((c) => [c.unit, { weightBits: 4, activationBits: null }])) }]);
      const refined = await refine(meter, ranges, startMeasured, { measurements: 5 });
      assert.equal(refined.steps.length, 5);
      assert.ok(refined.steps.some((step) => step.accepted), 'some raise within the budget lowers the measured error');
      let best = startMeasured.error;
      for (const step of refined.steps) {
        assert.ok(step.predicted.cost <= maxCost, `step ${step.index} stays within the budget`);
        if (step.accepted) {
          assert.ok(step.measured < best);
          best = step.measured;
        } else {
          assert.ok(step.measured >= best);
        }
      }
      assert.ok(refined.allocations[0].cost <= maxCost);
      assert.equal(refined.measured.error, best);
      assert.ok(refined.measured.error < startMeasured.error);
      // What refine reports is what the allocation measures.
      assert.equal(await measureOne(refined.allocations[0]), refined.measured.error);
      console.log(`refine from uniform W4: ${startMeasured.error.toPrecision(4)} → ${refined.measured.error.toPrecision(4)} in ${refined.steps.length} measurements`);
    } finally {
      await meter.close();
    }
  });
});

describe('search for an error target', () => {
  it('picks the cheapest front point predicted to meet it, measures it, and marks the uniform allocations that meet it measured', async () => {
    // A target between uniform W4's and W6's predicted error: the answer must cost less than W6.
    const probe = await searchAndVerify(run, BUDGET, { model: SAMPLE, threads: 1, refine: 0 });
    const w6 = probe.uniform.find((baseline) => baseline.setting === 'W6')!;
    const maxError = w6.predicted.error * 1.5;
    const result = await searchAndVerify(run, { kind: 'errorTarget', maxError }, { model: SAMPLE, threads: 1, refine: 2 });
    const front = result.ranges[0].result.front;
    // Independently: the cheapest point of the front whose predicted error is within the target.
    const cheapest = front.filter((point) => point.error <= maxError).reduce((a, b) => (b.cost < a.cost ? b : a));
    assert.equal(result.solved.predicted.cost, cheapest.cost);
    assert.ok(result.solved.predicted.error <= maxError);
    assert.ok(result.chosen.predicted.cost <= result.solved.predicted.cost, 'refinement never raises the cost');
    assert.ok(result.chosen.measured.error <= result.solved.measured.error, 'refinement never ends worse');
    assert.ok(result.solved.predicted.cost < w6.predicted.cost);
    for (const baseline of result.uniform) {
      assert.equal(baseline.fits, baseline.measured.ranges.every((range) => range.error <= maxError), baseline.setting);
    }
    assert.match(result.notes[0], /the cheapest predicted to meet the error target .* (meets|misses) the target/);
    assert.deepEqual(result.allocation.budget, { kind: 'errorTarget', maxError });
  });

  it('quantlens search takes "error<=x" and writes the allocation with its target', async () => {
    const out = path.join(dir, 'target.json');
    const child = quantlens('search', runFile, '--budget', 'error<=0.05', '--threads', '1', '--out', out);
    assert.equal(child.code, 0, child.stderr);
    assert.match(child.stdout, /meet the error target 0\.05/);
    assert.deepEqual((await loadAllocation(out)).budget, { kind: 'errorTarget', maxError: 0.05 });
  });
});

describe('activations at their bits, all layers at once', () => {
  it('uniform allocations measure what the sensitivity run\'s "everything at once" rows measured, static activation scales included', async () => {
    const actRun = await runAnalysis(
      sampleSweep(quantSettings({ weightBits: [4], activationBits: [6], combine: true, groupSize: 0, activationMode: 'static-minmax', activationSymmetric: false }), {
        calibration: { samples: 1, batch: 1, seed: 2, dims: {} },
        timestep: { input: 't', values: TIMESTEPS },
      }),
      { recordPath: path.join(dir, 'act-run.json'), threads: 1 },
    );
    const verified = await searchAndVerify(actRun, { kind: 'averageBits', bits: 6 }, { threads: 1 });
    assert.deepEqual(verified.uniform.map((baseline) => baseline.setting), ['W4', 'W4A6']);
    assert.equal(verified.allocation.activation.mode, 'static-minmax');
    for (const baseline of verified.uniform) {
      for (const { timestep, error } of baseline.measured.ranges[0].perTimestep) {
        const row = actRun.rows.find((r) => r.unit === '*' && r.setting === baseline.setting && r.timestep === timestep);
        assert.ok(row);
        close(error, 10 ** (-row.primary.sqnrDb / 10), 1e-6, `uniform ${baseline.setting} at t=${timestep}`);
      }
    }
    const w4a6 = verified.uniform[1].measured;
    console.log(`uniform W4A6 (static min/max): measured ${w4a6.error.toPrecision(4)} (${w4a6.sqnrDb.toFixed(2)} dB); chosen at 6 bits ${verified.chosen.measured.sqnrDb.toFixed(2)} dB`);
  });
});

describe('quantlens search', () => {
  it('searches a run, prints predicted against measured and the uniform baselines, writes a valid allocation', async () => {
    const out = path.join(dir, 'alloc.json');
    const child = quantlens('search', runFile, '--budget', '5bits', '--refine', '2', '--pin', '^final_layer', '--tie', 'blocks\\.(\\d+)\\.mlp\\.fc[12]$', '--threads', '1', '--out', out);
    assert.equal(child.code, 0, child.stderr);
    assert.match(child.stdout, /^front: \d+ points from .* average bits to 16 average bits/m);
    // Pinned layers stay at 16 bits in the uniform allocations too.
    assert.match(child.stdout, /uniform W4 +4\.33 average bits/);
    assert.match(child.stdout, /uniform W6 \(over budget\)/);
    assert.match(child.stdout, /refinement: 2 measurements/);
    const allocation = await loadAllocation(out);
    assert.equal(allocation.run, run.id);
    assert.deepEqual(allocation.budget, BUDGET);
    const layersOf = allocation.ranges[0].layers;
    // The error printed and saved is what the allocation's weights measure, rebuilt here.
    close(allocation.measured?.error as number, (await independentError([{ timesteps: TIMESTEPS, bits: bitsOf(allocation.ranges[0]) }])).error, 1e-4, 'measured error');
    assert.deepEqual(Object.keys(layersOf).sort(), layers.map((layer) => layer.name).sort());
    assert.equal(layersOf['final_layer.linear'].weightBits, 16);
    assert.equal(layersOf['final_layer.adaLN_modulation.1'].weightBits, 16);
    for (let block = 0; block < 4; block++) assert.equal(layersOf[`blocks.${block}.mlp.fc1`].weightBits, layersOf[`blocks.${block}.mlp.fc2`].weightBits);
    const params = new Map(layers.map((layer) => [layer.name, layer.params]));
    const bits = Object.entries(layersOf).reduce((sum, [name, layer]) => sum + layer.weightBits * (params.get(name) ?? 0), 0);
    const total = layers.reduce((sum, layer) => sum + layer.params, 0);
    assert.ok(bits / total <= 5, `average bits ${bits / total}`);
  });

  it('sweeps a model given instead of a run, with per-timestep ranges', async () => {
    const out = path.join(dir, 'from-model.json');
    const child = quantlens('search', SAMPLE, '--budget', '6bits', '--weights', '4,8', '--samples', '1', '--timesteps', '2', '--per-timestep-ranges', '2', '--threads', '1', '--out', out);
    assert.equal(child.code, 0, child.stderr);
    assert.match(child.stderr, /search: sensitivity sweep of dit-sample\.onnx first/);
    const allocation = await loadAllocation(out);
    assert.deepEqual(allocation.ranges.map((range) => range.label), ['999', '0']);
    // The sweep's record is saved beside the allocation, which names it.
    const sweep = await loadRun(path.join(dir, 'from-model.run.json'));
    assert.equal(sweep.status, 'complete');
    assert.equal(allocation.run, sweep.id);
    assert.deepEqual(sweep.plan.settings, ['W4', 'W8']);
    assert.deepEqual(sweep.plan.timesteps, TIMESTEPS);
  });

  it('--weight-asym sweeps with asymmetric weights; the allocation says so and measures as asymmetric rebuilt weights do', async () => {
    const out = path.join(dir, 'asym.json');
    const child = quantlens('search', SAMPLE, '--budget', '6bits', '--weights', '4,8', '--weight-asym', '--samples', '1', '--timesteps', '2', '--threads', '1', '--out', out);
    assert.equal(child.code, 0, child.stderr);
    assert.match(child.stderr, /search: sensitivity sweep of dit-sample\.onnx first \(weights W4, W8 asymmetric;/);
    const sweep = JSON.parse(fs.readFileSync(path.join(dir, 'asym.run.json'), 'utf8')) as AnalysisRun;
    assert.ok(sweep.settings.settings.every((setting) => setting.weight?.symmetric === false));
    const allocation = await loadAllocation(out);
    assert.equal(allocation.weight.symmetric, false);
    const range = allocation.ranges[0];
    assert.deepEqual(range.timesteps, TIMESTEPS);
    const measured = allocation.measured?.error as number;
    close(measured, (await independentError([{ timesteps: TIMESTEPS, bits: bitsOf(range) }], false)).error, 1e-4, 'asymmetric measured error');
    const asSymmetric = (await independentError([{ timesteps: TIMESTEPS, bits: bitsOf(range) }])).error;
    assert.ok(Math.abs(asSymmetric - measured) > 1e-3 * measured, `the symmetric quantizer measures otherwise (${asSymmetric} vs ${measured})`);
    // Measured again from the file: its symmetry, not the run's, decides.
    const again = await measureAllocation(SAMPLE, allocation, measureSettingsFromRun(run, 1));
    close(again.error, measured, 1e-9, 'the file measured again');
  });

  it('sweeps the LLM sample given instead of a run: --dims sizes its sequence, without it the error says how', async () => {
    const llm = path.resolve(__dirname, '..', '..', '..', 'resources', 'sample', 'llm-sample.onnx');
    const out = path.join(dir, 'llm.json');
    const unsized = quantlens('search', llm, '--budget', '6bits', '--weights', '4,8', '--samples', '1', '--out', out);
    assert.equal(unsized.code, 2);
    assert.match(unsized.stderr, /llm-sample\.onnx: .*symbolic dim "seq" .*--dims/);
    const child = quantlens('search', llm, '--budget', '6bits', '--weights', '4,8', '--samples', '1', '--dims', 'seq=8', '--threads', '1', '--out', out);
    assert.equal(child.code, 0, child.stderr);
    const allocation = await loadAllocation(out);
    const opened = await openModel(llm);
    await opened.close();
    assert.deepEqual(Object.keys(allocation.ranges[0]!.layers).sort(), opened.layers.map((layer) => layer.name).sort());
    assert.ok(opened.layers.some((layer) => layer.name === 'lm_head'));
    const run = JSON.parse(fs.readFileSync(path.join(dir, 'llm.run.json'), 'utf8')) as { settings: { calibration: { dims: Record<string, number> } } };
    assert.deepEqual(run.settings.calibration.dims, { seq: 8 });
  });

  it('refuses an infeasible budget, an unreadable budget and a pattern that matches nothing, exiting non-zero', () => {
    const out = path.join(dir, 'never.json');
    const infeasible = quantlens('search', runFile, '--budget', '1.5bits', '--out', out);
    assert.equal(infeasible.code, 2);
    assert.match(infeasible.stderr, /dit-sample\.onnx: budget of 1\.5 average bits is below the cheapest allocation, 2 average bits/);
    const megabytes = quantlens('search', runFile, '--budget', '0.1MB', '--out', out);
    assert.equal(megabytes.code, 2);
    assert.match(megabytes.stderr, /below the cheapest allocation/);
    const unreadable = quantlens('search', runFile, '--budget', 'five bits', '--out', out);
    assert.notEqual(unreadable.code, 0);
    assert.match(unreadable.stderr, /cannot read budget "five bits"/);
    const nothing = quantlens('search', runFile, '--budget', '5bits', '--pin', 'no_such_layer', '--out', out);
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /--pin "no_such_layer" matches none of the run's 25 layers/);
    assert.ok(!fs.existsSync(out));
  });
});
