// Sensitivity analysis: its settings, its plan and the run record saved under `.quantlens/runs/`.
// The record is what the CLI writes, the engine streams, the panel draws and `quantlens merge` combines.

/** How activations get their scales. */
export type ActivationMode =
  /** Per tensor, scale from the calibration min/max (per timestep when the model has one). */
  | 'static-minmax'
  /** Per tensor, scale from a percentile of |x| over calibration (clips outliers). */
  | 'static-percentile'
  /** Per token (last axis reduced), computed each forward pass: ViDiT-Q's choice. */
  | 'dynamic-token';

export type WeightGranularity = { kind: 'channel' } | { kind: 'group'; size: number };

/** One column of the sweep: what "quantized" means for the unit under test. */
export interface QuantSetting {
  /** Short id used in rows and on axes: "W4", "W8", "A8", "W4A8". */
  id: string;
  /** `symmetric` (default true, as records written before it existed): false = asymmetric with a zero point per
   *  block (weightQuant.ts). One run is all symmetric or all asymmetric for weights. */
  weight?: { bits: number; granularity: WeightGranularity; symmetric?: boolean };
  /** `percentile` (static-percentile only): in percent, default 99.99; the range is that percentile of |x|
   *  (symmetric) or the (100 − p)th and pth percentiles of x (asymmetric). */
  activation?: { bits: number; mode: ActivationMode; symmetric: boolean; percentile?: number };
}

/** A named set of layers analyzed together, and the metric that ranks it (ViDiT-Q-MP's decoupled metrics). */
export interface LayerGroupSpec {
  name: string;
  /** Regular expressions over layer names (case-insensitive, unanchored); a layer joins the first group that
   *  matches, layers no group matches form the group "other". */
  patterns: string[];
  /** Which model output (or intermediate tensor) ranks this group; default: the first model output. */
  metricTensor?: string;
}

export interface AnalysisSettings {
  /** Absolute path of the model analyzed. */
  model: string;
  settings: QuantSetting[];
  /** 'layer': one layer at a time; 'group': one group at a time. Both also get an "all" unit: everything at once. */
  unit: 'layer' | 'group';
  groups: LayerGroupSpec[];
  /** Layers to leave out of the plan (e.g. embedders, final layer): exact names or regular expressions over layer
   *  names (case-insensitive, unanchored). */
  exclude: string[];
  calibration: {
    source?: string;
    samples: number;
    batch: number;
    seed: number;
    dims: Record<string, number>;
  };
  /** Diffusion models: the timestep input and the timesteps analyzed one by one. */
  timestep?: { input: string; values: number[] };
  /** Extra tensors to fake-quantize with the activation setting (e.g. attention K and V for KV-cache quantization). */
  extraActivationTensors: string[];
  executionProvider: 'cpu' | 'cuda';
}

/** NaN (null in JSON) where the quantized output was not finite. */
export interface Metrics {
  mse: number;
  /** 10·log10(Σy² / Σ(y−ŷ)²), capped at 200 dB for an exact match. */
  sqnrDb: number;
  cosine: number;
}

/** One finished cell of the plan. */
export interface SensitivityRow {
  /** Layer name, group name, or "*" for everything at once. */
  unit: string;
  setting: string;
  /** The timestep, or null for models without one. */
  timestep: number | null;
  /** Per model output (or per metric tensor), aggregated over calibration samples (sums, then the ratio). */
  metrics: Record<string, Metrics>;
  /** The metric that ranks this unit: its group's metric tensor, else the first output. */
  primary: Metrics;
}

/** Activation range of a layer's input per timestep, over calibration samples. */
export interface ActivationRange {
  layer: string;
  timestep: number | null;
  min: number;
  max: number;
}

export interface RunEnvironment {
  quantlens: string;
  onnxruntime: string;
  node: string;
  platform: string;
  cpu: string;
  executionProvider: string;
}

export type RunStatus = 'running' | 'complete' | 'cancelled' | 'failed';

export interface AnalysisRun {
  schema: 'quantlens.analysis/1';
  id: string;
  createdAt: string;
  status: RunStatus;
  /** Why a run failed or was cancelled. */
  message?: string;
  settings: AnalysisSettings;
  environment: RunEnvironment;
  model: { fileName: string; bytes: number; layerCount: number };
  plan: {
    units: string[];
    settings: string[];
    timesteps: (number | null)[];
    /** Cells in this record's slice of the plan. */
    total: number;
    shard?: { index: number; count: number };
  };
  /** Bare forward time of the original model, ms per run (median), measured before the sweep. */
  referenceForwardMs: number;
  /** Where the time went: setup (calibration, references, sessions) and the sweep's cells, and the forward runs
   *  each made. Written when the run ends. */
  timing?: { setupMs: number; setupRuns: number; sweepMs: number; sweepRuns: number };
  /** Things the user should know that did not stop the run: layers left out, calibration notes. */
  warnings?: string[];
  rows: SensitivityRow[];
  ranges: ActivationRange[];
}
