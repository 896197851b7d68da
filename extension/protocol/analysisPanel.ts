// Messages between the sensitivity panel's host half (features/analysis) and its webview (webview/analysis).
import type { ActivationMode, ActivationRange, AnalysisRun, RunStatus, SensitivityRow } from './analysis';

/** What the launch form edits; the host turns it into AnalysisSettings (defaults from the extension's settings). */
export interface AnalysisForm {
  weightBits: number[];
  activationBits: number[];
  activationMode: ActivationMode;
  /** Also a setting for each weight × activation pair (W4A8, …). */
  combine?: boolean;
  /** 0 = per channel. */
  groupSize: number;
  /** Weights symmetric (default) or asymmetric with a zero point per channel or group. */
  weightSymmetric?: boolean;
  unit: 'layer' | 'group';
  calibrationSource: string;
  samples: number;
  /** Empty when the model has no timestep input. */
  timestepInput: string;
  timestepCount: number;
  /** Other tensors fake-quantized with the activation settings, each its own unit (e.g. attention K and V). */
  extraActivationTensors?: string[];
  /** Sizes of symbolic input dims other than the batch, e.g. {"seq": 16}: quantlens.analysis.dims (the form does not show them). */
  dims?: Record<string, number>;
}

export type HostToAnalysis =
  /**
   * Show the launch form (no run yet), prefilled. `timestepInputs` lists the model inputs that look like timesteps.
   * `modelPath` (and `recordPath` below) go into the webview's saved state, so the panel can be restored after a reload.
   */
  | { type: 'form'; fileName: string; form: AnalysisForm; timestepInputs: string[]; modelPath?: string }
  /** A whole record: a run that starts, or a saved run reopened. */
  | { type: 'run'; run: AnalysisRun; recordPath?: string }
  | { type: 'rows'; rows: SensitivityRow[]; ranges: ActivationRange[] }
  | { type: 'progress'; done: number; total: number; etaMs: number | null }
  | { type: 'status'; status: RunStatus; message?: string };

export type AnalysisToHost =
  | { type: 'ready' }
  | { type: 'start'; form: AnalysisForm }
  | { type: 'cancel' }
  /** Show the launch form again (for the same model) after a run ended. */
  | { type: 'newAnalysis' }
  | { type: 'exportCsv' }
  /** "Search bit allocation…" on a complete run: opens the mixed-precision search for its record. */
  | { type: 'searchAllocation' }
  /** A heatmap cell or bar was clicked: reveal the layer in the inspector. */
  | { type: 'revealLayer'; name: string }
  /** What the heatmaps show now, reported after each draw: lets tests check the webview for real. */
  | { type: 'rendered'; cells: number; units: number; timesteps: number; setting: string; metric: string };
