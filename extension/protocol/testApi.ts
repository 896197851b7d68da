// What the extension's activate() returns. Integration tests read it to check what the webviews really showed;
// every value here comes from a message the webview itself sent.
import type { RunStatus } from './analysis';
import type { AnalysisToHost } from './analysisPanel';
import type { InspectorToHost } from './inspector';
import type { SearchToHost } from './searchPanel';

export type InspectorRendered = Extract<InspectorToHost, { type: 'rendered' }>;
export type AnalysisRendered = Extract<AnalysisToHost, { type: 'rendered' }>;
export type SearchRendered = Extract<SearchToHost, { type: 'rendered' }>;

/** How the last analysis started stands: its status, rows received so far and the plan's cell count. */
export interface AnalysisRunState {
  recordPath: string;
  status: RunStatus;
  rows: number;
  total: number | undefined;
  message?: string;
}

/** How the last search started stands. */
export interface SearchState {
  status: RunStatus;
  message?: string;
}

export interface QuantLensApi {
  /** Last table render the inspector webview reported for this file (absolute fs path), if any. */
  inspectorRendered(fsPath: string): InspectorRendered | undefined;
  /** Last error message the inspector webview reported showing for this file, if any. */
  inspectorError(fsPath: string): string | undefined;
  /** Labels of the QuantLens Layers tree, depth first, as the tree provider serves them now ("  " per level). */
  layersTreeLabels(): Promise<string[]>;
  /** Labels of the items selected in the QuantLens Layers tree (TreeView.selection): layer names, group labels. */
  layersTreeSelection(): string[];
  /** Whether the QuantLens Layers tree is visible (TreeView.visible). */
  layersTreeVisible(): boolean;
  /** Process id of the running engine process, or undefined when none runs. */
  enginePid(): number | undefined;
  /** The last draw a sensitivity panel's layers × timesteps heatmap reported, while that panel is visible. */
  analysisRendered(): AnalysisRendered | undefined;
  /** Record path of the last analysis started (`quantlens.analyzeSensitivity` resolves to it too). */
  lastRunPath(): string | undefined;
  lastRunState(): AnalysisRunState | undefined;
  /** The last draw a search panel reported (front, chosen point, allocation heatmap), while that panel is visible. */
  searchRendered(): SearchRendered | undefined;
  /** Allocation path of the last search started (`quantlens.searchMixedPrecision` with overrides resolves to it too). */
  lastAllocationPath(): string | undefined;
  lastSearchState(): SearchState | undefined;
}
