// The allocation file: which bit-widths each layer gets, per timestep range — what `quantlens search` writes and
// `quantlens export` reads. Plain JSON (schema 'quantlens.allocation/1', checked by engine/export/allocation.ts when
// read); also written as YAML shaped like ViDiT-Q's mixed-precision configs.
import type { ActivationMode } from './analysis';
import type { SearchBudget } from './search';

export const ALLOCATION_SCHEMA = 'quantlens.allocation/1';

/** Weight bits that mean "stored as it is, in floating point". */
export const FLOAT_WEIGHT_BITS = 16;

/** Label of the one range of a model without a timestep input. */
export const ALL_TIMESTEPS_LABEL = 'all';

/** Weight scales: one per output channel, or one per `group` consecutive input elements of each channel. */
export type AllocationGranularity = 'channel' | { group: number };

/** What one layer gets in one range. */
export interface LayerAllocation {
  /** 2…8 stored as int8 codes, 9…15 as int16 codes, FLOAT_WEIGHT_BITS (16) = the float weight left as it is. */
  weightBits: number;
  /** Bits of the layer's input activation (2…15), or null to leave it in floating point (16 counts as null). */
  activationBits: number | null;
  /** Default: the file's `weight.granularity`. */
  granularity?: AllocationGranularity;
}

export interface AllocationRange {
  /**
   * The timesteps (the model's timestep input values, e.g. 999…0) this allocation serves, or null for a model
   * without a timestep input.
   */
  timesteps: number[] | null;
  /**
   * Unique within the file. "<largest>-<smallest>" of the timesteps (as ViDiT-Q keys its configs, e.g. "19-15",
   * there by sampler step), the timestep itself for a range of one, ALL_TIMESTEPS_LABEL when timesteps is null.
   */
  label: string;
  /**
   * Layer name (the inspector's layer name; "<name> [<weight>]" where two layers share a name, as in sensitivity runs)
   * → its bits. Layers not listed stay in floating point.
   */
  layers: Record<string, LayerAllocation>;
  /** The search's prediction for this range: total cost (in the problem's cost unit) and summed error. */
  predicted?: { cost: number; error: number };
}

/** A measurement of the allocation with every layer quantized as allocated at once. */
export interface AllocationMeasurement {
  /** Relative noise power Σ(y−ŷ)²/Σy² of the primary output, the search's error unit. */
  error: number;
  /** The same as SQNR in dB. */
  sqnrDb?: number;
  /** Calibration samples (× timesteps) it was measured on. */
  samples?: number;
}

export interface AllocationFile {
  schema: typeof ALLOCATION_SCHEMA;
  /** ISO time the file was written. */
  createdAt?: string;
  /** The model the allocation was made for; export checks layer names, and warns when the sha256 differs. */
  model: { fileName: string; sha256?: string };
  /** The analysis run the search used (its id), when it came from one. */
  run?: string;
  /** The budget the search was given. */
  budget?: SearchBudget;
  /** Summed over ranges: predicted cost and error. */
  predicted?: { cost: number; error: number };
  measured?: AllocationMeasurement;
  /** In sampling order (largest timesteps first); at least one. */
  ranges: AllocationRange[];
  /**
   * How the layers' weights are quantized (round-to-nearest, quantizeWeight): `granularity` is the default of layers
   * that do not say; `symmetric` holds for every layer (default true, as in files written before it existed; false:
   * a zero point per channel or group, codes 0…2^b − 1).
   */
  weight: { granularity: AllocationGranularity; symmetric?: boolean };
  /**
   * How activations were quantized when the allocation was measured. The exported QDQ model always uses static
   * per-tensor scales: 'dynamic-token' (a scale per token each forward pass) has no QDQ form, so export calibrates
   * min/max scales instead and says so.
   */
  activation: { mode: ActivationMode; symmetric: boolean; percentile?: number };
}
