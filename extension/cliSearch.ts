// `quantlens search`: mixed-precision allocation under a budget from a sensitivity run (or a quick sweep of a model
// started on the spot), verified by measurement: the Pareto front (predicted), the chosen point predicted against
// measured, the uniform allocations of the run's settings measured beside it, an optional refinement on measured
// error, and the allocation file. Added to the program by cli.ts (addSearch).
import * as path from 'path';
import { Command, InvalidArgumentError } from 'commander';
import { runAnalysis } from './engine/analysis/runner';
import { ALL_UNIT, compilePattern, quantSettings } from './engine/analysis/settings';
import { detectTimestepInput } from './engine/calib';
import { ModelError } from './engine/errors';
import { saveAllocation } from './engine/export/allocation';
import { openModel } from './engine/model/open';
import { loadRun } from './engine/runs/records';
import { describeCost, parseBudget } from './engine/search/problem';
import { searchAndVerify, type MeasuredPoint, type RefineStep, type SearchVerifyResult } from './engine/search/refine';
import { pinsMatching } from './engine/search/session';
import type { AnalysisRun, AnalysisSettings } from './protocol/analysis';
import type { SearchBudget, SearchProblem } from './protocol/search';
import { bitList, clean, collect, dimList, nonNegativeInteger, positiveInteger, splitList, timestepsFlag, truncateMiddle, usageErrors } from './cliShared';

/** Weight bit-widths of the sweep started when a model is given instead of a run (16 = full precision is always there). */
const DEFAULT_WEIGHT_BITS = [2, 3, 4, 6, 8];
const DEFAULT_SAMPLES = 2;
const DEFAULT_TIMESTEPS = 4;
const FRONT_ROWS = 8;
const NAME_WIDTH = 40;
const LABEL_WIDTH = 27;

interface SearchFlags {
  budget: SearchBudget;
  out: string;
  refine: number;
  perTimestepRanges: number;
  pin: string[];
  tie: string[];
  settings?: string[];
  metric: 'noise' | 'mse';
  weights: number[];
  weightAsym?: boolean;
  samples: number;
  timesteps?: number;
  calib?: string;
  dims?: Record<string, number>;
  runOut?: string;
  threads?: number;
}

export function addSearch(program: Command): void {
  program
    .command('search')
    .description(
      'choose each layer\'s bit-width under a budget from a sensitivity run (exact Pareto front of predicted error against ' +
        'cost), then measure the choice with every layer quantized at once, beside uniform allocations of the run\'s ' +
        'settings; optionally refine on measured error; writes the allocation file',
    )
    .argument('<run-or-model>', 'a run record from "quantlens analyze" (.json), or an .onnx model (a quick sweep runs first)')
    .requiredOption('--budget <budget>', 'average weight bits ("5bits"), size ("40MB"), bit-operations ("2e9bops"), or an error target ("error<=0.05": the cheapest allocation predicted to keep each range\'s relative noise power under it)', usageErrors(parseBudget))
    .requiredOption('--out <file>', 'where to write the allocation (JSON, for "quantlens export")')
    .option('--refine <n>', 'measurements to spend refining the choice on measured error (0 = none)', nonNegativeInteger, 0)
    .option('--per-timestep-ranges <k>', 'split the run\'s timesteps into k ranges, each with its own allocation', positiveInteger, 1)
    .option('--pin <regex>', 'keep layers whose name matches at full precision (repeatable)', collect, [] as string[])
    .option(
      '--tie <regex>',
      'layers whose name matches take the same bits; with capture groups, one tie per captured value, e.g. "blocks\\.(\\d+)\\.attn\\.(q|k|v)$" ties q/k/v per block (repeatable)',
      collect,
      [] as string[],
    )
    .option('--settings <ids>', 'the run\'s settings to choose from, e.g. W4,W8 (default: all; full precision is always a choice)', idList)
    .option('--metric <metric>', 'predicted error: "noise" (relative noise power of the output, 10^(−SQNR/10)) or "mse"', metricValue, 'noise')
    .option('--weights <bits>', `model given: weight bit-widths of the sweep (default ${DEFAULT_WEIGHT_BITS.join(',')})`, bitList, DEFAULT_WEIGHT_BITS)
    .option('--weight-asym', 'model given: asymmetric weight quantization in the sweep (a zero point per channel; default symmetric)')
    .option('--samples <n>', `model given: calibration samples of the sweep (default ${DEFAULT_SAMPLES})`, positiveInteger, DEFAULT_SAMPLES)
    .option('--timesteps <n>', `model given: timesteps of the sweep, evenly spaced in 0..999 (default ${DEFAULT_TIMESTEPS} when the model has a timestep input)`, positiveInteger)
    .option('--calib <file>', 'model given: calibration inputs (.npy, .npz, .safetensors or a JSON manifest; default: seeded synthetic)')
    .option('--dims <list>', 'model given: sizes of symbolic input dims, e.g. seq=16 (or input[axis]=size)', dimList)
    .option('--run-out <file>', 'model given: where to save the sweep\'s run record (default: beside --out, <name>.run.json)')
    .option('--threads <n>', 'onnxruntime threads per session', positiveInteger)
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  quantlens search runs/dit.json --budget 5bits --refine 8 --out dit.alloc.json\n' +
        '  quantlens search dit.onnx --budget 4.5bits --per-timestep-ranges 2 --pin embed --pin final_layer --out dit.alloc.json',
    )
    .action(async (input: string, flags: SearchFlags) => {
      const run = input.toLowerCase().endsWith('.json') ? await loadRun(input) : await sweep(input, flags);
      const units = run.plan.units.filter((unit) => unit !== ALL_UNIT);
      const pins = pinsMatching(run, flags.pin, '--pin', run.settings.model);
      const ties = tieSets(run, units, flags.tie);
      const stages = new StageLog();
      const result = await searchAndVerify(run, flags.budget, {
        rangeCount: flags.perTimestepRanges,
        refine: flags.refine,
        pins,
        ties,
        metric: flags.metric,
        ...(flags.settings ? { settings: flags.settings } : {}),
        ...(flags.threads ? { threads: flags.threads } : {}),
        onProgress: (event) => stages.show(event.stage),
      });
      saveAllocation(flags.out, result.allocation);
      process.stdout.write(`${formatResult(result, run, flags.budget)}\nwrote ${path.resolve(flags.out)}\n`);
    });
}

/** The quick sensitivity sweep of a model given instead of a run: weight settings only, a few samples and timesteps. */
async function sweep(model: string, flags: SearchFlags): Promise<AnalysisRun> {
  const opened = await openModel(model);
  const inputs = opened.summary.inputs;
  await opened.close();
  const input = detectTimestepInput(inputs);
  if (flags.timesteps !== undefined && !input) throw new ModelError(path.resolve(model), 'no input looks like a timestep, so --timesteps does not apply');
  const count = flags.timesteps ?? DEFAULT_TIMESTEPS;
  const settings: AnalysisSettings = {
    model: path.resolve(model),
    settings: quantSettings({
      weightBits: flags.weights,
      activationBits: [],
      combine: false,
      groupSize: 0,
      weightSymmetric: flags.weightAsym !== true,
      activationMode: 'dynamic-token',
      activationSymmetric: false,
    }),
    unit: 'layer',
    groups: [],
    exclude: [],
    calibration: { ...(flags.calib ? { source: path.resolve(flags.calib) } : {}), samples: flags.samples, batch: 1, seed: 0, dims: flags.dims ?? {} },
    ...(input ? { timestep: { input, values: timestepsFlag(count) } } : {}),
    extraActivationTensors: [],
    executionProvider: 'cpu',
  };
  const out = path.resolve(flags.out);
  const recordPath = flags.runOut ?? `${out.slice(0, out.length - path.extname(out).length)}.run.json`;
  process.stderr.write(
    `search: sensitivity sweep of ${path.basename(model)} first (weights ${flags.weights.map((b) => `W${b}`).join(', ')}${flags.weightAsym ? ' asymmetric' : ''}; ` +
      `${flags.samples} sample${flags.samples > 1 ? 's' : ''}${input ? `, ${count} timestep${count > 1 ? 's' : ''}` : ''}) → ${recordPath}\n`,
  );
  const run = await runAnalysis(settings, { recordPath, ...(flags.threads ? { threads: flags.threads } : {}) });
  if (run.status !== 'complete') throw new ModelError(path.resolve(model), `the sensitivity sweep ended ${run.status}${run.message ? ` (${run.message})` : ''}`);
  return run;
}

/** Per pattern, the units it matches grouped by their captured text (one set without capture groups). */
function tieSets(run: AnalysisRun, units: string[], patterns: string[]): string[][] {
  const sets: string[][] = [];
  for (const pattern of patterns) {
    const regex = compilePattern(run.settings.model, pattern, '--tie');
    const byKey = new Map<string, string[]>();
    for (const unit of units) {
      const match = regex.exec(unit);
      if (!match) continue;
      const key = JSON.stringify(match.slice(1));
      byKey.set(key, [...(byKey.get(key) ?? []), unit]);
    }
    if (byKey.size === 0) throw new ModelError(run.settings.model, `--tie ${JSON.stringify(pattern)} matches none of the run's ${units.length} layers`);
    sets.push(...[...byKey.values()].filter((set) => set.length > 1));
  }
  return sets;
}

// ---------------------------------------------------------------------------------------------------------------
// text output

function formatResult(result: SearchVerifyResult, run: AnalysisRun, budget: SearchBudget): string {
  const lines: string[] = [];
  const first = result.ranges[0].problem;
  const rangeCount = result.ranges.length;
  // Costs per range: every range is solved under the same budget.
  const cost = (total: number) => describeCost(first, total / rangeCount, budget.kind);
  for (const warning of result.warnings) lines.push(`warning: ${clean(warning)}`);
  for (const { label, result: solved, problem } of result.ranges) {
    const front = solved.front;
    const where = rangeCount > 1 ? ` (timesteps ${label})` : '';
    lines.push(
      `front${where}: ${front.length} points from ${describeCost(problem, front[0].cost, budget.kind)} to ${describeCost(problem, front[front.length - 1].cost, budget.kind)}, ` +
        `solved in ${solved.solveMs.toFixed(0)} ms (${solved.grid.exact ? 'exact' : `grid of ${solved.grid.cells} cells, at most ${describeCost(problem, solved.grid.slack, budget.kind)} lost to rounding`}); ` +
        `Lagrangian sweep gap ${significant(solved.lagrangian.gap)}`,
    );
    lines.push(`  ${'cost'.padEnd(22)}predicted error`);
    for (const index of frontRows(front.length, solved.chosenIndex)) {
      const point = front[index];
      lines.push(`  ${describeCost(problem, point.cost, budget.kind).padEnd(22)}${significant(point.error).padEnd(12)}${index === solved.chosenIndex ? '← chosen' : ''}`);
    }
  }
  const samples = result.chosen.measured.runs;
  lines.push('');
  lines.push(`measured with every layer quantized at once (${samples} run${samples > 1 ? 's' : ''}: samples × timesteps; error = relative noise power of "${clean(result.chosen.measured.output)}"):`);
  lines.push(`  ${''.padEnd(LABEL_WIDTH)}${'cost'.padEnd(22)}${'predicted'.padEnd(12)}${'measured'.padEnd(12)}${'SQNR dB'.padEnd(10)}cosine`);
  const row = (label: string, point: MeasuredPoint) =>
    `  ${label.padEnd(LABEL_WIDTH)}${cost(point.predicted.cost).padEnd(22)}${significant(point.predicted.error).padEnd(12)}${significant(point.measured.error).padEnd(12)}` +
    `${point.measured.sqnrDb.toFixed(2).padEnd(10)}${point.measured.cosine.toFixed(5)}`;
  lines.push(row(result.refinement.length > 0 ? 'solver\'s choice' : 'chosen', result.solved));
  if (result.refinement.length > 0) lines.push(row('chosen (refined)', result.chosen));
  for (const baseline of result.uniform) lines.push(row(`uniform ${baseline.setting}${baseline.fits ? '' : budget.kind === 'errorTarget' ? ' (misses the target)' : ' (over budget)'}`, baseline));
  if (rangeCount > 1) {
    for (const [r, range] of result.chosen.measured.ranges.entries()) {
      lines.push(`  timesteps ${range.label}: predicted ${significant(result.chosen.allocations[r].error)}, measured ${significant(range.error)} (${range.sqnrDb.toFixed(2)} dB)`);
    }
  }
  if (result.refinement.length > 0) {
    const kept = result.refinement.filter((step) => step.accepted).length;
    lines.push('');
    lines.push(`refinement: ${result.refinement.length} measurement${result.refinement.length > 1 ? 's' : ''}, ${kept} move${kept === 1 ? '' : 's'} kept`);
    for (const step of result.refinement) lines.push(`  ${formatStep(step, rangeCount > 1)}`);
  }
  lines.push('');
  for (const note of result.notes) lines.push(`note: ${clean(note)}`);
  lines.push('');
  lines.push(`allocation (${describeCost(first, result.chosen.predicted.cost / rangeCount, budget.kind)} for run ${run.id}):`);
  for (const [r, allocation] of result.chosen.allocations.entries()) {
    const counts = new Map<string, number>();
    for (const choice of allocation.choices) counts.set(choice.option, (counts.get(choice.option) ?? 0) + 1);
    const where = rangeCount > 1 ? `timesteps ${result.ranges[r].label}: ` : '';
    lines.push(`  ${where}${[...counts].sort((a, b) => optionBits(result.ranges[r].problem, a[0]) - optionBits(result.ranges[r].problem, b[0])).map(([id, n]) => `${n}× ${id}`).join(', ')}`);
  }
  return lines.join('\n');
}

function optionBits(problem: SearchProblem, id: string): number {
  return problem.units.flatMap((unit) => unit.options).find((option) => option.id === id)?.weightBits ?? 0;
}

function formatStep(step: RefineStep, showRange: boolean): string {
  const moves = step.moves.map((move) => `${truncateMiddle(clean(move.units.join('+')), NAME_WIDTH)} ${move.from}→${move.to}`).join(', ');
  return `${String(step.index).padStart(3)}. ${showRange ? `[${step.range}] ` : ''}${moves}: predicted ${significant(step.predicted.error)}, measured ${significant(step.total)}${step.accepted ? '  kept' : ''}`;
}

/** Up to FRONT_ROWS indices spread over the front, always with the chosen one. */
function frontRows(length: number, chosen: number): number[] {
  const rows = new Set<number>([chosen]);
  for (let k = 0; k < FRONT_ROWS; k++) rows.add(Math.round((k * (length - 1)) / Math.max(1, FRONT_ROWS - 1)));
  return [...rows].sort((a, b) => a - b);
}

const significant = (value: number) => (Number.isFinite(value) ? Number(value.toPrecision(3)).toString() : String(value));

/** One stderr line per stage (measuring, refining), so long runs show where they are. */
class StageLog {
  private last: string | undefined;

  show(stage: string): void {
    if (stage === this.last) return;
    this.last = stage;
    process.stderr.write(`search: ${stage}…\n`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// flag parsers

function idList(value: string): string[] {
  const ids = splitList(value);
  if (ids.length === 0) throw new InvalidArgumentError('expected comma-separated setting ids, e.g. W4,W8.');
  return [...new Set(ids)];
}

function metricValue(value: string): 'noise' | 'mse' {
  if (value !== 'noise' && value !== 'mse') throw new InvalidArgumentError('expected "noise" or "mse".');
  return value;
}

