// Search, then verify: the solver's point for the budget measured for real, uniform allocations measured beside it,
// and a refinement on measured error. The solver's optimum is optimal for the predicted error (a sum of one-layer
// errors); quantizing every layer at once does not add up exactly, so the refinement tries the moves that the
// prediction says cost least — one unit (or tie set) a step up in bits, alone when the budget has room, or paired with
// another a step down — measures each, and keeps a move only when the measured error falls. Every measured point is
// reported; what the user is told is the measured number.
import type { AllocationFile } from '../../protocol/allocation';
import type { AnalysisRun } from '../../protocol/analysis';
import type { Allocation, SearchBudget, SearchProblem, SearchResult, UnitChoice } from '../../protocol/search';
import { groupsOf } from '../analysis/plan';
import { isWeightSymmetric } from '../analysis/settings';
import { CancelledError } from '../errors';
import { allocationFromSearch, rangeLabel, rangeLayers, rangeTimesteps } from '../export/allocation';
import { problemFromRun, problemsPerTimestepRange, type ProblemFromRunOptions } from './fromRun';
import { buildItems, describeCost, type CostBudget } from './problem';
import { search, type SolveOptions } from './solver';
import { AllocationMeter, noiseToSqnrDb, type MeasureRange, type MeasureSettings, type MeasuredAllocation } from './verify';

/** One timestep range of a search: its problem, and the allocation being measured. */
export interface RefineRange {
  label: string;
  /** The range's timesteps (null: a model without a timestep input). */
  timesteps: number[] | null;
  problem: SearchProblem;
  allocation: Allocation;
  /** The most total cost the budget allows this range. */
  maxCost: number;
}

export interface RefineMove {
  /** The unit, or the tie set, that moves. */
  units: string[];
  from: string;
  to: string;
}

export interface RefineStep {
  /** 1, 2, …: the measurement this step took. */
  index: number;
  range: string;
  moves: RefineMove[];
  /** The range's allocation after the moves. */
  predicted: { cost: number; error: number };
  /** The range's measured error after the moves. */
  measured: number;
  /** The whole allocation's measured error had the moves been kept (the other ranges as they stood). */
  total: number;
  accepted: boolean;
}

export interface RefineOptions {
  /** Measurements the refinement may take (each measures one range). */
  measurements: number;
  signal?: AbortSignal;
  onStep?: (step: RefineStep) => void;
}

export interface RefineResult {
  /** Per range, the best allocation measured (the start when nothing beat it). */
  allocations: Allocation[];
  measured: MeasuredAllocation;
  steps: RefineStep[];
}

function measureRange(range: Pick<RefineRange, 'label' | 'timesteps' | 'problem'>, allocation: Allocation): MeasureRange {
  return { label: range.label, timesteps: range.timesteps, layers: rangeLayers(range.problem, allocation) };
}

/** The allocation with some units' options changed; cost and error recomputed from the options. */
export function withOptions(problem: SearchProblem, allocation: Allocation, changes: ReadonlyMap<number, string>): Allocation {
  const choices: UnitChoice[] = allocation.choices.map((choice, index) => {
    const id = changes.get(index);
    if (id === undefined) return choice;
    const option = problem.units[index].options.find((candidate) => candidate.id === id);
    if (!option) throw new RangeError(`unit ${JSON.stringify(problem.units[index].name)} has no option ${JSON.stringify(id)}`);
    return { unit: choice.unit, option: id, weightBits: option.weightBits, activationBits: option.activationBits, cost: option.cost, error: option.error };
  });
  return {
    cost: problem.fixedCost + choices.reduce((sum, choice) => sum + choice.cost, 0),
    error: choices.reduce((sum, choice) => sum + choice.error, 0),
    choices,
  };
}

interface Step {
  item: number;
  to: number;
  cost: number;
  error: number;
}

/** Candidate moves of one range, least predicted damage first: a step up alone, or a step up and another down. */
function candidateMoves(range: RefineRange, allocation: Allocation): { steps: Step[]; cost: number; error: number }[] {
  const items = buildItems(range.problem);
  const current = items.map((item) => item.optionIds.indexOf(allocation.choices[item.units[0]].option));
  const up: (Step | undefined)[] = [];
  const down: (Step | undefined)[] = [];
  items.forEach((item, i) => {
    const at = current[i];
    let best: Step | undefined;
    let worse: Step | undefined;
    for (let o = 0; o < item.optionIds.length; o++) {
      const cost = item.costs[o] - item.costs[at];
      const error = item.errors[o] - item.errors[at];
      // Up: the cheapest option that costs more and predicts less error. Down: the dearest option that costs less.
      if (cost > 0 && error < 0 && (!best || cost < best.cost || (cost === best.cost && error < best.error))) best = { item: i, to: o, cost, error };
      if (cost < 0 && (!worse || cost > worse.cost || (cost === worse.cost && error < worse.error))) worse = { item: i, to: o, cost, error };
    }
    up.push(best);
    down.push(worse);
  });
  const room = range.maxCost - allocation.cost;
  const moves: { steps: Step[]; cost: number; error: number }[] = [];
  for (const raise of up) {
    if (!raise) continue;
    if (raise.cost <= room) moves.push({ steps: [raise], cost: raise.cost, error: raise.error });
    for (const lower of down) {
      if (!lower || lower.item === raise.item || raise.cost + lower.cost > room) continue;
      moves.push({ steps: [raise, lower], cost: raise.cost + lower.cost, error: raise.error + lower.error });
    }
  }
  return moves.sort((a, b) => a.error - b.error || a.cost - b.cost);
}

function signature(range: number, allocation: Allocation): string {
  return `${range}\u0000${allocation.choices.map((choice) => choice.option).join('\u0000')}`;
}

/**
 * Greedy refinement on measured error: at most `measurements` candidates, each a move in one range, kept only when it
 * lowers the measured error. Never exceeds a range's maxCost and never returns an allocation measured worse than the
 * start.
 */
export async function refine(meter: AllocationMeter, ranges: readonly RefineRange[], start: MeasuredAllocation, options: RefineOptions): Promise<RefineResult> {
  if (start.ranges.length !== ranges.length) throw new RangeError(`the start measurement has ${start.ranges.length} ranges, the search ${ranges.length}`);
  const allocations = ranges.map((range) => range.allocation);
  const errors = start.ranges.map((range) => range.error);
  let measured = start;
  const steps: RefineStep[] = [];
  const tried = new Set(allocations.map((allocation, r) => signature(r, allocation)));
  const itemsOf = ranges.map((range) => buildItems(range.problem));

  while (steps.length < options.measurements) {
    if (options.signal?.aborted) throw new CancelledError();
    // The least damaging untried move over all ranges.
    let next: { r: number; allocation: Allocation; moves: RefineMove[] } | undefined;
    let nextError = Infinity;
    ranges.forEach((range, r) => {
      const current = { ...range, allocation: allocations[r] };
      for (const move of candidateMoves(current, allocations[r])) {
        if (move.error >= nextError) break;
        const changes = new Map<number, string>();
        const described: RefineMove[] = [];
        for (const step of move.steps) {
          const item = itemsOf[r][step.item];
          const to = item.optionIds[step.to];
          for (const unit of item.units) changes.set(unit, to);
          described.push({ units: item.units.map((unit) => range.problem.units[unit].name), from: allocations[r].choices[item.units[0]].option, to });
        }
        const allocation = withOptions(range.problem, allocations[r], changes);
        if (tried.has(signature(r, allocation)) || allocation.cost > range.maxCost) continue;
        next = { r, allocation, moves: described };
        nextError = move.error;
        break;
      }
    });
    if (!next) break;
    const { r, allocation, moves } = next;
    tried.add(signature(r, allocation));
    const result = await meter.measure([measureRange(ranges[r], allocation)], options.signal ? { signal: options.signal } : {});
    const rangeError = result.ranges[0].error;
    const total = errors.reduce((sum, error, i) => sum + (i === r ? rangeError : error), 0);
    const accepted = rangeError < errors[r];
    const step: RefineStep = {
      index: steps.length + 1,
      range: ranges[r].label,
      moves,
      predicted: { cost: allocation.cost, error: allocation.error },
      measured: rangeError,
      total,
      accepted,
    };
    steps.push(step);
    options.onStep?.(step);
    if (accepted) {
      allocations[r] = allocation;
      errors[r] = rangeError;
      measured = combine(measured, r, result);
    }
  }
  return { allocations, measured, steps };
}

/** A whole measurement with range `r` replaced by a new measurement of it (pooled MSE and cosine left as measured). */
function combine(whole: MeasuredAllocation, r: number, part: MeasuredAllocation): MeasuredAllocation {
  const ranges = whole.ranges.map((range, i) => (i === r ? part.ranges[0] : range));
  const error = ranges.reduce((sum, range) => sum + range.error, 0);
  const runs = ranges.reduce((sum, range) => sum + range.runs, 0);
  // Pooled MSE weighs ranges by their runs; cosine has no exact pooling from the parts, so the run-weighted mean stands in.
  const mse = ranges.reduce((sum, range) => sum + range.mse * range.runs, 0) / runs;
  const cosine = ranges.reduce((sum, range) => sum + range.cosine * range.runs, 0) / runs;
  return { output: whole.output, ranges, error, sqnrDb: ranges.length === 1 ? ranges[0].sqnrDb : noiseToSqnrDb(error), mse, cosine, runs };
}

// ---------------------------------------------------------------------------------------------------------------
// search and verify

export interface SearchVerifyOptions extends Omit<ProblemFromRunOptions, 'layers' | 'timesteps'> {
  /** The model to measure on (default: the run's). */
  model?: string;
  /** Split the run's timesteps into this many ranges, each with its own allocation (default 1). */
  rangeCount?: number;
  /** Measurements the refinement may take (default 0: none). */
  refine?: number;
  /** Uniform baselines: the run's weight settings measured with every searched unit at one of them (default true). */
  baselines?: boolean;
  solve?: SolveOptions;
  threads?: number;
  signal?: AbortSignal;
  onProgress?: (event: { stage: string; done: number; total: number }) => void;
  onStep?: (step: RefineStep) => void;
}

export interface SearchedRangeResult {
  label: string;
  timesteps: number[] | null;
  problem: SearchProblem;
  /** The solver's front and pick (predicted). */
  result: SearchResult;
}

export interface MeasuredPoint {
  /** Per range, the allocation. */
  allocations: Allocation[];
  /** Summed over ranges, as the allocation file sums them. */
  predicted: { cost: number; error: number };
  measured: MeasuredAllocation;
}

export interface UniformBaseline extends MeasuredPoint {
  /** The run's setting every searched unit takes ("W4"); pinned units keep their pin. */
  setting: string;
  /** Every range's cost within the budget. */
  fits: boolean;
}

export interface SearchVerifyResult {
  budget: SearchBudget;
  ranges: SearchedRangeResult[];
  /** The solver's point for the budget, measured. */
  solved: MeasuredPoint;
  /** The refined point (the solved one when the refinement found nothing better or did not run). */
  chosen: MeasuredPoint;
  uniform: UniformBaseline[];
  refinement: RefineStep[];
  /** The chosen point as an allocation file, with its predicted and measured numbers. */
  allocation: AllocationFile;
  /** What the numbers mean for the user: how the chosen point compares with the uniform allocations. */
  notes: string[];
  /** From the calibration and instrumentation. */
  warnings: string[];
}

/** How the run quantized: its calibration inputs, its activation mode, its weight granularity and symmetry. */
export function measureSettingsFromRun(run: AnalysisRun, threads?: number): MeasureSettings {
  const { settings } = run;
  const activation = settings.settings.find((setting) => setting.activation)?.activation;
  const weight = settings.settings.find((setting) => setting.weight)?.weight;
  const granularity = weight?.granularity;
  return {
    calibration: {
      ...(settings.calibration.source !== undefined ? { source: settings.calibration.source } : {}),
      samples: settings.calibration.samples,
      batch: settings.calibration.batch,
      seed: settings.calibration.seed,
      dims: settings.calibration.dims,
      ...(settings.timestep ? { timestep: settings.timestep } : {}),
    },
    activation: activation
      ? { mode: activation.mode, symmetric: activation.symmetric, ...(activation.percentile !== undefined ? { percentile: activation.percentile } : {}) }
      : { mode: 'dynamic-token', symmetric: false },
    granularity: granularity?.kind === 'group' ? { group: granularity.size } : 'channel',
    weightSymmetric: weight ? isWeightSymmetric(weight) : true,
    executionProvider: settings.executionProvider,
    ...(threads ? { threads } : {}),
  };
}

function totals(allocations: readonly Allocation[]): { cost: number; error: number } {
  return { cost: allocations.reduce((sum, a) => sum + a.cost, 0), error: allocations.reduce((sum, a) => sum + a.error, 0) };
}

/** Every searched unit at `setting` (pinned units at their pin); undefined when some unit lacks it. */
function uniformAllocation(problem: SearchProblem, setting: string): Allocation | undefined {
  const changes = new Map<number, string>();
  for (const [index, unit] of problem.units.entries()) {
    const id = problem.pins[unit.name] ?? setting;
    if (!unit.options.some((option) => option.id === id)) return undefined;
    changes.set(index, id);
  }
  const start: Allocation = { cost: 0, error: 0, choices: problem.units.map((unit) => ({ unit: unit.name, option: '', weightBits: 0, activationBits: null, cost: 0, error: 0 })) };
  return withOptions(problem, start, changes);
}

const significant = (value: number) => Number(value.toPrecision(3)).toString();

/**
 * Solves the run's problem (one per timestep range) for the budget, measures the solver's point and the uniform
 * allocations of the run's weight settings on the model, refines on measured error, and returns it all with the
 * allocation file to write.
 */
export async function searchAndVerify(run: AnalysisRun, budget: SearchBudget, options: SearchVerifyOptions = {}): Promise<SearchVerifyResult> {
  const { model = run.settings.model, rangeCount = 1, refine: measurements = 0, signal, onProgress } = options;
  const settings = measureSettingsFromRun(run, options.threads);
  const activations = run.plan.settings.some((id) => run.settings.settings.find((setting) => setting.id === id)?.activation);
  onProgress?.({ stage: 'loading the model and calibration data', done: 0, total: 0 });
  const meter = await AllocationMeter.open(model, settings, { activations, ...(signal ? { signal } : {}) });
  try {
    const { costUnit, macs, metric, settings: offered, aggregate, ties, pins, groupWeights, fullPrecisionBits, source } = options;
    const fromRun: ProblemFromRunOptions = {
      layers: meter.modelLayers,
      ...(costUnit ? { costUnit } : {}),
      ...(macs ? { macs } : {}),
      ...(metric ? { metric } : {}),
      ...(offered ? { settings: offered } : {}),
      ...(aggregate ? { aggregate } : {}),
      ...(ties ? { ties } : {}),
      ...(pins ? { pins } : {}),
      ...(groupWeights ? { groupWeights } : {}),
      ...(fullPrecisionBits !== undefined ? { fullPrecisionBits } : {}),
      ...(source ? { source } : {}),
    };
    const problems = rangeCount > 1 ? problemsPerTimestepRange(run, fromRun, rangeCount) : [problemFromRun(run, fromRun)];
    const ranges: SearchedRangeResult[] = problems.map((problem) => {
      const timesteps = rangeTimesteps(problem);
      return { label: rangeLabel(timesteps), timesteps, problem, result: search(problem, budget, options.solve) };
    });
    const refineRanges: RefineRange[] = ranges.map(({ label, timesteps, problem, result }) => ({
      label,
      timesteps,
      problem,
      allocation: result.allocation,
      // An error target picks the cheapest point predicted to meet it; refinement may lower its error, never its cost.
      maxCost: result.maxCost ?? result.allocation.cost,
    }));
    const measure = async (allocations: Allocation[], stage: string): Promise<MeasuredAllocation> =>
      meter.measure(
        refineRanges.map((range, r) => measureRange(range, allocations[r])),
        { ...(signal ? { signal } : {}), onProgress: ({ done, total }) => onProgress?.({ stage, done, total }) },
      );

    const solvedAllocations = ranges.map((range) => range.result.allocation);
    const solved: MeasuredPoint = { allocations: solvedAllocations, predicted: totals(solvedAllocations), measured: await measure(solvedAllocations, 'measuring the chosen allocation') };

    const uniform: UniformBaseline[] = [];
    const weightSettings = run.plan.settings.filter((id) => run.settings.settings.find((setting) => setting.id === id)?.weight && (options.settings ?? run.plan.settings).includes(id));
    for (const setting of options.baselines === false ? [] : weightSettings) {
      const allocations = problems.map((problem) => uniformAllocation(problem, setting));
      if (allocations.some((allocation) => allocation === undefined)) continue;
      const chosen = allocations as Allocation[];
      const measured = await measure(chosen, `measuring uniform ${setting}`);
      const fits = budget.kind === 'errorTarget'
        ? meetsTarget(measured, budget.maxError)
        : chosen.every((allocation, r) => allocation.cost <= refineRanges[r].maxCost);
      uniform.push({ setting, fits, allocations: chosen, predicted: totals(chosen), measured });
    }

    let chosen = solved;
    let refinement: RefineStep[] = [];
    if (measurements > 0) {
      onProgress?.({ stage: 'refining on measured error', done: 0, total: measurements });
      const refined = await refine(meter, refineRanges, solved.measured, {
        measurements,
        ...(signal ? { signal } : {}),
        onStep: (step) => {
          onProgress?.({ stage: 'refining on measured error', done: step.index, total: measurements });
          options.onStep?.(step);
        },
      });
      refinement = refined.steps;
      chosen = { allocations: refined.allocations, predicted: totals(refined.allocations), measured: refined.measured };
    }

    const allocation = allocationFromSearch({
      model: { fileName: run.model.fileName },
      run: run.id,
      budget,
      ranges: ranges.map((range, r) => ({ problem: range.problem, result: { ...range.result, allocation: chosen.allocations[r] } })),
      activation: settings.activation,
      granularity: settings.granularity,
      weightSymmetric: settings.weightSymmetric ?? true,
    });
    allocation.measured = {
      error: chosen.measured.error,
      ...(Number.isFinite(chosen.measured.sqnrDb) ? { sqnrDb: chosen.measured.sqnrDb } : {}),
      samples: chosen.measured.runs,
    };
    const notes = budget.kind === 'errorTarget'
      ? targetNotes(ranges[0].problem, budget.maxError, chosen, uniform)
      : comparisonNotes(ranges[0].problem, budget, chosen, uniform);
    if (metric === 'mse') notes.push('predicted errors are sums of one-layer MSEs; measured errors are relative noise power: compare measured with measured');
    if (run.settings.unit === 'group' && groupsOf(run.settings).some((group) => group.metricTensor)) {
      notes.push(`groups were ranked by their own metric tensors; the measurement compares the model output "${chosen.measured.output}"`);
    }
    return { budget, ranges, solved, chosen, uniform, refinement, allocation, notes, warnings: meter.warnings };
  } finally {
    await meter.close();
  }
}

/** An error target bounds each timestep range's error; measured, as the solver predicted it. */
function meetsTarget(measured: MeasuredAllocation, maxError: number): boolean {
  return measured.ranges.every((range) => range.error <= maxError);
}

function targetNotes(problem: SearchProblem, maxError: number, chosen: MeasuredPoint, uniform: UniformBaseline[]): string[] {
  const ranges = chosen.allocations.length;
  const cost = (point: MeasuredPoint) => describeCost(problem, point.predicted.cost / ranges, 'averageBits');
  const notes = [
    `the chosen allocation (${cost(chosen)}, the cheapest predicted to meet the error target ${significant(maxError)}) measures ` +
      `${significant(chosen.measured.error)} (${significant(chosen.measured.sqnrDb)} dB): it ${meetsTarget(chosen.measured, maxError) ? 'meets' : 'misses'} the target` +
      (meetsTarget(chosen.measured, maxError) ? '' : ' — one-layer errors do not add up exactly; a tighter target or a refinement can close the gap'),
  ];
  const cheapest = uniform.filter((baseline) => baseline.fits).sort((a, b) => a.predicted.cost - b.predicted.cost)[0];
  notes.push(
    cheapest
      ? `uniform ${cheapest.setting} (${cost(cheapest)}) is the cheapest uniform allocation that meets the target, measured ${significant(cheapest.measured.error)}`
      : 'no uniform allocation of the run\'s settings meets the target',
  );
  return notes;
}

/** How the chosen point measures against the uniform allocations that fit the budget and the cheapest that do not. */
function comparisonNotes(problem: SearchProblem, budget: CostBudget, chosen: MeasuredPoint, uniform: UniformBaseline[]): string[] {
  const notes: string[] = [];
  const ranges = chosen.allocations.length;
  const cost = (point: MeasuredPoint) => describeCost(problem, point.predicted.cost / ranges, budget.kind);
  const fitting = uniform.filter((baseline) => baseline.fits);
  const best = fitting.reduce<UniformBaseline | undefined>((most, baseline) => (!most || baseline.measured.error < most.measured.error ? baseline : most), undefined);
  if (!best) notes.push('no uniform allocation of the run\'s settings fits the budget: nothing to compare with at this cost');
  else if (chosen.measured.error <= best.measured.error) {
    const ratio = chosen.measured.error > 0 ? best.measured.error / chosen.measured.error : Infinity;
    notes.push(
      `the chosen allocation (${cost(chosen)}) measures ${significant(chosen.measured.sqnrDb)} dB against ${significant(best.measured.sqnrDb)} dB for uniform ` +
        `${best.setting} (${cost(best)}), the best uniform allocation within the budget: ${Number.isFinite(ratio) ? `${significant(ratio)}×` : 'infinitely'} less noise`,
    );
  } else {
    notes.push(
      `the chosen allocation (${cost(chosen)}) measures worse than uniform ${best.setting} (${cost(best)}): ${significant(chosen.measured.sqnrDb)} dB against ` +
        `${significant(best.measured.sqnrDb)} dB, although predicted ${significant(chosen.predicted.error)} against ${significant(best.predicted.error)}. ` +
        'The prediction adds one-layer errors; quantizing every layer at once does not add up exactly here (a refinement on measured error, or a run with more samples, can close the gap)',
    );
  }
  const above = uniform.filter((baseline) => !baseline.fits).sort((a, b) => a.predicted.cost - b.predicted.cost)[0];
  if (above) {
    notes.push(
      `uniform ${above.setting} (${cost(above)}) is over the budget; it measures ${significant(above.measured.sqnrDb)} dB against the chosen ${significant(chosen.measured.sqnrDb)} dB`,
    );
  }
  return notes;
}
