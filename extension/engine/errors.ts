// Errors about a user's input: they name the file and say what is wrong with it, and are shown as they are.
import * as path from 'path';

export class ModelError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${path.basename(file)}: ${problem}`);
    this.name = 'ModelError';
  }
}

/** A string from a user's file (a tensor name, a path written in it): untrusted, so quoted and cut for messages. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text);
}

/** Thrown by long work when its AbortSignal fires. */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}
