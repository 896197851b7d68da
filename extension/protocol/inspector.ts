// Messages between the inspector's host half (features/inspector) and its webview (webview/inspector).
import type { LayerRecord, ModelSummary } from './records';

export type HostToInspector =
  | { type: 'loading'; fileName: string }
  | { type: 'progress'; done: number; total: number }
  | { type: 'summary'; summary: ModelSummary }
  | { type: 'layers'; layers: LayerRecord[] }
  | { type: 'done'; elapsedMs: number }
  | { type: 'error'; message: string }
  /** Select (and scroll to) a layer, e.g. from the Layers tree view. */
  | { type: 'select'; name: string };

export type InspectorToHost =
  | { type: 'ready' }
  /** The user selected a row. */
  | { type: 'selected'; name: string }
  /** What the table shows now, reported after each render: lets tests check the webview for real. */
  | { type: 'rendered'; rowCount: number; totalRows: number; selected: string | null; firstNames: string[] }
  /** The webview is showing an error message (bad or unsupported file). */
  | { type: 'shownError'; message: string };
