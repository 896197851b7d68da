// The bit-allocation solver: an exact multiple-choice knapsack by dynamic programming over a discretized cost axis,
// which gives the least predicted error at every cost of the grid — the whole Pareto front — in one solve; and the
// Lagrangian sweep (each item minimizes error + λ·cost on its own), whose points are the front's convex hull, with its
// gap to the dynamic program at the asked budget.
import type {
  Allocation,
  GridInfo,
  LagrangianReport,
  SearchBudget,
  SearchPoint,
  SearchProblem,
  SearchResult,
} from '../../protocol/search';
import { buildItems, checkNumber, describeCost, maxCostOf, SearchError, type SearchItem } from './problem';

export const DEFAULT_GRID_CELLS = 8192;
/** Option × cell steps an exact grid may take (a few hundred ms) before rounding to DEFAULT_GRID_CELLS takes over. */
const EXACT_WORK_LIMIT = 2e8;
/** The choice table holds items × (cells + 1) entries; past this many the grid is too fine to keep in memory. */
const MAX_TABLE_ENTRIES = 2 ** 28;

export interface SolveOptions {
  /** Cells of the cost grid when costs are not whole multiples of a common step (default DEFAULT_GRID_CELLS). */
  gridCells?: number;
}

/** An item's options the dynamic program considers: the Pareto-optimal ones, cheapest first. */
interface ItemOptions {
  /** Indices into the item's optionIds. */
  index: number[];
  cost: number[];
  error: number[];
  /** Cost in grid cells above the item's cheapest option. */
  cells: number[];
}

type PointSource = { kind: 'grid'; cell: number } | { kind: 'hull'; step: number };

function paretoOptions(item: SearchItem): Omit<ItemOptions, 'cells'> {
  const order = [...item.costs.keys()].sort((a, b) => item.costs[a] - item.costs[b] || item.errors[a] - item.errors[b] || a - b);
  const kept: Omit<ItemOptions, 'cells'> = { index: [], cost: [], error: [] };
  for (const o of order) {
    if (kept.error.length > 0 && item.errors[o] >= kept.error[kept.error.length - 1]) continue;
    kept.index.push(o);
    kept.cost.push(item.costs[o]);
    kept.error.push(item.errors[o]);
  }
  return kept;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Integer costs sharing a divisor make an exact grid (one cell = that divisor), used when it has at most `gridCells`
 * cells or its dynamic program stays within EXACT_WORK_LIMIT steps. Otherwise each option's extra cost is rounded UP
 * to whole cells of a `gridCells` grid, so a cell count never understates real cost. Each cell also carries the real
 * cost of the allocation it holds and budgets compare real costs, so no point exceeds its budget either way. What
 * rounding can lose: allocations whose costs round to the same cell compete on error alone, and their real costs
 * differ by less than one cell per item, so a point is at least as good as the exact optimum with that much
 * (GridInfo.slack) less budget.
 */
function discretize(options: Omit<ItemOptions, 'cells'>[], gridCells: number): { cellCost: number; exact: boolean; cells: number[][] } {
  const extras = options.map((item) => item.cost.map((cost) => cost - item.cost[0]));
  const span = extras.reduce((sum, item) => sum + item[item.length - 1], 0);
  if (span === 0) return { cellCost: 1, exact: true, cells: extras.map((item) => item.map(() => 0)) };
  if (options.every((item) => item.cost.every(Number.isSafeInteger)) && span <= Number.MAX_SAFE_INTEGER) {
    const step = extras.flat().reduce(gcd, 0);
    const steps = options.reduce((sum, item) => sum + item.cost.length, 0) * (span / step);
    if (span / step <= gridCells || steps <= EXACT_WORK_LIMIT) {
      return { cellCost: step, exact: true, cells: extras.map((item) => item.map((extra) => extra / step)) };
    }
  }
  const cellCost = span / gridCells;
  return { cellCost, exact: false, cells: extras.map((item) => item.map((extra) => Math.ceil(extra / cellCost))) };
}

/** Lower convex hull of one item's Pareto options (local indices), collinear middle points dropped. */
function convexHull(options: ItemOptions): number[] {
  const hull: number[] = [];
  for (let o = 0; o < options.cost.length; o++) {
    while (hull.length >= 2) {
      const [a, b] = [hull[hull.length - 2], hull[hull.length - 1]];
      // Keep b only if the slope a→b is strictly below the slope b→o (cross-multiplied: cost differences are > 0).
      const slopeIn = (options.error[b] - options.error[a]) * (options.cost[o] - options.cost[b]);
      const slopeOut = (options.error[o] - options.error[b]) * (options.cost[b] - options.cost[a]);
      if (slopeIn < slopeOut) break;
      hull.pop();
    }
    hull.push(o);
  }
  return hull;
}

/** The solved problem: its front, its Lagrangian hull, and the allocation behind any of their points. */
export class ParetoFront {
  /** Cost strictly up, error strictly down; costs include the problem's fixedCost. */
  readonly points: SearchPoint[];
  readonly hull: (SearchPoint & { lambda: number })[];
  readonly grid: GridInfo;
  private readonly sources: PointSource[];

  constructor(
    readonly problem: SearchProblem,
    private readonly items: SearchItem[],
    private readonly options: ItemOptions[],
    grid: GridInfo,
    private readonly choiceTable: Uint8Array | Uint16Array,
    private readonly width: number,
    gridPoints: { cell: number; cost: number; error: number }[],
    /** The sweep's moves in order: item and the local option it moves to. */
    private readonly moves: { item: number; to: number }[],
    hull: (SearchPoint & { lambda: number })[],
  ) {
    this.grid = grid;
    this.hull = hull;
    const candidates = [
      ...gridPoints.map((point) => ({ cost: point.cost, error: point.error, source: { kind: 'grid', cell: point.cell } as PointSource })),
      // Rounded grids can miss a hull point that fits the budget; taking them in keeps the front at least as good.
      ...hull.map((point, step) => ({ cost: point.cost, error: point.error, source: { kind: 'hull', step } as PointSource })),
    ].sort((a, b) => a.cost - b.cost || a.error - b.error);
    this.points = [];
    this.sources = [];
    for (const candidate of candidates) {
      if (this.points.length > 0 && candidate.error >= this.points[this.points.length - 1].error) continue;
      this.points.push({ cost: candidate.cost, error: candidate.error });
      this.sources.push(candidate.source);
    }
  }

  /** The allocation behind front point `index`. */
  allocationAt(index: number): Allocation {
    const source = this.sources[index];
    if (source === undefined) throw new RangeError(`front point ${index} does not exist (the front has ${this.points.length})`);
    const local = source.kind === 'grid' ? this.backtrack(source.cell) : this.replay(source.step);
    return this.toAllocation(local, this.points[index]);
  }

  /** The allocation behind Lagrangian hull point `step`. */
  hullAllocationAt(step: number): Allocation {
    if (step < 0 || step >= this.hull.length) throw new RangeError(`hull point ${step} does not exist (the hull has ${this.hull.length})`);
    return this.toAllocation(this.replay(step), this.hull[step]);
  }

  /** The front point a budget picks, and how the Lagrangian sweep does at the same budget. */
  pick(budget: SearchBudget): { index: number; maxCost: number | null; lagrangian: LagrangianReport } {
    const { points, hull, problem } = this;
    if (budget.kind === 'errorTarget') {
      const target = budget.maxError;
      checkNumber(problem.source, target, 'the error target');
      const index = points.findIndex((point) => point.error <= target);
      if (index < 0) {
        const least = points[points.length - 1];
        throw new SearchError(
          problem.source,
          `error target ${significant(target)} is below the least achievable predicted error, ${significant(least.error)} (at ${describeCost(problem, least.cost, 'averageBits')})`,
        );
      }
      const step = hull.findIndex((candidate) => candidate.error <= target);
      const point = hull[step];
      const before = hull[step - 1];
      const lowerBound = before ? before.cost + ((before.error - target) / (before.error - point.error)) * (point.cost - before.cost) : point.cost;
      return { index, maxCost: null, lagrangian: { hull, point, gap: point.cost - points[index].cost, lowerBound } };
    }
    const maxCost = maxCostOf(problem, budget);
    const index = lastIndexWithin(points, maxCost);
    if (index < 0) {
      throw new SearchError(
        problem.source,
        `budget of ${describeCost(problem, maxCost, budget.kind)} is below the cheapest allocation, ${describeCost(problem, points[0].cost, budget.kind)}`,
      );
    }
    const step = lastIndexWithin(hull, maxCost);
    const point = hull[step];
    const after = hull[step + 1];
    const lowerBound = after ? point.error - ((maxCost - point.cost) / (after.cost - point.cost)) * (point.error - after.error) : point.error;
    return { index, maxCost, lagrangian: { hull, point, gap: point.error - points[index].error, lowerBound } };
  }

  private backtrack(cell: number): number[] {
    const local = new Array<number>(this.items.length);
    for (let item = this.items.length - 1; item >= 0; item--) {
      const option = this.choiceTable[item * this.width + cell];
      local[item] = option;
      cell -= this.options[item].cells[option];
    }
    return local;
  }

  private replay(step: number): number[] {
    const local = sweepStart(this.options);
    for (let move = 0; move < step; move++) local[this.moves[move].item] = this.moves[move].to;
    return local;
  }

  private toAllocation(local: number[], point: SearchPoint): Allocation {
    const choices = new Array<Allocation['choices'][number]>(this.problem.units.length);
    this.items.forEach((item, i) => {
      const id = item.optionIds[this.options[i].index[local[i]]];
      for (const unitIndex of item.units) {
        const unit = this.problem.units[unitIndex];
        const option = unit.options.find((candidate) => candidate.id === id)!;
        choices[unitIndex] = {
          unit: unit.name,
          option: id,
          weightBits: option.weightBits,
          activationBits: option.activationBits,
          cost: option.cost,
          error: option.error,
        };
      }
    });
    return { cost: point.cost, error: point.error, choices };
  }
}

/** The sweep starts every item at its cheapest option, the first point of its hull (local index 0). */
function sweepStart(options: ItemOptions[]): number[] {
  return options.map(() => 0);
}

const significant = (value: number) => Number(value.toPrecision(6)).toString();

function lastIndexWithin(points: SearchPoint[], maxCost: number): number {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (points[middle].cost <= maxCost) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/** Solves for the whole front in one dynamic program, and runs the Lagrangian sweep beside it. */
export function solveFront(problem: SearchProblem, solveOptions: SolveOptions = {}): ParetoFront {
  const gridCells = solveOptions.gridCells ?? DEFAULT_GRID_CELLS;
  if (!Number.isInteger(gridCells) || gridCells < 1) {
    throw new SearchError(problem.source, `grid cells must be a whole number ≥ 1, not ${gridCells}`);
  }
  const items = buildItems(problem);
  const pareto = items.map(paretoOptions);
  const { cellCost, exact, cells } = discretize(pareto, gridCells);
  const options: ItemOptions[] = pareto.map((item, i) => ({ ...item, cells: cells[i] }));
  const width = options.reduce((sum, item) => sum + item.cells[item.cells.length - 1], 0) + 1;
  if (items.length * width > MAX_TABLE_ENTRIES) {
    throw new SearchError(problem.source, `a grid of ${gridCells} cells over ${items.length} items needs too much memory; use fewer cells`);
  }
  const maxOptions = options.reduce((most, item) => Math.max(most, item.cost.length), 0);
  const choiceTable = maxOptions <= 256 ? new Uint8Array(items.length * width) : new Uint16Array(items.length * width);

  // error[cell]: least summed error of the items so far whose grid costs sum to exactly `cell`; cost[cell]: its real
  // cost (ties in error go to the cheaper). Summing item by item in order keeps sums identical to the sweep's.
  let error = new Float64Array(width).fill(Infinity);
  let cost = new Float64Array(width);
  let nextError = new Float64Array(width);
  let nextCost = new Float64Array(width);
  error[0] = 0;
  let reach = 0;
  for (let item = 0; item < items.length; item++) {
    const { cost: optionCost, error: optionError, cells: optionCells } = options[item];
    const nextReach = reach + optionCells[optionCells.length - 1];
    nextError.fill(Infinity, 0, nextReach + 1);
    const row = item * width;
    for (let option = 0; option < optionCost.length; option++) {
      const addedError = optionError[option];
      const addedCost = optionCost[option];
      const shift = optionCells[option];
      for (let cell = 0; cell <= reach; cell++) {
        const base = error[cell];
        if (base === Infinity) continue;
        const candidate = base + addedError;
        const target = cell + shift;
        const current = nextError[target];
        if (candidate < current || (candidate === current && cost[cell] + addedCost < nextCost[target])) {
          nextError[target] = candidate;
          nextCost[target] = cost[cell] + addedCost;
          choiceTable[row + target] = option;
        }
      }
    }
    [error, nextError] = [nextError, error];
    [cost, nextCost] = [nextCost, cost];
    reach = nextReach;
  }
  const gridPoints: { cell: number; cost: number; error: number }[] = [];
  for (let cell = 0; cell < width; cell++) {
    if (error[cell] !== Infinity) gridPoints.push({ cell, cost: cost[cell] + problem.fixedCost, error: error[cell] });
  }

  const { moves, hull } = lagrangianSweep(options, problem.fixedCost);
  const grid: GridInfo = { cells: width - 1, cellCost, exact, slack: exact ? 0 : items.length * cellCost, items: items.length };
  return new ParetoFront(problem, items, options, grid, choiceTable, width, gridPoints, moves, hull);
}

/**
 * λ falling from ∞ to 0: each item walks its own convex hull, and the walks merge in order of error saved per unit of
 * cost. Every point reached minimizes Σ error + λ·Σ cost for some λ; `lambda` is the smallest such λ.
 */
function lagrangianSweep(options: ItemOptions[], fixedCost: number) {
  const segments: { item: number; to: number; efficiency: number }[] = [];
  options.forEach((item, index) => {
    const hull = convexHull(item);
    for (let k = 1; k < hull.length; k++) {
      const [from, to] = [hull[k - 1], hull[k]];
      segments.push({ item: index, to, efficiency: (item.error[from] - item.error[to]) / (item.cost[to] - item.cost[from]) });
    }
  });
  // Within an item efficiencies fall along its hull, and the sort is stable: each item's moves stay in hull order.
  segments.sort((a, b) => b.efficiency - a.efficiency);
  const local = sweepStart(options);
  const pointOf = (lambda: number) => {
    let cost = 0;
    let error = 0;
    options.forEach((item, i) => {
      cost += item.cost[local[i]];
      error += item.error[local[i]];
    });
    return { cost: cost + fixedCost, error, lambda };
  };
  const hull = [pointOf(segments[0]?.efficiency ?? 0)];
  segments.forEach((segment, step) => {
    local[segment.item] = segment.to;
    hull.push(pointOf(segments[step + 1]?.efficiency ?? 0));
  });
  return { moves: segments.map(({ item, to }) => ({ item, to })), hull };
}

/** Solves and picks the budget's point: the front, the chosen allocation, and the Lagrangian sweep's gap. */
export function search(problem: SearchProblem, budget: SearchBudget, solveOptions: SolveOptions = {}): SearchResult {
  const started = performance.now();
  const front = solveFront(problem, solveOptions);
  const { index, maxCost, lagrangian } = front.pick(budget);
  const allocation = front.allocationAt(index);
  return {
    budget,
    maxCost,
    front: front.points,
    chosenIndex: index,
    allocation,
    lagrangian,
    grid: front.grid,
    solveMs: performance.now() - started,
  };
}
