// Records the engine produces and every consumer (host, webviews, CLI --json) reads unchanged.
// Plain JSON-serialisable data only: these cross process and webview boundaries.

/** Element types QuantLens reads from ONNX tensors and safetensors headers. */
export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'STRING' | 'OTHER';

/** A dimension: a number, a symbolic name (`batch`), or null when unknown. */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape: Dim[];
}

export interface ModelSummary {
  /** Absolute path of the file that was opened. */
  path: string;
  fileName: string;
  format: 'onnx' | 'safetensors';
  fileBytes: number;
  /** ONNX only. */
  irVersion?: number;
  producer?: string;
  opsets?: { domain: string; version: number }[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  /** op type → node count (ONNX); empty for checkpoints. */
  opHistogram: Record<string, number>;
  nodeCount: number;
  /** Every stored tensor: initializers, Constant-node values, checkpoint tensors. */
  tensorCount: number;
  parameterCount: number;
  parameterBytes: number;
  /** Quantizable layers and the parameters they hold. */
  layerCount: number;
  layerParameterCount: number;
  /** External data files the model refers to (relative to the model's folder). */
  externalDataFiles: string[];
  /** Free-form metadata (ONNX metadata_props, safetensors __metadata__). */
  metadata: Record<string, string>;
  /** Things the user should know that did not stop loading. */
  warnings: string[];
}

/** A quantizable layer: one weight tensor and how it is used. */
export interface LayerInfo {
  /** Display name: node name for ONNX (falls back to the weight name), tensor name for checkpoints. */
  name: string;
  /** Conv, ConvTranspose, Gemm, MatMul for ONNX; `Tensor` for checkpoint weights. */
  opType: string;
  /** Name of the weight tensor (initializer, Constant output, or checkpoint key). */
  weight: string;
  shape: number[];
  dtype: DType;
  params: number;
  /** Axis of `shape` that indexes output channels (Conv: 0, MatMul [K,N]: 1, Gemm transB=1: 0, ConvTranspose: 1). */
  channelAxis: number;
  /** Path of groups derived from the name: `blocks.3.attn.qkv` → ['block 3', 'attn']. */
  group: string[];
}

export const QUANT_BITS = [2, 3, 4, 6, 8] as const;
export type QuantBits = (typeof QUANT_BITS)[number];
export const QUANT_GROUP_SIZE = 128;

/** SQNR in dB (10·log10(Σw² / Σ(w−ŵ)²)) of symmetric round-to-nearest weight quantization, per bit-width. */
export interface WeightQuantError {
  /** One scale per output channel. */
  perChannel: Record<QuantBits, number>;
  /** One scale per group of `groupSize` consecutive input elements of each output channel. */
  perGroup: Record<QuantBits, number>;
  groupSize: number;
}

export interface Histogram {
  /** Edges are evenly spaced from min to max; counts.length bins. */
  min: number;
  max: number;
  counts: number[];
}

/**
 * Statistics of one weight tensor. NaN and ±Infinity weights (fp16 overflow, a diverged run) are counted in `nonFinite`
 * and left out of everything else: moments, extremes, histogram, outliers, channel absmax and SQNR cover the finite
 * weights only, and a tensor with none reads like an empty one (zeros, SQNR at the cap).
 */
export interface WeightStats {
  /** Elements in the tensor, non-finite ones included. */
  count: number;
  /** Elements that are NaN, +Infinity or −Infinity: nan + posInf + negInf. */
  nonFinite: number;
  nan: number;
  posInf: number;
  negInf: number;
  /** Sentences the reader of these numbers must see (e.g. how many weights are not finite); usually empty. */
  warnings: string[];
  min: number;
  max: number;
  mean: number;
  std: number;
  /** Excess kurtosis (a Gaussian gives 0). */
  kurtosis: number;
  absMax: number;
  /** Outliers are values with |w − mean| > outlierSigma · std. */
  outlierSigma: number;
  outlierShare: number;
  /** Number of output channels and the spread of their absmax values. */
  channels: number;
  channelAbsMax: { min: number; median: number; max: number };
  /** max / median of the per-channel absmax: large values mean a few outlier channels. */
  channelSpread: number;
  histogram: Histogram;
  quantError: WeightQuantError;
}

export interface LayerRecord extends LayerInfo {
  stats: WeightStats;
}

export interface InspectOptions {
  /** k in |w − mean| > k·std; default 6. */
  outlierSigma?: number;
  /** Histogram bins; default 64. */
  histogramBins?: number;
}

export const DEFAULT_OUTLIER_SIGMA = 6;
export const DEFAULT_HISTOGRAM_BINS = 64;
