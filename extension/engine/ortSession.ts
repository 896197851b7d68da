// onnxruntime helpers the sweep, the allocation meter and the QDQ export share: session creation with the engine's
// options and a clear error naming the model, feeds from instrument's plain tensors, float outputs, small reductions.
import * as ort from 'onnxruntime-node';
import { ModelError } from './errors';
import type { FeedTensor } from './instrument/instrument';
import { decodeHalfWords } from './model/tensor';

export type OrtFeeds = Record<string, ort.Tensor>;

export interface SessionOptions {
  executionProvider?: 'cpu' | 'cuda';
  /** Intra-op threads; default: onnxruntime's (one per physical core). */
  threads?: number;
}

/** A session on model bytes (or a path), logging only errors; a model onnxruntime refuses is a ModelError. */
export async function createSession(model: Uint8Array | string, modelFile: string, what: string, options: SessionOptions = {}): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(model as Uint8Array, {
      logSeverityLevel: 3,
      executionProviders: [options.executionProvider ?? 'cpu'],
      ...(options.threads ? { intraOpNumThreads: options.threads } : {}),
    });
  } catch (err) {
    throw new ModelError(modelFile, `onnxruntime cannot load the ${what}: ${ortFailureReason(err)}`);
  }
}

/** The first line of an onnxruntime error, at most 300 characters: its messages can run to many lines. */
export function ortFailureReason(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 300);
}

/** ort.Tensors for instrument's feeds; empty (switched-off) feeds are taken from `reuse` when it has them. */
export function ortTensors(feeds: Record<string, FeedTensor>, reuse: OrtFeeds = {}): OrtFeeds {
  const out: OrtFeeds = {};
  for (const [name, f] of Object.entries(feeds)) out[name] = f.data.length === 0 && reuse[name] ? reuse[name] : new ort.Tensor(f.type, f.data, f.dims);
  return out;
}

/** A float output's values (a view for float32/float64, decoded for float16); undefined for other types. */
export function floatOutput(value: ort.OnnxValue | undefined): Float32Array | Float64Array | undefined {
  const tensor = value as ort.Tensor | undefined;
  switch (tensor?.type) {
    case 'float32':
    case 'float64':
      return tensor.data as Float32Array | Float64Array;
    case 'float16':
      return decodeHalfWords(tensor.data as Uint16Array, 'F16');
    default:
      return undefined;
  }
}

/** The q-quantile of ascending values (nearest rank). */
export function quantile(sorted: Float32Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function concatFloat32(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
