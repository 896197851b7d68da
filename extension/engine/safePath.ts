// Paths written inside a user's file (ONNX external data locations, calibration manifests) resolved inside the folder
// of that file, refusing any that leads outside it: absolute paths, `..` escapes, and symbolic links pointing out.
import * as fs from 'fs';
import * as path from 'path';
import { ModelError, quote } from './errors';
import { fileAccessError } from './model/tensor';

export interface ResolvedFile {
  /** Real path on disk. */
  real: string;
  /** The path as written, normalized, relative to the folder, with `/` separators. */
  relative: string;
  size: number;
}

/** How messages name things: `${what} "loc" refused: …`, `${fileWhat} "loc" not found`, `…outside ${folderName}`. */
export interface SafeFolderWording {
  /** e.g. "external data location". */
  what: string;
  /** e.g. "external data file". */
  fileWhat: string;
  /** e.g. "the model's folder". */
  folderName: string;
}

function escapes(folder: string, target: string): boolean {
  const relative = path.relative(folder, target);
  return relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative);
}

/** Resolves locations written in `ownerFile` inside its folder; each location is checked once. Errors name `ownerFile`. */
export class SafeFolder {
  private readonly byLocation = new Map<string, Promise<ResolvedFile>>();
  private folderReal: Promise<string> | undefined;
  private readonly folder: string;

  constructor(
    private readonly ownerFile: string,
    private readonly wording: SafeFolderWording,
  ) {
    this.folder = path.dirname(ownerFile);
  }

  resolve(location: string): Promise<ResolvedFile> {
    let found = this.byLocation.get(location);
    if (!found) {
      found = this.check(location);
      this.byLocation.set(location, found);
    }
    return found;
  }

  private refuse(location: string, why: string): ModelError {
    return new ModelError(this.ownerFile, `${this.wording.what} ${quote(location)} refused: ${why}`);
  }

  private async check(location: string): Promise<ResolvedFile> {
    const { folderName } = this.wording;
    if (location === '' || location.includes('\0')) throw this.refuse(location, 'not a file name');
    if (path.isAbsolute(location) || path.win32.isAbsolute(location)) {
      throw this.refuse(location, `absolute paths are not allowed, it must be relative to ${folderName}`);
    }
    const target = path.resolve(this.folder, location);
    if (escapes(this.folder, target)) throw this.refuse(location, `it points outside ${folderName}`);
    this.folderReal ??= fs.promises.realpath(this.folder);
    let real: string;
    let stat: fs.Stats;
    try {
      real = await fs.promises.realpath(target);
      stat = await fs.promises.stat(real);
    } catch (err) {
      throw fileAccessError(this.ownerFile, err, `${this.wording.fileWhat} ${quote(location)}`);
    }
    if (escapes(await this.folderReal, real)) {
      throw this.refuse(location, `it resolves (through a symbolic link) outside ${folderName}`);
    }
    if (!stat.isFile()) throw this.refuse(location, 'not a regular file');
    return { real, relative: path.relative(this.folder, target).split(path.sep).join('/'), size: stat.size };
  }
}
