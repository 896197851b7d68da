// Files that hold calibration arrays: .npy (one array), .npz (a zip of .npy entries, stored or deflated, each read
// only when asked for) and .safetensors (tensors read by byte range). Every problem is a ModelError naming the file.
import * as fs from 'fs';
import * as path from 'path';
import * as yauzl from 'yauzl';
import { ModelError, quote } from '../errors';
import { readSafetensorsHeader, type SafetensorsEntry } from '../model/safetensors';
import { fileAccessError, readByteRange } from '../model/tensor';
import { fromLittleEndian, type StoredArray, type StoredDType } from './ndarray';
import { npyArray, npyHeaderEnd, parseNpy, parseNpyHeader } from './npy';

export interface ArrayFile {
  /** The path messages name. */
  file: string;
  /** Names of the arrays: .npz keys (entry names without ".npy"), safetensors tensor names; a .npy's one array is "". */
  names: string[];
  /** Zip entries of an .npz that are not .npy arrays, ignored. */
  ignored: string[];
  read(name: string): Promise<StoredArray>;
  close(): Promise<void>;
}

export const ARRAY_FILE_EXTENSIONS = ['.npy', '.npz', '.safetensors'];

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Opens `file` (read from `real` when a manifest resolved it through links) by its extension. */
export async function openArrayFile(file: string, real = file): Promise<ArrayFile> {
  const extension = path.extname(file).toLowerCase();
  if (extension === '.npy') return openNpy(file, real);
  if (extension === '.npz') return openNpz(file, real);
  if (extension === '.safetensors') return openSafetensorsArrays(file, real);
  throw new ModelError(file, `unsupported calibration file type (QuantLens reads ${ARRAY_FILE_EXTENSIONS.join(', ')} and .json manifests)`);
}

async function openHandle(file: string, real: string): Promise<{ handle: fs.promises.FileHandle; size: number }> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(real, 'r');
  } catch (err) {
    throw fileAccessError(file, err, 'calibration file');
  }
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    throw new ModelError(file, 'calibration file is not a regular file');
  }
  return { handle, size: stat.size };
}

async function openNpy(file: string, real: string): Promise<ArrayFile> {
  const { handle, size } = await openHandle(file, real);
  return {
    file,
    names: [''],
    ignored: [],
    async read(): Promise<StoredArray> {
      const start = await readByteRange(handle, file, 0, Math.min(size, 12));
      const headerEnd = npyHeaderEnd(start, file);
      const header = parseNpyHeader(await readByteRange(handle, file, 0, Math.min(size, headerEnd)), file);
      // A short file gives fewer bytes than the shape needs, which npyArray reports as truncated data.
      const available = Math.min(header.dataBytes, size - header.dataStart);
      return npyArray(header, await readByteRange(handle, file, header.dataStart, available), file);
    },
    close: () => handle.close(),
  };
}

async function openNpz(file: string, real: string): Promise<ArrayFile> {
  try {
    await fs.promises.access(real, fs.constants.R_OK);
  } catch (err) {
    throw fileAccessError(file, err, 'calibration file');
  }
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.openPromise(real, { lazyEntries: true, autoClose: false });
  } catch (err) {
    throw new ModelError(file, `not a valid .npz file (zip: ${errorText(err)})`);
  }
  const entries = new Map<string, yauzl.Entry>();
  const ignored: string[] = [];
  try {
    for await (const entry of zip.eachEntry()) {
      if (entry.fileName.endsWith('/')) continue;
      if (entry.fileName.endsWith('.npy')) entries.set(entry.fileName.slice(0, -4), entry);
      else ignored.push(entry.fileName);
    }
  } catch (err) {
    zip.close();
    throw new ModelError(file, `not a valid .npz file (zip: ${errorText(err)})`);
  }
  return {
    file,
    names: [...entries.keys()],
    ignored,
    async read(name: string): Promise<StoredArray> {
      const entry = entries.get(name);
      if (!entry) throw new ModelError(file, `no array named ${quote(name)}`);
      const where = `entry ${quote(entry.fileName)}: `;
      const chunks: Buffer[] = [];
      try {
        const stream = await zip.openReadStreamPromise(entry);
        for await (const chunk of stream) chunks.push(chunk as Buffer);
      } catch (err) {
        throw new ModelError(file, `${where}cannot be read (${errorText(err)})`);
      }
      return parseNpy(Buffer.concat(chunks), file, where);
    },
    async close(): Promise<void> {
      zip.close();
    },
  };
}

const SAFETENSORS_CALIB_DTYPES: Readonly<Record<string, StoredDType>> = {
  F64: 'F64', F32: 'F32', F16: 'F16', BF16: 'BF16', I64: 'I64', I32: 'I32', I8: 'I8', U8: 'U8', BOOL: 'BOOL',
};

async function openSafetensorsArrays(file: string, real: string): Promise<ArrayFile> {
  const { handle } = await openHandle(file, real);
  let byName: Map<string, SafetensorsEntry>;
  let dataStart: number;
  try {
    const header = await readSafetensorsHeader(file, handle);
    byName = new Map(header.entries.map((e) => [e.name, e]));
    dataStart = header.dataStart;
  } catch (err) {
    await handle.close();
    throw err;
  }
  return {
    file,
    names: [...byName.keys()],
    ignored: [],
    async read(name: string): Promise<StoredArray> {
      const entry = byName.get(name);
      if (!entry) throw new ModelError(file, `no tensor named ${quote(name)}`);
      const dtype = SAFETENSORS_CALIB_DTYPES[entry.storedType];
      if (!dtype) {
        throw new ModelError(
          file,
          `tensor ${quote(name)} has dtype ${entry.storedType}; calibration reads ${Object.keys(SAFETENSORS_CALIB_DTYPES).join(', ')}`,
        );
      }
      const bytes = await readByteRange(handle, file, dataStart + entry.begin, entry.end - entry.begin);
      return { dtype, shape: entry.shape, data: fromLittleEndian(bytes, dtype, entry.numel) };
    },
    close: () => handle.close(),
  };
}
