// The search panel's launch form: the quality target's dB → error conversion (against SQNR computed from a signal and
// its noise), the form's validity rule with its messages (the webview and the host share it), the budget text the
// engine reads back, and the engine's `search` method taking the form's pin pattern and settings on a real run of the
// sample (pinned layers stay in floating point, only the chosen settings appear).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runAnalysis } from '../../extension/engine/analysis/runner';
import { quantSettings } from '../../extension/engine/analysis/settings';
import { ModelError } from '../../extension/engine/errors';
import { loadAllocation } from '../../extension/engine/export/allocation';
import { parseBudget } from '../../extension/engine/search/problem';
import { runSearch } from '../../extension/engine/search/session';
import {
  budgetLabel,
  budgetText,
  DEFAULT_SEARCH_FORM,
  maxErrorForSqnrDb,
  searchFormProblem,
  searchFormWith,
  sqnrDbForMaxError,
  type SearchFormLimits,
} from '../../extension/features/search/searchForm';
import type { SearchForm, SearchParams } from '../../extension/protocol/searchPanel';
import { sampleSweep } from './sampleSweep';


/** A small deterministic generator (LCG) so the signals below do not depend on the engine's own PRNG. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

/** SQNR in dB of `signal` against `signal + noise`, the textbook way: 10·log10(Σs² / Σn²), in float64. */
function naiveSqnrDb(signal: number[], noise: number[]): number {
  let power = 0;
  let noisePower = 0;
  for (let i = 0; i < signal.length; i++) {
    power += signal[i]! * signal[i]!;
    noisePower += noise[i]! * noise[i]!;
  }
  return 10 * Math.log10(power / noisePower);
}

describe('quality target: minimum SQNR in dB → the engine\'s error target', () => {
  it('gives the relative noise power of a signal whose SQNR it is', () => {
    const random = lcg(7);
    for (const noiseScale of [0.5, 0.1, 0.03, 0.001, 1e-5]) {
      const signal = Array.from({ length: 4096 }, () => random() * 3);
      const noise = Array.from({ length: 4096 }, () => random() * noiseScale);
      const relativeNoisePower = noise.reduce((sum, n) => sum + n * n, 0) / signal.reduce((sum, s) => sum + s * s, 0);
      const db = naiveSqnrDb(signal, noise);
      const maxError = maxErrorForSqnrDb(db);
      assert.ok(Math.abs(maxError - relativeNoisePower) <= 1e-12 * relativeNoisePower, `${db} dB: ${maxError} against ${relativeNoisePower}`);
      assert.ok(Math.abs(sqnrDbForMaxError(maxError) - db) < 1e-9, `round trip at ${db} dB`);
    }
  });

  it('is a tenth of the noise power per 10 dB, and half at 3.0103 dB', () => {
    assert.ok(Math.abs(maxErrorForSqnrDb(10) - 0.1) < 1e-15);
    assert.ok(Math.abs(maxErrorForSqnrDb(20) - 0.01) < 1e-16);
    assert.ok(Math.abs(maxErrorForSqnrDb(30) - 0.001) < 1e-17);
    assert.ok(Math.abs(maxErrorForSqnrDb(10 * Math.log10(2)) - 0.5) < 1e-15);
    // Higher quality is a smaller allowed error.
    assert.ok(maxErrorForSqnrDb(40) < maxErrorForSqnrDb(25));
  });

  it('writes a budget the engine reads back as the same error target', () => {
    for (const db of [30, 25.5, 13, 0.5, 120, 200]) {
      const budget = parseBudget(budgetText({ budgetKind: 'minSqnrDb', budgetValue: db }));
      assert.equal(budget.kind, 'errorTarget');
      assert.equal((budget as { maxError: number }).maxError, maxErrorForSqnrDb(db), `${db} dB`);
    }
    assert.deepEqual(parseBudget(budgetText({ budgetKind: 'averageBits', budgetValue: 4.5 })), { kind: 'averageBits', bits: 4.5 });
    assert.deepEqual(parseBudget(budgetText({ budgetKind: 'sizeMB', budgetValue: 40 })), { kind: 'sizeMB', megabytes: 40 });
  });

  it('names files by the budget without characters file systems refuse', () => {
    assert.equal(budgetLabel({ budgetKind: 'minSqnrDb', budgetValue: 30 }), '30dB');
    assert.equal(budgetLabel({ budgetKind: 'minSqnrDb', budgetValue: 27.5 }), '27_5dB');
    assert.equal(budgetLabel({ budgetKind: 'averageBits', budgetValue: 4.5 }), '4_5bits');
    assert.equal(budgetLabel({ budgetKind: 'sizeMB', budgetValue: 40 }), '40MB');
  });
});

describe('searchFormWith: the launch form with overrides, checked against the run', () => {
  const limits: SearchFormLimits = { maxRanges: 2, settings: ['W4', 'W8', 'W4A8'], units: ['blocks.0.attn.qkv', 'blocks.0.mlp.fc1', 'final_layer.linear'] };
  const base: SearchForm = { ...DEFAULT_SEARCH_FORM, settings: ['W4', 'W8', 'W4A8'] };
  const refused = (overrides: Partial<SearchForm> | Record<string, unknown>, message: RegExp) => assert.throws(() => searchFormWith(base, overrides, limits), message);

  it('keeps the base where nothing is overridden, and takes a quality target, a pin and a subset of settings', () => {
    assert.deepEqual(searchFormWith(base, {}, limits), base);
    const form = searchFormWith(base, { budgetKind: 'minSqnrDb', budgetValue: 27.5, pin: 'FINAL_layer', settings: ['W8'] }, limits);
    assert.deepEqual(form, { ...base, budgetKind: 'minSqnrDb', budgetValue: 27.5, pin: 'FINAL_layer', settings: ['W8'] });
    assert.deepEqual(base.settings, ['W4', 'W8', 'W4A8'], 'the base is not changed');
  });

  it('refuses budgets the form could not hold', () => {
    refused({ budgetKind: 'bops' }, /^Error: The budget kind must be "averageBits", "sizeMB" or "minSqnrDb"\.$/);
    refused({ budgetValue: 0 }, /^Error: The budget must be a positive number\.$/);
    refused({ budgetKind: 'sizeMB', budgetValue: Number.NaN }, /The budget must be a positive number/);
    for (const db of [0, -3, 200.5, Number.POSITIVE_INFINITY, Number.NaN]) {
      refused({ budgetKind: 'minSqnrDb', budgetValue: db }, /^Error: The quality target must be a minimum SQNR above 0 and at most 200 dB\.$/);
    }
    assert.equal(searchFormWith(base, { budgetKind: 'minSqnrDb', budgetValue: 200 }, limits).budgetValue, 200);
  });

  it('refuses ranges and refinements out of bounds', () => {
    refused({ rangeCount: 3 }, /^Error: Timestep ranges must be a whole number from 1 to 2\.$/);
    refused({ rangeCount: 1.5 }, /Timestep ranges/);
    refused({ refine: -1 }, /^Error: Refine measurements must be a whole number ≥ 0\.$/);
  });

  it('needs at least one of the run\'s settings, and only the run\'s', () => {
    refused({ settings: [] }, /^Error: Choose at least one of the run's settings \(W4, W8, W4A8\) to search over\.$/);
    refused({ settings: 'W4' }, /Choose at least one/);
    refused({ settings: ['W4', 'W3'] }, /^Error: The run has no setting "W3" \(it has W4, W8, W4A8\)\.$/);
  });

  it('refuses an invalid pin pattern, and one that matches none of the run\'s layers, saying which', () => {
    refused({ pin: 'blocks.(0' }, /^Error: Pin layers: "blocks\.\(0" is not a valid regular expression \(.*Unterminated group.*\)\.$/);
    refused({ pin: '[' }, /Pin layers: "\[" is not a valid regular expression/);
    refused({ pin: 'embedder' }, /^Error: Pin layers: "embedder" matches none of the run's 3 layers\.$/);
    refused({ pin: 3 }, /^Error: Pin layers must be a regular expression \(empty: pin none\)\.$/);
    // Case-insensitive, as the CLI's --pin; empty pins none.
    assert.equal(searchFormProblem({ ...base, pin: 'MLP' }, limits), undefined);
    assert.equal(searchFormProblem({ ...base, pin: '' }, limits), undefined);
  });
});

describe('engine search with the form\'s quality target, pin and settings (sample)', () => {
  let dir: string;
  let runFile: string;
  const signal = new AbortController().signal;
  const params = (overrides: Partial<SearchParams>): SearchParams => ({
    runPath: runFile,
    budget: budgetText({ budgetKind: 'minSqnrDb', budgetValue: 20 }),
    rangeCount: 1,
    refine: 0,
    outPath: path.join(dir, 'out.alloc.json'),
    ...overrides,
  });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-search-form-'));
    runFile = path.join(dir, 'run.json');
    const run = await runAnalysis(
      sampleSweep(quantSettings({ weightBits: [2, 4, 8], activationBits: [], combine: false, groupSize: 0, activationMode: 'dynamic-token', activationSymmetric: false }), {
        timestep: { input: 't', values: [500] },
      }),
      { recordPath: runFile, threads: 1 },
    );
    assert.equal(run.status, 'complete');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps pinned layers in floating point, chooses only the given settings, and meets or reports the target', async () => {
    // Unpinned, the same search quantizes some of the layers the pin then keeps in floating point.
    const unpinned = await runSearch(params({ outPath: path.join(dir, 'unpinned.alloc.json'), settings: ['W4', 'W8'] }), () => undefined, signal);
    const unpinnedLayers = (await loadAllocation(unpinned.allocationPath)).ranges[0]!.layers;
    assert.ok(Object.entries(unpinnedLayers).some(([name, bits]) => /mlp\.fc2$/.test(name) && bits.weightBits < 16));

    const report = await runSearch(params({ pins: ['mlp\\.FC2$'], settings: ['W4', 'W8'] }), () => undefined, signal);
    const allocation = await loadAllocation(report.allocationPath);
    const layers = allocation.ranges[0]!.layers;
    const pinned = Object.keys(layers).filter((name) => /mlp\.fc2$/.test(name));
    assert.equal(pinned.length, 4, 'the sample has four blocks');
    for (const name of pinned) assert.equal(layers[name]!.weightBits, 16, `${name} is pinned`);
    const others = Object.entries(layers).filter(([name]) => !pinned.includes(name)).map(([, bits]) => bits.weightBits);
    assert.ok(others.every((bits) => bits === 4 || bits === 8 || bits === 16), `bits ${others.join(',')}`);
    assert.ok(others.some((bits) => bits < 16), 'the target is met with some layers quantized');
    assert.deepEqual(report.uniform.map((u) => u.label), ['uniform W4', 'uniform W8']);
    assert.deepEqual(report.budget, { kind: 'errorTarget', maxError: maxErrorForSqnrDb(20) });
    const sqnr = report.chosen.measured.sqnrDb;
    assert.ok(sqnr !== null);
    assert.ok(sqnr >= 20 || report.notes.some((note) => /misses the target/.test(note)), `measured ${sqnr} dB; notes: ${report.notes.join(' | ')}`);
    assert.ok(report.chosen.predicted.error <= maxErrorForSqnrDb(20) + 1e-15, 'the solver\'s pick is predicted to meet the target');
  });

  it('refuses an invalid pin pattern or one that matches no layer, naming the run', async () => {
    await assert.rejects(runSearch(params({ pins: ['fc2('] }), () => undefined, signal), (err: Error) => {
      assert.ok(err instanceof ModelError);
      assert.match(err.message, /pin "fc2\(" is not a valid regular expression \(.*Unterminated group\)/);
      assert.equal(err.file, runFile);
      return true;
    });
    await assert.rejects(runSearch(params({ pins: ['embedder$'] }), () => undefined, signal), /pin "embedder\$" matches none of the run's 25 layers/);
    await assert.rejects(runSearch(params({ settings: ['W6'] }), () => undefined, signal), /unknown setting "W6"/);
    await assert.rejects(runSearch(params({ pins: 'fc2' as unknown as string[] }), () => undefined, signal), /'pins' must be a list of strings/);
  });
});
