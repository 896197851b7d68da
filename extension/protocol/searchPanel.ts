// The mixed-precision search as the editor runs it: the engine methods' params, events and results (engine
// `search` and `exportQdq`), the compact report the search panel draws, and the panel's messages
// (features/search ↔ webview/search).
import type { RunStatus } from './analysis';
import type { SearchBudget } from './search';

export interface SearchParams {
  /** The sensitivity run record (.json) the search starts from. */
  runPath: string;
  /** The model to measure on (default: the run's). */
  modelPath?: string;
  /** As the CLI takes it: "5bits", "4.5bits", "40MB", "error<=0.001". */
  budget: string;
  /** Timestep ranges, each with its own allocation (1 for models without a timestep). */
  rangeCount: number;
  /** Measurements the refinement may take (0: none). */
  refine: number;
  /** Where the allocation JSON goes; its YAML and the panel's report are written beside it. */
  outPath: string;
  /** Regular expressions, as the CLI's --pin (case-insensitive): the run's layers that match stay in full precision. */
  pins?: string[];
  /** The run's setting ids to choose from, as the CLI's --settings (default: all; full precision always is one). */
  settings?: string[];
}

export type SearchEvent =
  | { kind: 'progress'; stage: string; done: number; total: number }
  | { kind: 'step'; step: SearchReportStep };

/** A point in the panel's units: `cost` per range in the budget's words (average bits, MB or BOPs). */
export interface ReportPoint {
  cost: number;
  error: number;
}

/** An allocation measured with every layer quantized at once: predicted against measured. */
export interface ReportMeasured {
  label: string;
  predicted: ReportPoint;
  /** Relative noise power of the output (null when not finite), and as SQNR in dB. */
  measured: { error: number | null; sqnrDb: number | null };
  /** For uniform baselines: within the budget. */
  fits?: boolean;
}

export interface SearchReportStep {
  index: number;
  range: string;
  /** "blocks.0.attn.qkv W4→W6, …" */
  moves: string;
  predicted: number;
  measured: number | null;
  accepted: boolean;
}

export interface SearchReportRange {
  label: string;
  /** The Pareto front of this range (predicted), cost in the panel's units. */
  front: ReportPoint[];
  chosenIndex: number;
  /** The budget in the panel's units. */
  maxCost: number | null;
  solveMs: number;
  exact: boolean;
}

export interface SearchReport {
  /** 'quantlens.searchReport/1' */
  schema: typeof SEARCH_REPORT_SCHEMA;
  modelPath: string;
  runPath?: string;
  runId?: string;
  budget: SearchBudget | null;
  /** What the cost axis is: "average weight bits", "MB", "BOPs". */
  costLabel: string;
  ranges: SearchReportRange[];
  /** The solver's point, measured; absent when the report was rebuilt from an allocation file alone. */
  solved?: ReportMeasured;
  /** What the user is told: the refined point (or the solver's), predicted and measured. */
  chosen: ReportMeasured;
  uniform: ReportMeasured[];
  refinement: SearchReportStep[];
  /** Heatmap rows: the allocated layers, in the allocation's order. */
  layers: string[];
  /** Heatmap columns: the timestep ranges' labels. */
  rangeLabels: string[];
  /** bits[layer][range]: weight bits (16 = left in floating point). */
  bits: number[][];
  /** activationBits[layer][range], null = floating point; absent when no layer quantizes activations. */
  activationBits?: (number | null)[][];
  allocationPath: string;
  yamlPaths: string[];
  notes: string[];
  warnings: string[];
}

export const SEARCH_REPORT_SCHEMA = 'quantlens.searchReport/1';

export interface ExportParams {
  modelPath: string;
  allocationPath: string;
  /** The run the allocation came from: its calibration inputs calibrate the activation scales. */
  runPath?: string;
}

export interface ExportedModel {
  rangeLabel: string;
  outPath: string;
  originalBytes: number;
  exportedBytes: number;
  weights: number;
  activations: number;
  /** Output name → SQNR (dB) of the exported model against the full-precision one (null: not finite). */
  sqnrDb: Record<string, number | null>;
  notes: string[];
}

export interface ExportReport {
  models: ExportedModel[];
}

/** What the launch form edits. */
export interface SearchForm {
  /** A cost budget, or a quality target: the cheapest allocation predicted to keep the output's SQNR at least this. */
  budgetKind: 'averageBits' | 'sizeMB' | 'minSqnrDb';
  /** Average weight bits (2…8), megabytes, or the minimum SQNR in dB. */
  budgetValue: number;
  rangeCount: number;
  refine: number;
  /** A regular expression (case-insensitive): the run's layers that match stay in full precision. '' pins none. */
  pin: string;
  /** The run's setting ids the search chooses from (full precision always is a choice). */
  settings: string[];
}

export type HostToSearch =
  /**
   * The launch form for a run. `maxRanges` is the run's timestep count (1: no per-timestep ranges); `runSettings` its
   * setting ids and `units` its searchable layers (or groups), which the pin pattern is matched against.
   */
  | { type: 'form'; runPath: string; runName: string; form: SearchForm; maxRanges: number; runSettings: string[]; units: string[]; modelMB: number | null }
  | { type: 'progress'; stage: string; done: number; total: number }
  | { type: 'step'; step: SearchReportStep }
  /** A finished search (or one reopened from its saved report). */
  | { type: 'report'; report: SearchReport; reportPath?: string }
  | { type: 'exported'; report: ExportReport }
  | { type: 'status'; status: RunStatus; message?: string };

export type SearchToHost =
  | { type: 'ready' }
  | { type: 'start'; form: SearchForm }
  | { type: 'cancel' }
  | { type: 'newSearch' }
  | { type: 'exportQdq' }
  | { type: 'openAllocation' }
  /** What the panel drew, after each draw of a report: lets tests check the webview for real. */
  | { type: 'rendered'; frontPoints: number; chosenCost: number; allocationCells: number; measured: number | null };
