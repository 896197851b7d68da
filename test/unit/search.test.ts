// The bit-allocation solver against brute force (every allocation enumerated) on small seeded instances: same front,
// same optimum at every budget, ties and pins kept, budgets never exceeded; the Lagrangian sweep's gap and bound; and
// problems built from a hand-made sensitivity run.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { AnalysisRun, SensitivityRow } from '../../extension/protocol/analysis';
import type { LayerInfo } from '../../extension/protocol/records';
import { FULL_PRECISION_OPTION, type SearchProblem, type SearchUnit } from '../../extension/protocol/search';
import { problemFromRun, problemsPerTimestepRange, splitTimesteps } from '../../extension/engine/search/fromRun';
import { parseBudget, SearchError } from '../../extension/engine/search/problem';
import { search, solveFront } from '../../extension/engine/search/solver';
import { seededRandom } from './naiveWeightStats';

function randomProblem(random: () => number, layers: number, options: number, integerCosts: boolean): SearchProblem {
  const units: SearchUnit[] = [];
  for (let l = 0; l < layers; l++) {
    units.push({
      name: `layer${l}`,
      params: 1,
      options: Array.from({ length: options }, (_, o) => ({
        id: `o${o}`,
        weightBits: o + 2,
        activationBits: null,
        cost: integerCosts ? Math.floor(random() * 21) : random() * 20,
        // Some exact ties in error, so tie-breaking is exercised too.
        error: random() < 0.1 ? 1 : random() * 10,
      })),
    });
  }
  return { source: 'random.json', costUnit: 'bops', units, ties: [], pins: {}, fixedCost: integerCosts ? 7 : 0.5, totalParams: layers };
}

interface Enumerated {
  cost: number;
  error: number;
  ids: string[];
}

/** Every allocation that keeps the ties and pins, summed unit by unit in order. */
function enumerate(problem: SearchProblem): Enumerated[] {
  const all: Enumerated[] = [];
  const choice = new Array<number>(problem.units.length).fill(0);
  for (;;) {
    const ids = choice.map((o, u) => problem.units[u].options[o].id);
    const byName = new Map(problem.units.map((unit, u) => [unit.name, ids[u]]));
    const tiesKept = problem.ties.every((tie) => tie.every((name) => byName.get(name) === byName.get(tie[0])));
    const pinsKept = Object.entries(problem.pins).every(([name, id]) => byName.get(name) === id);
    if (tiesKept && pinsKept) {
      let cost = 0;
      let error = 0;
      choice.forEach((o, u) => {
        cost += problem.units[u].options[o].cost;
        error += problem.units[u].options[o].error;
      });
      all.push({ cost: cost + problem.fixedCost, error, ids });
    }
    let u = 0;
    while (u < choice.length && ++choice[u] === problem.units[u].options.length) choice[u++] = 0;
    if (u === choice.length) return all;
  }
}

/** Cost strictly up, error strictly down. */
function paretoOf(all: Enumerated[]): Enumerated[] {
  const sorted = [...all].sort((a, b) => a.cost - b.cost || a.error - b.error);
  const front: Enumerated[] = [];
  for (const point of sorted) if (front.length === 0 || point.error < front[front.length - 1].error) front.push(point);
  return front;
}

function bestWithin(all: Enumerated[], maxCost: number): number {
  return Math.min(...all.filter((a) => a.cost <= maxCost).map((a) => a.error));
}

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

/** What an allocation's choices add up to, from the problem's own options. */
function recount(problem: SearchProblem, ids: string[]): { cost: number; error: number } {
  let cost = 0;
  let error = 0;
  ids.forEach((id, u) => {
    const option = problem.units[u].options.find((o) => o.id === id)!;
    cost += option.cost;
    error += option.error;
  });
  return { cost: cost + problem.fixedCost, error };
}

test('integer costs: the front is the brute-force Pareto front, and every budget gets the brute-force optimum', () => {
  const random = seededRandom(11);
  for (let instance = 0; instance < 150; instance++) {
    const problem = randomProblem(random, 6, 3, true);
    const all = enumerate(problem);
    const expected = paretoOf(all);
    const front = solveFront(problem);
    assert.equal(front.grid.exact, true);
    assert.deepEqual(front.points.map((p) => [p.cost, p.error]), expected.map((p) => [p.cost, p.error]), `instance ${instance}`);
    front.points.forEach((point, index) => {
      const allocation = front.allocationAt(index);
      assert.deepEqual(recount(problem, allocation.choices.map((c) => c.option)), { cost: point.cost, error: point.error });
    });
    for (let budget = expected[0].cost; budget <= expected[expected.length - 1].cost + 1; budget++) {
      const result = search(problem, { kind: 'bops', bops: budget });
      assert.equal(result.allocation.error, bestWithin(all, budget), `instance ${instance}, budget ${budget}`);
      assert.ok(recount(problem, result.allocation.choices.map((c) => c.option)).cost <= budget);
    }
  }
});

test('the front is monotone and no point exceeds the budget that picks it, also on rounded grids', () => {
  const random = seededRandom(12);
  for (let instance = 0; instance < 60; instance++) {
    const problem = randomProblem(random, 6, 4, false);
    const all = enumerate(problem);
    const front = solveFront(problem, { gridCells: 8 + Math.floor(random() * 40) });
    assert.equal(front.grid.exact, false);
    for (let i = 1; i < front.points.length; i++) {
      assert.ok(front.points[i].cost > front.points[i - 1].cost, 'cost strictly up');
      assert.ok(front.points[i].error < front.points[i - 1].error, 'error strictly down');
    }
    const cheapest = Math.min(...all.map((a) => a.cost));
    const dearest = Math.max(...all.map((a) => a.cost));
    for (let k = 0; k <= 20; k++) {
      const budget = cheapest + ((dearest - cheapest) * k) / 20;
      const { index, lagrangian } = front.pick({ kind: 'bops', bops: budget });
      const allocation = front.allocationAt(index);
      const counted = recount(problem, allocation.choices.map((c) => c.option));
      assert.ok(counted.cost <= budget, `cost ${counted.cost} over budget ${budget}`);
      close(counted.error, allocation.error, 'allocation error');
      const optimum = bestWithin(all, budget);
      assert.ok(allocation.error >= optimum - 1e-12, 'never better than the optimum');
      // What rounding may cost: no worse than the optimum with `slack` less budget.
      assert.ok(allocation.error <= bestWithin(all, budget - front.grid.slack) + 1e-12, 'within the stated slack');
      assert.ok(lagrangian.lowerBound <= optimum + 1e-9, 'the LP bound is below the optimum');
      assert.ok(lagrangian.gap >= 0);
    }
  }
});

test('tied layers take one option; pinned layers keep theirs; both match brute force', () => {
  const random = seededRandom(13);
  for (let instance = 0; instance < 80; instance++) {
    const problem = randomProblem(random, 6, 3, true);
    problem.ties = [['layer0', 'layer3'], ['layer3', 'layer5'], ['layer1', 'layer2']];
    if (instance % 2 === 0) problem.pins = { layer4: 'o1', layer2: 'o0' };
    const all = enumerate(problem);
    const expected = paretoOf(all);
    const front = solveFront(problem);
    assert.equal(front.grid.items, 3, 'tie sets {0, 3, 5}, {1, 2} and layer 4');
    assert.equal(front.points.length, expected.length);
    front.points.forEach((point, index) => {
      assert.equal(point.cost, expected[index].cost);
      close(point.error, expected[index].error, 'front error');
      const ids = front.allocationAt(index).choices.map((c) => c.option);
      assert.equal(ids[0], ids[3]);
      assert.equal(ids[3], ids[5]);
      assert.equal(ids[1], ids[2]);
      if (instance % 2 === 0) assert.deepEqual([ids[4], ids[2]], ['o1', 'o0']);
    });
  }
});

test('error targets get the cheapest allocation meeting them', () => {
  const random = seededRandom(14);
  for (let instance = 0; instance < 60; instance++) {
    const problem = randomProblem(random, 5, 4, true);
    const all = enumerate(problem);
    for (const point of paretoOf(all)) {
      for (const target of [point.error, point.error * 1.0001 + 1e-6]) {
        const result = search(problem, { kind: 'errorTarget', maxError: target });
        const cheapest = Math.min(...all.filter((a) => a.error <= target).map((a) => a.cost));
        assert.equal(result.allocation.cost, cheapest);
        assert.ok(result.allocation.error <= target);
        assert.ok(result.lagrangian.gap >= 0 && result.lagrangian.lowerBound <= cheapest + 1e-9);
      }
    }
  }
});

/** Vertices of the lower convex hull of the brute-force Pareto front (collinear points are not vertices). */
function hullVertices(front: Enumerated[]): Enumerated[] {
  const hull: Enumerated[] = [];
  for (const p of front) {
    while (hull.length >= 2) {
      const [a, b] = [hull[hull.length - 2], hull[hull.length - 1]];
      if ((b.error - a.error) * (p.cost - b.cost) < (p.error - b.error) * (b.cost - a.cost)) break;
      hull.pop();
    }
    hull.push(p);
  }
  return hull;
}

test('the Lagrangian sweep: no gap at convex-hull vertices, a reported gap where it misses the optimum', () => {
  const random = seededRandom(15);
  for (let instance = 0; instance < 80; instance++) {
    const problem = randomProblem(random, 6, 3, true);
    const all = enumerate(problem);
    for (const vertex of hullVertices(paretoOf(all))) {
      const { allocation, lagrangian } = search(problem, { kind: 'bops', bops: vertex.cost });
      assert.equal(allocation.error, vertex.error);
      close(lagrangian.gap, 0, `gap at vertex cost ${vertex.cost}`);
      close(lagrangian.point.error, vertex.error, 'hull point');
      close(lagrangian.lowerBound, vertex.error, 'LP bound at a vertex');
    }
  }
  // Upgrading A saves the most per unit of cost but does not fit; B's smaller upgrade does, and the sweep never tries it.
  const problem: SearchProblem = {
    source: 'gap.json',
    costUnit: 'bops',
    units: [
      { name: 'A', params: 1, options: [{ id: 'lo', weightBits: 4, activationBits: null, cost: 0, error: 10 }, { id: 'hi', weightBits: 8, activationBits: null, cost: 10, error: 0 }] },
      { name: 'B', params: 1, options: [{ id: 'lo', weightBits: 4, activationBits: null, cost: 0, error: 5 }, { id: 'hi', weightBits: 8, activationBits: null, cost: 4, error: 4 }] },
    ],
    ties: [],
    pins: {},
    fixedCost: 0,
    totalParams: 2,
  };
  const result = search(problem, { kind: 'bops', bops: 9 });
  assert.deepEqual(result.allocation.choices.map((c) => c.option), ['lo', 'hi']);
  assert.equal(result.allocation.error, 14);
  assert.equal(result.lagrangian.point.error, 15);
  assert.equal(result.lagrangian.gap, 1);
  assert.equal(result.lagrangian.lowerBound, 15 - 9 * 1);
  assert.deepEqual(result.lagrangian.hull.map((p) => [p.cost, p.error]), [[0, 15], [10, 5], [14, 4]]);
});

test('1,000 layers × 6 options: budgets kept, and the chosen point close to the LP bound that certifies it', () => {
  const random = seededRandom(17);
  const bits = [2, 3, 4, 6, 8, 16];
  const units: SearchUnit[] = Array.from({ length: 1000 }, (_, l) => {
    const params = 10_000 + Math.floor(random() * 1_000_000);
    const sensitivity = random() * 10;
    return {
      name: `blocks.${l}.fc`,
      params,
      options: bits.map((b) => ({ id: `W${b}`, weightBits: b, activationBits: null, cost: params * b, error: b === 16 ? 0 : sensitivity * 4 ** -b * (0.5 + random()) })),
    };
  });
  const totalParams = units.reduce((sum, unit) => sum + unit.params, 0);
  const problem: SearchProblem = { source: 'big.json', costUnit: 'bits', units, ties: [], pins: {}, fixedCost: 0, totalParams };
  const front = solveFront(problem, { gridCells: 4096 });
  assert.equal(front.grid.exact, false);
  for (let i = 1; i < front.points.length; i++) assert.ok(front.points[i].cost > front.points[i - 1].cost && front.points[i].error < front.points[i - 1].error);
  for (const average of [2.5, 3, 4, 5, 8]) {
    const { index, maxCost, lagrangian } = front.pick({ kind: 'averageBits', bits: average });
    const allocation = front.allocationAt(index);
    const counted = recount(problem, allocation.choices.map((c) => c.option));
    assert.ok(maxCost !== null && counted.cost <= maxCost, `${average} bits`);
    close(counted.error, allocation.error, 'allocation error');
    assert.ok(lagrangian.lowerBound <= allocation.error && allocation.error - lagrangian.lowerBound < 0.01 * allocation.error, `${average} bits: ${allocation.error} vs bound ${lagrangian.lowerBound}`);
  }
});

test('more than 256 options per layer', () => {
  const optionsOf = (weight: number) =>
    Array.from({ length: 300 }, (_, o) => ({ id: `o${o}`, weightBits: 8, activationBits: null, cost: o, error: weight * (300 - o) ** 2 }));
  const problem: SearchProblem = {
    source: 'wide.json',
    costUnit: 'bops',
    units: [{ name: 'a', params: 1, options: optionsOf(1) }, { name: 'b', params: 1, options: optionsOf(2) }],
    ties: [],
    pins: {},
    fixedCost: 0,
    totalParams: 2,
  };
  // Least 40² + 2·20² with 40 + 20 ≥ 600 − 540: options 260 and 280, past what one byte can index.
  const result = search(problem, { kind: 'bops', bops: 540 });
  assert.equal(result.allocation.error, bestWithin(enumerate(problem), 540));
  assert.deepEqual(result.allocation.choices.map((c) => c.option), ['o260', 'o280']);
});

test('infeasible budgets and unknown names get clear errors', () => {
  const problem = randomProblem(seededRandom(16), 4, 3, true);
  problem.pins = { layer1: 'o2' };
  const cheapest = Math.min(...enumerate(problem).map((a) => a.cost));
  assert.throws(
    () => search(problem, { kind: 'bops', bops: cheapest - 1 }),
    (err: unknown) => err instanceof SearchError && err.message.includes('below the cheapest allocation') && err.message.includes(`${cheapest} BOPs`),
  );
  const least = Math.min(...enumerate(problem).map((a) => a.error));
  assert.throws(
    () => search(problem, { kind: 'errorTarget', maxError: least * 0.99 }),
    (err: unknown) => err instanceof SearchError && /below the least achievable predicted error, [0-9.e-]+/.test(err.message),
  );
  assert.throws(() => search(problem, { kind: 'averageBits', bits: 4 }), /average bits needs costs in bits/);
  assert.throws(() => solveFront({ ...problem, ties: [['layer0', 'nope'], ['ghost']] }), /random\.json: unknown layers in ties or pins: "nope", "ghost"/);
  assert.throws(() => solveFront({ ...problem, pins: { layer0: 'o9' } }), /pinned option "o9": layer "layer0" does not have it/);
  assert.throws(() => solveFront({ ...problem, ties: [['layer0', 'layer2']], pins: { layer0: 'o0', layer2: 'o1' } }), /pinned to different options/);
  assert.throws(() => solveFront({ ...problem, units: [] }), /no layers to allocate/);
  assert.throws(() => solveFront({ ...problem, units: [{ ...problem.units[0], options: [{ ...problem.units[0].options[0], error: NaN }] }] }), /error must be a finite number/);
});

test('parseBudget reads the CLI forms', () => {
  assert.deepEqual(parseBudget('5bits'), { kind: 'averageBits', bits: 5 });
  assert.deepEqual(parseBudget('4.5 bits'), { kind: 'averageBits', bits: 4.5 });
  assert.deepEqual(parseBudget('40MB'), { kind: 'sizeMB', megabytes: 40 });
  assert.deepEqual(parseBudget('2e9bops'), { kind: 'bops', bops: 2e9 });
  assert.deepEqual(parseBudget('error<=0.01'), { kind: 'errorTarget', maxError: 0.01 });
  assert.throws(() => parseBudget('fast'), /cannot read budget "fast"/);
});

test('splitTimesteps makes contiguous ranges of near-equal size', () => {
  assert.deepEqual(splitTimesteps([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], 4), [[9, 8, 7], [6, 5, 4], [3, 2], [1, 0]]);
  assert.deepEqual(splitTimesteps([1, 2], 1), [[1, 2]]);
  assert.throws(() => splitTimesteps([1, 2], 3), /cannot split 2 timesteps into 3 ranges/);
  assert.throws(() => splitTimesteps([1, 2], 0), RangeError);
});

// ---------------------------------------------------------------------------------------------------------------
// Problems from a hand-made run: 3 analyzed layers, an excluded embedder, 3 timesteps, settings W4, W8 and A8.

const SQNR: Record<string, Record<string, number[]>> = {
  // unit → setting → SQNR in dB at timesteps 999, 500, 0
  'blocks.0.attn.qkv': { W4: [20, 25, 30], W8: [40, 45, 50], A8: [35, 35, 35] },
  'blocks.0.mlp.fc1': { W4: [10, 12, 14], W8: [38, 40, 42], A8: [30, 31, 32] },
  final_layer: { W4: [5, 6, 7], W8: [33, 34, 35], A8: [28, 28, 28] },
};
const TIMESTEPS = [999, 500, 0];

function layer(name: string, params: number): LayerInfo {
  return { name, opType: 'Gemm', weight: `${name}.weight`, shape: [params], dtype: 'F32', params, channelAxis: 0, group: [] };
}
const LAYERS = [layer('x_embedder', 100), layer('blocks.0.attn.qkv', 300), layer('blocks.0.mlp.fc1', 1200), layer('final_layer', 50)];

function runOf(unit: 'layer' | 'group', sqnr: Record<string, Record<string, number[]>>): AnalysisRun {
  const rows: SensitivityRow[] = [];
  for (const [name, bySetting] of Object.entries(sqnr)) {
    for (const [setting, values] of Object.entries(bySetting)) {
      values.forEach((sqnrDb, t) => {
        const metrics = { mse: 0.001 * (t + 1) * (name.length % 7), sqnrDb, cosine: 0.99 };
        rows.push({ unit: name, setting, timestep: TIMESTEPS[t], metrics: { out: metrics }, primary: metrics });
      });
    }
  }
  return {
    schema: 'quantlens.analysis/1',
    id: 'run-1',
    createdAt: '2025-01-01T00:00:00.000Z',
    status: 'complete',
    settings: {
      model: '/models/tiny-dit.onnx',
      settings: [
        { id: 'W4', weight: { bits: 4, granularity: { kind: 'channel' } } },
        { id: 'W8', weight: { bits: 8, granularity: { kind: 'channel' } } },
        { id: 'A8', activation: { bits: 8, mode: 'dynamic-token', symmetric: false } },
      ],
      unit,
      groups: [
        { name: 'attn', patterns: ['attn'] },
        { name: 'mlp', patterns: ['mlp'] },
      ],
      exclude: ['x_embedder'],
      calibration: { samples: 2, batch: 1, seed: 0, dims: {} },
      timestep: { input: 't', values: TIMESTEPS },
      extraActivationTensors: [],
      executionProvider: 'cpu',
    },
    environment: { quantlens: '0.1.0', onnxruntime: '1.30', node: '20', platform: 'linux', cpu: 'test', executionProvider: 'cpu' },
    model: { fileName: 'tiny-dit.onnx', bytes: 1000, layerCount: 4 },
    plan: { units: [...Object.keys(sqnr), '*'], settings: ['W4', 'W8', 'A8'], timesteps: TIMESTEPS, total: rows.length },
    referenceForwardMs: 1,
    rows,
    ranges: [],
  };
}

const noise = (db: number) => 10 ** (-db / 10);
const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;

test('problemFromRun: relative noise power per option, params × bits per cost, full precision free of error', () => {
  const run = runOf('layer', SQNR);
  const problem = problemFromRun(run, { layers: LAYERS, pins: { final_layer: FULL_PRECISION_OPTION, x_embedder: FULL_PRECISION_OPTION }, groupWeights: { attn: 2 } });
  assert.equal(problem.source, '/models/tiny-dit.onnx');
  assert.deepEqual(problem.units.map((u) => u.name), ['blocks.0.attn.qkv', 'blocks.0.mlp.fc1', 'final_layer']);
  assert.deepEqual(problem.pins, { final_layer: 'FP' }, 'the excluded layer is at full precision already');
  assert.equal(problem.fixedCost, 100 * 16);
  assert.equal(problem.totalParams, 1650);
  for (const unit of problem.units) {
    const params = LAYERS.find((l) => l.name === unit.name)!.params;
    const weight = unit.name.includes('attn') ? 2 : 1;
    assert.deepEqual(unit.options.map((o) => [o.id, o.weightBits, o.activationBits, o.cost]), [
      ['FP', 16, null, params * 16],
      ['W4', 4, null, params * 4],
      ['W8', 8, null, params * 8],
      ['A8', 16, 8, params * 16],
    ]);
    assert.equal(unit.options[0].error, 0);
    for (const option of unit.options.slice(1)) close(option.error, weight * mean(SQNR[unit.name][option.id].map(noise)), `${unit.name} ${option.id}`);
  }

  // Solved against brute force over the same problem: 4^3 allocations.
  const all = enumerate(problem);
  for (const bits of [6, 8, 10, 12, 16]) {
    const result = search(problem, { kind: 'averageBits', bits });
    assert.equal(result.allocation.choices[2].option, 'FP');
    close(result.allocation.error, bestWithin(all, bits * 1650), `${bits} bits`);
  }
  assert.throws(() => search(problem, { kind: 'averageBits', bits: 5 }), /budget of 5 average bits is below the cheapest allocation, 5\.091 average bits/);
  const sized = search(problem, { kind: 'sizeMB', megabytes: (8 * 1650) / 8e6 });
  assert.ok(sized.maxCost !== null && sized.allocation.cost <= sized.maxCost);
});

test('problemFromRun: sums, MSE, chosen settings and timesteps, bit-operations, groups as units', () => {
  const run = runOf('layer', SQNR);
  const summed = problemFromRun(run, { layers: LAYERS, aggregate: 'sum', settings: ['W4'], timesteps: [0, 500] });
  assert.deepEqual(summed.timesteps, [0, 500]);
  assert.deepEqual(summed.units[1].options.map((o) => o.id), ['FP', 'W4']);
  close(summed.units[1].options[1].error, noise(14) + noise(12), 'summed noise');

  const mse = problemFromRun(run, { layers: LAYERS, metric: 'mse', timesteps: [500] });
  assert.equal(mse.units[0].options[2].error, run.rows.find((r) => r.unit === 'blocks.0.attn.qkv' && r.setting === 'W8' && r.timestep === 500)!.primary.mse);

  const macs = { x_embedder: 10, 'blocks.0.attn.qkv': 30, 'blocks.0.mlp.fc1': 120, final_layer: 5 };
  const bops = problemFromRun(run, { layers: LAYERS, costUnit: 'bops', macs, fullPrecisionBits: 32 });
  assert.deepEqual(bops.units[0].options.map((o) => o.cost), [30 * 32 * 32, 30 * 4 * 32, 30 * 8 * 32, 30 * 32 * 8]);
  assert.equal(bops.fixedCost, 10 * 32 * 32);
  assert.throws(() => problemFromRun(run, { layers: LAYERS, costUnit: 'bops', macs: { final_layer: 5 } }), /needs? the MACs of layer "blocks\.0\.attn\.qkv"/);

  const ranges = problemsPerTimestepRange(run, { layers: LAYERS }, 2);
  assert.deepEqual(ranges.map((p) => p.timesteps), [[999, 500], [0]]);
  close(ranges[0].units[2].options[1].error, mean([noise(5), noise(6)]), 'first range');
  close(ranges[1].units[2].options[1].error, noise(7), 'second range');

  const groupRun = runOf('group', { attn: SQNR['blocks.0.attn.qkv'], mlp: SQNR['blocks.0.mlp.fc1'], other: SQNR.final_layer });
  const groups = problemFromRun(groupRun, { layers: LAYERS, groupWeights: { mlp: 3 } });
  assert.deepEqual(groups.units.map((u) => [u.name, u.params, u.members]), [
    ['attn', 300, ['blocks.0.attn.qkv']],
    ['mlp', 1200, ['blocks.0.mlp.fc1']],
    ['other', 50, ['final_layer']],
  ]);
  close(groups.units[1].options[1].error, 3 * mean(SQNR['blocks.0.mlp.fc1'].W4.map(noise)), 'weighted group');
  assert.throws(() => problemFromRun(groupRun, { layers: LAYERS, ties: [['attn', 'blocks.0.mlp.fc1']] }), /"blocks\.0\.mlp\.fc1" is searched as part of group "mlp": tie or pin the group/);
});

test('problemFromRun refuses what it cannot use, naming it', () => {
  const run = runOf('layer', SQNR);
  const refuses = (overrides: Partial<Parameters<typeof problemFromRun>[1]>, pattern: RegExp, target = run) =>
    assert.throws(() => problemFromRun(target, { layers: LAYERS, ...overrides }), (err: unknown) => err instanceof SearchError && pattern.test(err.message));
  refuses({ ties: [['blocks.0.attn.qkv', 'blocks.9.attn']] }, /tiny-dit\.onnx: run run-1: unknown layer "blocks\.9\.attn" in ties or pins/);
  refuses({ pins: { x_embedder: 'W4' } }, /"x_embedder" was not analyzed in this run and stays at full precision/);
  refuses({ groupWeights: { cross_attn: 2 } }, /unknown group "cross_attn" in group weights \(groups: "attn", "mlp", "other"\)/);
  refuses({ settings: ['W3'] }, /unknown setting "W3"/);
  refuses({ timesteps: [250] }, /the run has no "t=250"/);
  refuses({}, /the run is cancelled \(stopped\); a search needs a complete run/, { ...run, status: 'cancelled', message: 'stopped' });
  refuses({}, /no row for "final_layer" × W8 at "t=500"/, { ...run, rows: run.rows.filter((r) => !(r.unit === 'final_layer' && r.setting === 'W8' && r.timestep === 500)) });
  refuses({ layers: LAYERS.slice(0, 3) }, /the model has no "final_layer": was the run made on another model\?/);
  assert.throws(() => problemsPerTimestepRange(run, { layers: LAYERS }, 4), /cannot split 3 timesteps into 4 ranges/);
});
