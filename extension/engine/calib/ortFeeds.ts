// Calibration feeds as onnxruntime tensors. Kept apart from the loaders so that reading calibration files does not
// load onnxruntime's native binding.
import * as ort from 'onnxruntime-node';
import type { FeedDType, Feeds } from './types';

const ORT_TYPES: Readonly<Record<FeedDType, ort.Tensor.Type>> = {
  F32: 'float32',
  F64: 'float64',
  F16: 'float16',
  I64: 'int64',
  I32: 'int32',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** onnxruntime tensors over the feeds' data (not copied). */
export function toOrtFeeds(feeds: Feeds): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, feed] of Object.entries(feeds)) out[name] = new ort.Tensor(ORT_TYPES[feed.dtype], feed.data, feed.shape);
  return out;
}
