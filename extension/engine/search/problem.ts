// Checking a search problem, turning ties and pins into decision items, and turning a budget into a cost bound.
import { ModelError } from '../errors';
import type { SearchBudget, SearchProblem } from '../../protocol/search';

/** A problem or budget that cannot be solved as asked; names the run or model the problem came from. */
export class SearchError extends ModelError {
  constructor(source: string, problem: string) {
    super(source, problem);
    this.name = 'SearchError';
  }
}

/** One decision of the solver: a unit alone, or a tie set moving as one (costs and errors summed per shared option). */
export interface SearchItem {
  /** Indices into problem.units. */
  units: number[];
  /** Option ids, the same for every member. */
  optionIds: string[];
  costs: Float64Array;
  errors: Float64Array;
}

const MAX_LISTED = 5;

export function listNames(names: string[]): string {
  const shown = names.slice(0, MAX_LISTED).map((name) => JSON.stringify(name));
  return names.length > MAX_LISTED ? `${shown.join(', ')} and ${names.length - MAX_LISTED} more` : shown.join(', ');
}

export function checkNumber(source: string, value: number, what: string): void {
  if (!Number.isFinite(value) || value < 0) throw new SearchError(source, `${what} must be a finite number ≥ 0, not ${value}`);
}

/** Checks names, options and numbers, and merges tie sets and pins into the solver's items. */
export function buildItems(problem: SearchProblem): SearchItem[] {
  const { source, units } = problem;
  if (units.length === 0) throw new SearchError(source, 'the search problem has no layers to allocate');
  checkNumber(source, problem.fixedCost, 'fixedCost');
  checkNumber(source, problem.totalParams, 'totalParams');
  const indexOf = new Map<string, number>();
  for (const [index, unit] of units.entries()) {
    if (indexOf.has(unit.name)) throw new SearchError(source, `layer ${JSON.stringify(unit.name)} appears twice`);
    indexOf.set(unit.name, index);
    if (unit.options.length === 0) throw new SearchError(source, `layer ${JSON.stringify(unit.name)} has no options`);
    const ids = new Set<string>();
    for (const option of unit.options) {
      const what = `layer ${JSON.stringify(unit.name)} option ${JSON.stringify(option.id)}`;
      if (ids.has(option.id)) throw new SearchError(source, `${what} appears twice`);
      ids.add(option.id);
      checkNumber(source, option.cost, `${what}: cost`);
      checkNumber(source, option.error, `${what}: error`);
    }
  }

  const named = [...problem.ties.flat(), ...Object.keys(problem.pins)];
  const unknown = [...new Set(named.filter((name) => !indexOf.has(name)))];
  if (unknown.length > 0) {
    throw new SearchError(source, `unknown layer${unknown.length > 1 ? 's' : ''} in ties or pins: ${listNames(unknown)}`);
  }

  // Union-find over units so that overlapping tie sets become one.
  const parent = units.map((_, index) => index);
  const root = (index: number): number => {
    while (parent[index] !== index) index = parent[index] = parent[parent[index]];
    return index;
  };
  for (const tie of problem.ties) {
    for (const name of tie.slice(1)) parent[root(indexOf.get(name)!)] = root(indexOf.get(tie[0])!);
  }
  const members = new Map<number, number[]>();
  for (let index = 0; index < units.length; index++) {
    const key = root(index);
    members.set(key, [...(members.get(key) ?? []), index]);
  }

  return [...members.values()].map((memberIndices) => {
    const memberNames = memberIndices.map((index) => units[index].name);
    const pinned = new Set(memberIndices.flatMap((index) => (units[index].name in problem.pins ? [problem.pins[units[index].name]] : [])));
    if (pinned.size > 1) {
      throw new SearchError(source, `tied layers ${listNames(memberNames)} are pinned to different options: ${listNames([...pinned])}`);
    }
    const shared = units[memberIndices[0]].options
      .map((option) => option.id)
      .filter((id) => memberIndices.every((index) => units[index].options.some((option) => option.id === id)));
    const [pin] = [...pinned];
    if (pin !== undefined && !shared.includes(pin)) {
      const where = memberIndices.length > 1 ? `tied layers ${listNames(memberNames)} do not all have` : `layer ${JSON.stringify(memberNames[0])} does not have`;
      throw new SearchError(source, `pinned option ${JSON.stringify(pin)}: ${where} it (options: ${listNames(units[memberIndices[0]].options.map((o) => o.id))})`);
    }
    if (shared.length === 0) throw new SearchError(source, `tied layers ${listNames(memberNames)} share no option`);
    const optionIds = pin !== undefined ? [pin] : shared;
    const costs = new Float64Array(optionIds.length);
    const errors = new Float64Array(optionIds.length);
    optionIds.forEach((id, o) => {
      for (const index of memberIndices) {
        const option = units[index].options.find((candidate) => candidate.id === id)!;
        costs[o] += option.cost;
        errors[o] += option.error;
      }
    });
    return { units: memberIndices, optionIds, costs, errors };
  });
}

const BITS_PER_MB = 8e6;

export type CostBudget = Exclude<SearchBudget, { kind: 'errorTarget' }>;

/** The largest total cost (fixedCost included) a cost budget allows. */
export function maxCostOf(problem: SearchProblem, budget: CostBudget): number {
  const needs = (unit: SearchProblem['costUnit'], what: string) => {
    if (problem.costUnit !== unit) {
      throw new SearchError(problem.source, `a budget in ${what} needs costs in ${unit}, but this problem's costs are in ${problem.costUnit}`);
    }
  };
  const positive = (value: number, what: string) => {
    checkNumber(problem.source, value, what);
    return value;
  };
  switch (budget.kind) {
    case 'averageBits':
      needs('bits', 'average bits');
      return positive(budget.bits, 'the average-bits budget') * problem.totalParams;
    case 'sizeMB':
      needs('bits', 'megabytes');
      return positive(budget.megabytes, 'the size budget') * BITS_PER_MB;
    case 'bops':
      needs('bops', 'bit-operations');
      return positive(budget.bops, 'the bit-operation budget');
  }
}

/** A total cost (problem units: stored bits or BOPs) in a budget kind's units: BOPs, MB, or average weight bits. */
export function displayCost(problem: Pick<SearchProblem, 'costUnit' | 'totalParams'>, cost: number, kind: SearchBudget['kind'] | undefined): number {
  if (problem.costUnit === 'bops') return cost;
  if (kind === 'sizeMB') return cost / BITS_PER_MB;
  return problem.totalParams > 0 ? cost / problem.totalParams : 0;
}

/** A total cost in the words of a budget kind: "4.31 average bits", "12.5 MB", "3.2e9 BOPs". */
export function describeCost(problem: SearchProblem, cost: number, kind: SearchBudget['kind']): string {
  const value = Number(displayCost(problem, cost, kind).toPrecision(4)).toString();
  if (problem.costUnit === 'bops') return `${value} BOPs`;
  return kind === 'sizeMB' ? `${value} MB` : `${value} average bits`;
}

/** Reads a budget as the CLI takes it: "5bits", "4.5 bits", "40MB", "2e9bops", "error<=0.01". */
export function parseBudget(text: string): SearchBudget {
  const match = /^\s*(error\s*<=?\s*)?([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(bits?|mb|bops)?\s*$/i.exec(text);
  const value = match ? Number(match[2]) : NaN;
  if (match && Number.isFinite(value)) {
    const unit = match[3]?.toLowerCase();
    if (match[1] && !unit) return { kind: 'errorTarget', maxError: value };
    if (!match[1] && (unit === 'bit' || unit === 'bits')) return { kind: 'averageBits', bits: value };
    if (!match[1] && unit === 'mb') return { kind: 'sizeMB', megabytes: value };
    if (!match[1] && unit === 'bops') return { kind: 'bops', bops: value };
  }
  throw new Error(`cannot read budget ${JSON.stringify(text)}: write e.g. "5bits" (average weight bits), "40MB", "2e9bops" or "error<=0.01"`);
}
