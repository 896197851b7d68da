// What every model format gives the rest of the engine once opened.
import type { LayerInfo, ModelSummary } from '../../protocol/records';

export interface OpenedModel {
  summary: ModelSummary;
  /** Quantizable layers, in file order. */
  layers: LayerInfo[];
  /**
   * One stored tensor decoded to float32 (F16, BF16 and integer types converted), reading only that tensor's bytes
   * (byte ranges for safetensors and ONNX external data). Throws ModelError naming the file when the bytes are missing.
   */
  readTensorF32(name: string): Promise<Float32Array>;
  /** Releases file handles. */
  close(): Promise<void>;
}
