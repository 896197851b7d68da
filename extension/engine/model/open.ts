// One entry point for every model format: pick the reader from the file name and its first bytes.
import * as fs from 'fs';
import * as path from 'path';
import { ModelError } from '../errors';
import { openOnnx, statModelFile } from './onnx';
import { openSafetensors } from './safetensors';
import { fileAccessError } from './tensor';
import type { OpenedModel } from './types';

const PICKLE_EXTENSIONS = new Set(['.pt', '.pth', '.bin', '.ckpt']);

/** Keys of ModelProto fields that follow ir_version (field 1, written first by every exporter): fields 2–8. */
const ONNX_SECOND_KEYS = new Set([0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42]);

function looksLikeSafetensors(head: Uint8Array, fileSize: number): boolean {
  if (head.length < 9) return false;
  const headerLength = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  return headerLength > 0n && headerLength <= BigInt(fileSize - 8) && head[8] === 0x7b; // '{'
}

/** A protobuf that starts with a small ir_version varint (field 1) and then another ModelProto field. */
function looksLikeOnnx(head: Uint8Array): boolean {
  return head.length >= 3 && head[0] === 0x08 && head[1] >= 1 && head[1] < 0x80 && ONNX_SECOND_KEYS.has(head[2]);
}

async function readHead(file: string, length: number): Promise<Uint8Array> {
  try {
    const handle = await fs.promises.open(file, 'r');
    try {
      const head = new Uint8Array(length);
      const { bytesRead } = await handle.read(head, 0, length, 0);
      return head.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw fileAccessError(file, err);
  }
}

/**
 * Opens an ONNX model or a safetensors checkpoint. `.onnx` and `.safetensors` go to their readers; any other name is
 * recognised by its first bytes. PyTorch pickle checkpoints are refused: unpickling runs code from the file.
 */
export async function openModel(filePath: string): Promise<OpenedModel> {
  const file = path.resolve(filePath);
  const stat = await statModelFile(file);

  const extension = path.extname(file).toLowerCase();
  if (extension === '.onnx') return openOnnx(file);
  if (extension === '.safetensors') return openSafetensors(file);
  if (PICKLE_EXTENSIONS.has(extension)) {
    throw new ModelError(
      file,
      'PyTorch pickle checkpoints are never unpickled (loading one runs code from the file); ' +
        'convert it to safetensors first, e.g. safetensors.torch.save_file(torch.load(path, weights_only=True), "model.safetensors")',
    );
  }

  const head = await readHead(file, 16);
  if (looksLikeSafetensors(head, stat.size)) return openSafetensors(file);
  if (looksLikeOnnx(head)) return openOnnx(file);
  throw new ModelError(file, 'unsupported file type (QuantLens opens .onnx models and .safetensors checkpoints)');
}
