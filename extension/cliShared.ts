// Option parsers and text helpers every `quantlens` subcommand shares (commander calls the parsers; a thrown
// InvalidArgumentError becomes a one-line usage error).
import { InvalidArgumentError } from 'commander';
import { evenlySpacedTimesteps } from './engine/calib';

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function splitList(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export function bitList(value: string): number[] {
  const bits = splitList(value).map(Number);
  // An empty list is allowed: `--weights '' --acts 8` analyzes activations only.
  if (!bits.every((b) => Number.isInteger(b) && b >= 2 && b <= 16)) throw new InvalidArgumentError('expected comma-separated bit-widths from 2 to 16, e.g. 4,8.');
  return [...new Set(bits)];
}

export function dimList(value: string): Record<string, number> {
  const dims: Record<string, number> = {};
  for (const entry of splitList(value)) {
    const at = entry.lastIndexOf('=');
    const size = Number(entry.slice(at + 1));
    if (at <= 0 || !Number.isInteger(size) || size < 1) throw new InvalidArgumentError(`expected name=size pairs, e.g. batch=1,W=320 (got "${entry}").`);
    Object.defineProperty(dims, entry.slice(0, at), { value: size, enumerable: true, writable: true, configurable: true });
  }
  return dims;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

export function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer.');
  return n;
}

export function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('expected an integer.');
  return n;
}

/** A flag parser from an engine parser (parseShard, parseBudget): its error becomes a usage error. */
export function usageErrors<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError(`${err instanceof Error ? err.message : String(err)}.`);
    }
  };
}

/** `count` timesteps (--timesteps) evenly spaced from 999 to 0; more than fit there is a usage error. */
export function timestepsFlag(count: number): number[] {
  if (count > 1000) throw new InvalidArgumentError(`--timesteps ${count}: at most 1000 distinct timesteps fit in 0..999.`);
  return evenlySpacedTimesteps(count);
}

/** Model strings are untrusted: control characters could drive the terminal, so they are shown escaped. */
export function clean(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function truncateMiddle(text: string, width: number): string {
  if (text.length <= width) return text;
  const head = Math.ceil((width - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (width - 1 - head))}`;
}

/** JSON with C1 control characters escaped too (JSON.stringify leaves them raw and some terminals obey them). */
export function toJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
