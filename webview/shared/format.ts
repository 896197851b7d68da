// Number and shape formatting shared by webviews and the host (tree view tooltips). No DOM, no vscode.
// Values may arrive as null: JSON (the engine IPC and webview postMessage) turns NaN and ±Infinity into null.
import type { Dim } from '../../extension/protocol/records';

export const MISSING = '—';

function isMissing(x: number | null | undefined): x is null | undefined {
  return x === null || x === undefined || Number.isNaN(x);
}

/** Parameter and element counts: 950, 12.3K, 4.56M, 1.2B. */
export function formatCount(n: number | null | undefined): string {
  if (isMissing(n)) return MISSING;
  if (Math.abs(n) < 999.5) return String(Math.round(n));
  return scaled(n, 1000, ['', 'K', 'M', 'B', 'T'], '');
}

/** Byte sizes in binary units: 512 B, 10.8 MiB. */
export function formatBytes(n: number | null | undefined): string {
  if (isMissing(n)) return MISSING;
  if (Math.abs(n) < 999.5) return `${Math.round(n)} B`;
  return scaled(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB'], ' ');
}

/** Divides by `base` until three significant digits fit (so 999,999 reads 1M, never 1.00e+3K). */
function scaled(n: number, base: number, units: string[], sep: string): string {
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 999.5 && unit < units.length - 1) {
    value /= base;
    unit++;
  }
  return `${trimZeros(value.toPrecision(3))}${sep}${units[unit]}`;
}

/** A measured value with `digits` significant digits; exponent notation for very small or large magnitudes. */
export function formatNumber(x: number | null | undefined, digits = 3): string {
  if (isMissing(x)) return MISSING;
  if (x === Infinity) return '∞';
  if (x === -Infinity) return '−∞';
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs < 1e-3 || abs >= 1e6) return x.toExponential(digits - 1).replace('e+', 'e');
  return trimZeros(x.toPrecision(digits));
}

/** SQNR in dB with one decimal. An infinite SQNR means the quantizer reproduced the weights exactly. */
export function formatDb(x: number | null | undefined): string {
  if (isMissing(x)) return MISSING;
  if (x === Infinity) return '∞';
  if (x === -Infinity) return '−∞';
  return x.toFixed(1);
}

/** A share in [0, 1] as a percentage; tiny non-zero shares stay visible as "<0.01%". */
export function formatPercent(share: number | null | undefined): string {
  if (isMissing(share)) return MISSING;
  if (share === 0) return '0%';
  const pct = share * 100;
  if (pct < 0.01) return '<0.01%';
  return `${trimZeros(pct.toPrecision(pct >= 10 ? 3 : 2))}%`;
}

/** Weight shapes as `768×3072`; a scalar as `scalar`. */
export function formatShape(shape: readonly number[]): string {
  return shape.length === 0 ? 'scalar' : shape.join('×');
}

/** Value-info shapes keep symbolic dims: `[batch, 3, 48, ?]`. */
export function formatDims(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null || d === '' ? '?' : String(d))).join(', ')}]`;
}

/** A long name cut to `limit` characters keeping its end, the part that differs: `…blocks.27.attn.qkv`. */
export function shorten(name: string, limit: number): string {
  return name.length <= limit ? name : `…${name.slice(name.length - limit + 1)}`;
}

function trimZeros(s: string): string {
  if (!s.includes('.') || s.includes('e')) return s;
  return s.replace(/\.?0+$/, '');
}
