// Mixed-precision search: the allocation problem (per unit a list of options with a cost and a predicted error), the
// budget it is solved under, and what the solver returns. Shared by the engine, the CLI and the search panel.

/** Id of the full-precision option every unit built from a run has (error 0). */
export const FULL_PRECISION_OPTION = 'FP';

/** One way to run a unit: a setting of the sensitivity run, or full precision. */
export interface SearchOption {
  /** The run's setting id ("W4", "W4A8") or FULL_PRECISION_OPTION. Unique within a unit. */
  id: string;
  /** Stored weight bits; the full-precision width (16 unless the caller says otherwise) when weights stay as they are. */
  weightBits: number;
  /** Activation bits, or null when activations are not quantized. */
  activationBits: number | null;
  /** What the option costs in the problem's cost unit (finite, ≥ 0). */
  cost: number;
  /** Predicted damage (finite, ≥ 0); the solver minimizes the sum over units. */
  error: number;
}

/** What the solver decides about: a layer, or (for group-unit runs) a group whose layers move together. */
export interface SearchUnit {
  name: string;
  /** Weight elements the unit covers: the denominator of average bits. */
  params: number;
  /** The model layers the unit stands for when it is a group; absent when the unit is a layer. */
  members?: string[];
  options: SearchOption[];
}

/**
 * 'bits': stored weight bits (params × weight bits), so average bits and megabytes are budgets over it.
 * 'bops': bit-operations (MACs × weight bits × activation bits).
 */
export type CostUnit = 'bits' | 'bops';

export interface SearchProblem {
  /** The file the problem came from (run record or model); errors name it. */
  source: string;
  costUnit: CostUnit;
  units: SearchUnit[];
  /** Sets of unit names that must take the same option (q/k/v). Overlapping sets are joined. */
  ties: string[][];
  /** unit name → the option id it must take (embedders and final layer at FULL_PRECISION_OPTION). */
  pins: Record<string, string>;
  /** Cost of what the search does not touch (layers left out of the run, kept at full precision); counts against the budget. */
  fixedCost: number;
  /** Weight elements the average-bits budget averages over: the units' and the fixed layers'. */
  totalParams: number;
  /** The timesteps whose errors this problem holds (null: a model without a timestep), when built from a run. */
  timesteps?: (number | null)[];
}

/** Budgets bound the total cost (units + fixedCost); an error target bounds the summed error and minimizes cost. */
export type SearchBudget =
  | { kind: 'averageBits'; bits: number }
  /** Megabytes are 10^6 bytes. */
  | { kind: 'sizeMB'; megabytes: number }
  | { kind: 'bops'; bops: number }
  | { kind: 'errorTarget'; maxError: number };

/** A point of the front: total cost (fixedCost included) and predicted summed error. */
export interface SearchPoint {
  cost: number;
  error: number;
}

export interface UnitChoice {
  unit: string;
  option: string;
  weightBits: number;
  activationBits: number | null;
  cost: number;
  error: number;
}

export interface Allocation extends SearchPoint {
  /** One per unit, in the problem's unit order. */
  choices: UnitChoice[];
}

/** How the cost axis was discretized for the dynamic program. */
export interface GridInfo {
  /** Cells of the cost grid (its width is cells + 1). */
  cells: number;
  /** Cost of one cell. */
  cellCost: number;
  /**
   * True when every option's cost is a whole number of cells (integer costs sharing a divisor): the front is then the
   * exact Pareto front. When false, costs were rounded up to whole cells, so no returned point exceeds its budget, but
   * a point can miss allocations that fit only without the rounding: its error is at most the exact optimum's at a
   * budget `slack` lower.
   */
  exact: boolean;
  /** Items after ties are merged × cellCost (0 when exact): the most cost the rounding can waste. */
  slack: number;
  /** Decision items after merging tie sets (pinned items included). */
  items: number;
}

/** The Lagrangian sweep (minimize error + λ·cost item by item) against the dynamic program at the asked budget. */
export interface LagrangianReport {
  /** The points the sweep reaches as λ falls from ∞ to 0: the lower convex hull of the achievable points. */
  hull: (SearchPoint & { lambda: number })[];
  /** The hull's best point within the budget (cost budgets) or its cheapest meeting the target (error targets). */
  point: SearchPoint;
  /**
   * How much worse the sweep is than the dynamic program: in error for cost budgets, in cost for error targets. ≥ 0;
   * zero when the optimum lies on a vertex of the convex hull.
   */
  gap: number;
  /**
   * The linear-programming relaxation at the budget (the hull interpolated there): no allocation within the budget
   * has less error (cost budgets), none meeting the target costs less (error targets). The chosen point minus this
   * bounds how far it can be from the true optimum, even when the grid was rounded.
   */
  lowerBound: number;
}

export interface SearchResult {
  budget: SearchBudget;
  /** The largest total cost the budget allows, or null for an error target. */
  maxCost: number | null;
  /** Non-dominated points: cost strictly up, error strictly down. */
  front: SearchPoint[];
  /** Index into `front` of the chosen point, and its allocation. */
  chosenIndex: number;
  allocation: Allocation;
  lagrangian: LagrangianReport;
  grid: GridInfo;
  solveMs: number;
}
