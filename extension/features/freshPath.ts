// Saved runs and allocations are named by the time they start; two started within a second must not overwrite.
import { promises as fs } from 'fs';
import * as path from 'path';

/** `file`, or `file` with -2, -3, … before its extension when that exists. */
export async function freshPath(file: string): Promise<string> {
  const { dir, name, ext } = path.parse(file);
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? file : path.join(dir, `${name}-${n}${ext}`);
    try {
      await fs.access(candidate);
    } catch {
      return candidate;
    }
  }
}
