// Calibration inputs for the sensitivity runner: the model feeds, where they come from, and how they are chosen.

/** Element types a calibration feed can have (onnxruntime: float32, float64, float16, int64, int32, int8, uint8, bool). */
export type FeedDType = 'F32' | 'F64' | 'F16' | 'I64' | 'I32' | 'I8' | 'U8' | 'BOOL';

export const FEED_DTYPES: readonly FeedDType[] = ['F32', 'F64', 'F16', 'I64', 'I32', 'I8', 'U8', 'BOOL'];

export type FeedData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

/**
 * One input tensor in C (row-major) order. F16 data holds IEEE half-precision bit patterns; BOOL data holds 0 or 1.
 */
export interface FeedTensor {
  dtype: FeedDType;
  shape: number[];
  data: FeedData;
}

/** One set of model inputs (one onnxruntime run). */
export type Feeds = Record<string, FeedTensor>;

export interface CalibrationSpec {
  /**
   * .npy (single-input models), .npz, .safetensors, or a .json manifest
   * {"inputs": {"x": "x.npy", "t": "t.npy"}, "batchAxis"?: 0} whose files are relative to the manifest;
   * none → synthetic.
   */
  source?: string;
  /** Number of samples (synthetic) or the cap on samples taken from files. Default 4. */
  samples?: number;
  /** Batch size per sample (rows of the batch axis). Default 1. */
  batch?: number;
  /** Seed of the synthetic inputs. Default 0. */
  seed?: number;
  /**
   * Values for symbolic dims, e.g. {"batch": 1, "W": 320}. A key "input[axis]" (e.g. "x[3]") sets one axis of one
   * input, for dims the model leaves unnamed.
   */
  dims?: Record<string, number>;
  /**
   * Every synthetic integer input is uniform in [low, high); set, it wins over `intRanges`. Default [0, 10): a class
   * label.
   */
  intRange?: [number, number];
  /**
   * Synthetic integer inputs by name: the range the graph implies (graphIntRanges: an input that indexes an embedding
   * table draws from its rows). Inputs not named here get the default.
   */
  intRanges?: Record<string, InputIntRange>;
  /** Diffusion models: the timestep input and the timesteps to analyze one by one. */
  timestep?: { input: string; values: number[] };
}

/** One input's synthetic range and the stored table whose rows it indexes (named in the set's description and warnings). */
export interface InputIntRange {
  range: [number, number];
  table: string;
}

export interface CalibrationSet {
  /**
   * Base samples, each a complete set of feeds. For diffusion models the timestep input holds timestep.values[0]
   * (or what the file gave) and `withTimestep` replaces it per timestep.
   */
  samples: Feeds[];
  timestep?: { input: string; values: number[] };
  /** Where they came from, for run records: "synthetic seed 7" or the file path (with any dtype conversions). */
  description: string;
  /** Things the user should know that did not stop loading: ignored arrays, rows left out of the last batch. */
  warnings: string[];
}

export const DEFAULT_SAMPLES = 4;
export const DEFAULT_BATCH = 1;
export const DEFAULT_SEED = 0;
export const DEFAULT_INT_RANGE: readonly [number, number] = [0, 10];
