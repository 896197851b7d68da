// The search panel's report: searchAndVerify's result cut down to what the panel draws and saves (fronts, predicted
// against measured, the allocation as layers × ranges of bits), with costs in the budget's own words. Pure.
import { FLOAT_WEIGHT_BITS, type AllocationFile } from '../../protocol/allocation';
import type { SearchBudget, SearchProblem } from '../../protocol/search';
import { SEARCH_REPORT_SCHEMA, type ReportMeasured, type SearchReport, type SearchReportStep } from '../../protocol/searchPanel';
import { displayCost } from './problem';
import type { MeasuredPoint, RefineStep, SearchVerifyResult } from './refine';

export { displayCost };

/** What the cost axis (displayCost's units) means for a problem and budget. */
export function costLabel(problem: Pick<SearchProblem, 'costUnit'>, kind: SearchBudget['kind'] | undefined): string {
  if (problem.costUnit === 'bops') return 'BOPs';
  return kind === 'sizeMB' ? 'MB' : 'average weight bits';
}

/** JSON turns non-finite numbers into null; say so in the type. */
const finiteOrNull = (value: number): number | null => (Number.isFinite(value) ? value : null);

export interface ReportFiles {
  modelPath: string;
  runPath?: string;
  runId?: string;
  allocationPath: string;
  yamlPaths: string[];
}

export function stepReport(step: RefineStep): SearchReportStep {
  return {
    index: step.index,
    range: step.range,
    moves: step.moves.map((move) => `${move.units.join('+')} ${move.from}→${move.to}`).join(', '),
    predicted: step.predicted.error,
    measured: finiteOrNull(step.total),
    accepted: step.accepted,
  };
}

/** The allocation file's layers × ranges: rows in first-seen order, weight bits and activation bits per cell. */
export function allocationGrid(allocation: Pick<AllocationFile, 'ranges'>): Pick<SearchReport, 'layers' | 'rangeLabels' | 'bits' | 'activationBits'> {
  const layers: string[] = [];
  const seen = new Set<string>();
  for (const range of allocation.ranges) {
    for (const name of Object.keys(range.layers)) {
      if (!seen.has(name)) {
        seen.add(name);
        layers.push(name);
      }
    }
  }
  const cell = (name: string, r: number) => (Object.prototype.hasOwnProperty.call(allocation.ranges[r]!.layers, name) ? allocation.ranges[r]!.layers[name] : undefined);
  // A layer a range does not list stays in floating point.
  const bits = layers.map((name) => allocation.ranges.map((_, r) => cell(name, r)?.weightBits ?? FLOAT_WEIGHT_BITS));
  const activationBits = layers.map((name) => allocation.ranges.map((_, r) => cell(name, r)?.activationBits ?? null));
  const anyActivations = activationBits.some((row) => row.some((b) => b !== null));
  return { layers, rangeLabels: allocation.ranges.map((range) => range.label), bits, ...(anyActivations ? { activationBits } : {}) };
}

export function searchReport(result: SearchVerifyResult, files: ReportFiles): SearchReport {
  const first = result.ranges[0]!.problem;
  const kind = result.budget.kind;
  const rangeCount = result.ranges.length;
  // Totals sum the ranges; every range is solved under the same budget, so the panel shows the per-range mean.
  const perRange = (cost: number) => displayCost(first, cost / rangeCount, kind);
  const measured = (label: string, point: MeasuredPoint, fits?: boolean): ReportMeasured => ({
    label,
    predicted: { cost: perRange(point.predicted.cost), error: point.predicted.error },
    measured: { error: finiteOrNull(point.measured.error), sqnrDb: finiteOrNull(point.measured.sqnrDb) },
    ...(fits !== undefined ? { fits } : {}),
  });
  return {
    schema: SEARCH_REPORT_SCHEMA,
    modelPath: files.modelPath,
    ...(files.runPath ? { runPath: files.runPath } : {}),
    ...(files.runId ? { runId: files.runId } : {}),
    budget: result.budget,
    costLabel: costLabel(first, kind),
    ranges: result.ranges.map(({ label, problem, result: solved }) => ({
      label,
      front: solved.front.map((point) => ({ cost: displayCost(problem, point.cost, kind), error: point.error })),
      chosenIndex: solved.chosenIndex,
      maxCost: solved.maxCost === null ? null : displayCost(problem, solved.maxCost, kind),
      solveMs: solved.solveMs,
      exact: solved.grid.exact,
    })),
    solved: measured('solver\'s choice', result.solved),
    chosen: measured(result.refinement.length > 0 ? 'chosen (refined)' : 'chosen', result.chosen),
    uniform: result.uniform.map((baseline) => measured(`uniform ${baseline.setting}`, baseline, baseline.fits)),
    refinement: result.refinement.map(stepReport),
    ...allocationGrid(result.allocation),
    allocationPath: files.allocationPath,
    yamlPaths: files.yamlPaths,
    notes: result.notes,
    warnings: result.warnings,
  };
}

/** Where the panel's report of an allocation file lives: "<x>.alloc.json" → "<x>.search.json". */
export function reportPathFor(allocationPath: string): string {
  const base = allocationPath.replace(/(\.alloc)?\.json$/i, '');
  return `${base}.search.json`;
}

/** The YAML files beside an allocation: weight bits and activation bits (ViDiT-Q's two-file shape). */
export function yamlPathsFor(allocationPath: string): [string, string] {
  const base = allocationPath.replace(/(\.alloc)?\.json$/i, '');
  return [`${base}.yaml`, `${base}.act.yaml`];
}

/** A saved report read back: the fields the panel relies on, checked (the file may have been edited). */
export function reportProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'not a JSON object';
  const report = value as Partial<SearchReport>;
  if (report.schema !== SEARCH_REPORT_SCHEMA) return `schema is not ${SEARCH_REPORT_SCHEMA}`;
  if (!Array.isArray(report.ranges) || !Array.isArray(report.layers) || !Array.isArray(report.bits) || !Array.isArray(report.rangeLabels)) {
    return 'ranges, layers, rangeLabels or bits is missing';
  }
  if (report.bits.length !== report.layers.length || report.bits.some((row) => !Array.isArray(row) || row.length !== report.rangeLabels!.length)) {
    return 'bits is not layers × ranges';
  }
  if (typeof report.chosen !== 'object' || report.chosen === null || typeof report.allocationPath !== 'string' || typeof report.modelPath !== 'string') {
    return 'chosen, allocationPath or modelPath is missing';
  }
  return undefined;
}
