// The one typed protocol between the extension host and the engine process.
// Requests carry an id; the engine answers with exactly one `response` or `error` for that id and may send any
// number of `event`s before it. `cancel` asks the engine to stop the request; it then answers with an error whose
// code is 'cancelled'.
import type { ActivationRange, AnalysisRun, AnalysisSettings, SensitivityRow } from './analysis';
import type { LayerRecord, ModelSummary, InspectOptions } from './records';
import type { ExportParams, ExportReport, SearchEvent, SearchParams, SearchReport } from './searchPanel';

export type InspectEvent =
  | { kind: 'summary'; summary: ModelSummary }
  | { kind: 'layers'; layers: LayerRecord[] }
  | { kind: 'progress'; done: number; total: number; message?: string };

export interface InspectResult {
  summary: ModelSummary;
  layerCount: number;
  elapsedMs: number;
}

export type AnalysisEvent =
  /** The plan is made and the reference measured; `run.rows` is empty, `run.ranges` complete (the first 'rows'
   *  event repeats them). */
  | { kind: 'started'; run: AnalysisRun }
  | { kind: 'rows'; rows: SensitivityRow[]; ranges: ActivationRange[] }
  | { kind: 'progress'; done: number; total: number; etaMs: number | null; message?: string };

export interface AnalyzeParams {
  settings: AnalysisSettings;
  /** The engine saves the record here as rows arrive (and at the end), so a crash or cancel keeps what finished. */
  recordPath: string;
  /** Run only slice `index` of `count` of the plan. */
  shard?: { index: number; count: number };
}

/** method name → params, result, and the events it streams. */
export interface EngineMethods {
  ping: { params: Record<string, never>; result: { pid: number; node: string; ort: string }; event: never };
  inspect: { params: { path: string; options?: InspectOptions }; result: InspectResult; event: InspectEvent };
  analyze: { params: AnalyzeParams; result: AnalysisRun; event: AnalysisEvent };
  /** Mixed-precision search on a saved run, verified by measurement; writes the allocation, its YAML and the report. */
  search: { params: SearchParams; result: SearchReport; event: SearchEvent };
  /** Each range of an allocation as a QDQ ONNX model next to the model. */
  exportQdq: { params: ExportParams; result: ExportReport; event: never };
}
export type EngineMethod = keyof EngineMethods;

export type ErrorCode = 'bad-input' | 'cancelled' | 'engine-crashed' | 'internal';

export interface EngineErrorInfo {
  code: ErrorCode;
  message: string;
  /** The file the problem is about, when there is one. */
  file?: string;
}

export type HostToEngine =
  | { type: 'request'; id: number; method: EngineMethod; params: unknown }
  | { type: 'cancel'; id: number };

export type EngineToHost =
  | { type: 'response'; id: number; result: unknown }
  | { type: 'error'; id: number; error: EngineErrorInfo }
  | { type: 'event'; id: number; event: unknown }
  /** Sent once when the engine process is ready for requests. */
  | { type: 'ready'; pid: number };
