// The layer table's data logic: columns, filtering, sorting and the virtual-scroll window. No DOM, so it is unit-tested.
import type { LayerRecord, WeightStats } from '../../extension/protocol/records';
import { formatCount, formatDb, formatNumber, formatPercent, formatShape } from '../shared/format';

export type ColumnKey =
  | 'name' | 'op' | 'shape' | 'params' | 'nonFinite' | 'absMax' | 'std' | 'kurtosis' | 'outliers' | 'spread'
  | 'w8' | 'w4' | 'w3' | 'w4g';

export interface Column {
  key: ColumnKey;
  label: string;
  /** Header tooltip: what the number means. */
  title: string;
  numeric: boolean;
  /** Narrowest the column gets (px); wider editors share the rest by `grow`. The page widens it to fit its header
   *  and `widest` in the font it has (LayerTable). */
  minWidth: number;
  grow: number;
  /** The widest text the column usually shows (longer values get an ellipsis). */
  widest?: string;
  /** Caption over a run of adjacent columns that share it (the SQNR columns). */
  group?: string;
  /** Shown only while some layer needs it (shownColumns). */
  onlyWhen?(layers: readonly LayerRecord[]): boolean;
  value(layer: LayerRecord): number | string | null;
  text(layer: LayerRecord): string;
}

const numericColumn = (
  key: ColumnKey,
  label: string,
  title: string,
  value: (l: LayerRecord) => number | null,
  format: (x: number | null) => string,
  widest: string,
  group?: string,
): Column => ({ key, label, title, numeric: true, minWidth: 48, grow: 0.6, widest, group, value, text: (l) => format(value(l)) });

/** Whether the layer has any finite weight: without one its statistics are an empty tensor's, shown as missing. */
export function hasFiniteWeights(layer: LayerRecord): boolean {
  return layer.stats.nonFinite < layer.stats.count;
}

/** A statistic of the layer's finite weights; null (shown as missing, sorted last) when it has none. */
const stat = (value: (s: WeightStats) => number) => (l: LayerRecord): number | null => (hasFiniteWeights(l) ? value(l.stats) : null);

/** What the filter also matches on layers with NaN or infinite weights. */
export const NON_FINITE_FILTER_WORD = 'non-finite';

const SQNR_GROUP = 'Weight-only SQNR (dB)';
/** formatNumber's longest outputs: three significant digits, a sign, a leading "0.00" or an exponent. */
const WIDEST_POSITIVE = '0.00123';
const WIDEST_SIGNED = '-0.00123';

// With the detail pane closed a 1440-pixel window shows every column; narrower, the table scrolls sideways with the
// name column pinned.
export const COLUMNS: readonly Column[] = [
  {
    key: 'name', label: 'Name', title: 'Layer name', numeric: false, minWidth: 200, grow: 3,
    value: (l) => l.name, text: (l) => l.name,
  },
  {
    key: 'op', label: 'Op', title: 'Operator that uses the weight', numeric: false, minWidth: 48, grow: 0.6, widest: 'MatMul',
    value: (l) => l.opType, text: (l) => l.opType,
  },
  {
    key: 'shape', label: 'Shape', title: 'Weight shape', numeric: false, minWidth: 64, grow: 0.8, widest: '512×256×3×3',
    value: (l) => formatShape(l.shape), text: (l) => formatShape(l.shape),
  },
  numericColumn('params', 'Params', 'Parameters in the weight', (l) => l.params, formatCount, '12.3M'),
  {
    ...numericColumn(
      'nonFinite', 'NaN/Inf',
      `Weights that are NaN or ±Infinity, left out of every other number; filter by "${NON_FINITE_FILTER_WORD}" to list these layers`,
      (l) => l.stats.nonFinite, formatCount, '12.3M',
    ),
    // A column of zeros on almost every model would cost the others their room.
    onlyWhen: (layers) => layers.some((l) => l.stats.nonFinite > 0),
  },
  numericColumn('absMax', 'Absmax', 'Largest |w|', stat((s) => s.absMax), (x) => formatNumber(x), WIDEST_POSITIVE),
  numericColumn('std', 'Std', 'Standard deviation of the weights', stat((s) => s.std), (x) => formatNumber(x), WIDEST_POSITIVE),
  numericColumn('kurtosis', 'Kurt.', 'Excess kurtosis (a Gaussian gives 0)', stat((s) => s.kurtosis), (x) => formatNumber(x), WIDEST_SIGNED),
  numericColumn(
    'outliers', 'Outliers', 'Share of weights with |w − mean| beyond the outlier threshold (k·std)',
    stat((s) => s.outlierShare), formatPercent, '<0.01%',
  ),
  numericColumn(
    'spread', 'Spread', 'Channel spread: max / median of the per-output-channel absmax',
    stat((s) => s.channelSpread), (x) => formatNumber(x), '1.23e6',
  ),
  numericColumn('w8', 'W8', 'SQNR (dB) of 8-bit weights, one scale per output channel', stat((s) => s.quantError.perChannel[8]), formatDb, '200.0', SQNR_GROUP),
  numericColumn('w4', 'W4', 'SQNR (dB) of 4-bit weights, one scale per output channel', stat((s) => s.quantError.perChannel[4]), formatDb, '200.0', SQNR_GROUP),
  numericColumn('w3', 'W3', 'SQNR (dB) of 3-bit weights, one scale per output channel', stat((s) => s.quantError.perChannel[3]), formatDb, '200.0', SQNR_GROUP),
  numericColumn(
    'w4g', 'W4 g128', 'SQNR (dB) of 4-bit weights, one scale per group of 128 inputs',
    stat((s) => s.quantError.perGroup[4]), formatDb, '200.0', SQNR_GROUP,
  ),
];

/** The columns the table shows for these layers (all of them, not just the filtered view, so columns do not jump). */
export function shownColumns(layers: readonly LayerRecord[]): Column[] {
  return COLUMNS.filter((c) => !c.onlyWhen || c.onlyWhen(layers));
}

/** CSS grid tracks for the columns; `minWidths` (px, one per column) replaces their own minimum widths. */
export function gridTemplate(columns: readonly Column[], minWidths?: readonly number[]): string {
  return columns.map((c, i) => `minmax(${minWidths?.[i] ?? c.minWidth}px, ${c.grow}fr)`).join(' ');
}

/** Width below which the table scrolls sideways instead of squeezing columns. */
export function minTableWidth(columns: readonly Column[], minWidths?: readonly number[]): number {
  return columns.reduce((sum, c, i) => sum + (minWidths?.[i] ?? c.minWidth), 0);
}

/** Longest tail splitName keeps whole. */
const NAME_TAIL_CHARS = 12;

/**
 * A layer name cut where it may be shortened: the table shortens `head` with an ellipsis and always shows `tail`, the
 * trailing dot-separated parts that fit in NAME_TAIL_CHARS characters, so `blocks.12.adaLN_modulation.1.weight`
 * reads `blocks.12.adaLN_mo….1.weight`: the block and the end stay.
 */
export function splitName(name: string): { head: string; tail: string } {
  let cut = name.length;
  for (let dot = name.lastIndexOf('.'); dot > 0; dot = name.lastIndexOf('.', dot - 1)) {
    if (name.length - dot > NAME_TAIL_CHARS) break;
    cut = dot;
  }
  // A last part longer than the limit, or a name that is all tail, is shortened from its end like any text.
  if (cut === name.length || cut === 0) return { head: name, tail: '' };
  return { head: name.slice(0, cut), tail: name.slice(cut) };
}

export interface ColumnGroup {
  label: string;
  /** First column (0-based) and one past the last. */
  start: number;
  end: number;
}

/** Runs of adjacent columns with the same caption. */
export function columnGroups(columns: readonly Column[]): ColumnGroup[] {
  const groups: ColumnGroup[] = [];
  columns.forEach((column, i) => {
    const last = groups[groups.length - 1];
    if (!column.group) return;
    if (last && last.label === column.group && last.end === i) last.end = i + 1;
    else groups.push({ label: column.group, start: i, end: i + 1 });
  });
  return groups;
}

export function columnByKey(key: string): Column | undefined {
  return COLUMNS.find((c) => c.key === key);
}

export interface SortSpec {
  key: ColumnKey;
  dir: 'asc' | 'desc';
}

/** Header clicks cycle ascending → descending → file order. */
export function nextSort(current: SortSpec | null, key: ColumnKey): SortSpec | null {
  if (!current || current.key !== key) return { key, dir: 'asc' };
  return current.dir === 'asc' ? { key, dir: 'desc' } : null;
}

const searchText = new WeakMap<LayerRecord, string>();

function textOf(layer: LayerRecord): string {
  let text = searchText.get(layer);
  if (text === undefined) {
    text = [layer.name, layer.opType, ...layer.group, ...(layer.stats.nonFinite > 0 ? [NON_FINITE_FILTER_WORD] : [])].join('\n').toLowerCase();
    searchText.set(layer, text);
  }
  return text;
}

/**
 * Layers whose name, op or group contain every whitespace-separated term of `query` (case-insensitive); layers with
 * NaN or infinite weights also match NON_FINITE_FILTER_WORD.
 */
export function filterLayers(layers: readonly LayerRecord[], query: string): LayerRecord[] {
  const terms = query.toLowerCase().split(/\s+/).filter((t) => t.length > 0);
  if (terms.length === 0) return layers.slice();
  return layers.filter((layer) => {
    const text = textOf(layer);
    return terms.every((t) => text.includes(t));
  });
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function isMissing(v: number | string | null): boolean {
  return v === null || (typeof v === 'number' && Number.isNaN(v));
}

/**
 * A sorted copy. Missing values (null, NaN) go last in either direction; ties keep file order (the sort is stable).
 * Names compare naturally, so `blocks.10` follows `blocks.9`.
 */
export function sortLayers(layers: readonly LayerRecord[], sort: SortSpec | null): LayerRecord[] {
  const out = layers.slice();
  if (!sort) return out;
  const column = columnByKey(sort.key);
  if (!column) return out;
  const sign = sort.dir === 'asc' ? 1 : -1;
  const values = new Map(out.map((l) => [l, column.value(l)]));
  out.sort((a, b) => {
    const va = values.get(a) ?? null;
    const vb = values.get(b) ?? null;
    const ma = isMissing(va);
    const mb = isMissing(vb);
    if (ma || mb) return ma === mb ? 0 : ma ? 1 : -1;
    if (typeof va === 'number' && typeof vb === 'number') return va === vb ? 0 : va < vb ? -sign : sign;
    return sign * collator.compare(String(va), String(vb));
  });
  return out;
}

/** The rows the table shows: filtered, then sorted. */
export function viewLayers(layers: readonly LayerRecord[], query: string, sort: SortSpec | null): LayerRecord[] {
  return sortLayers(filterLayers(layers, query), sort);
}

export interface RowWindow {
  /** First row index to render (inclusive). */
  start: number;
  /** Last row index to render (exclusive). */
  end: number;
}

/** Rows that intersect the viewport, plus `overscan` rows either side, clamped to [0, total). */
export function visibleWindow(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  total: number,
  overscan = 8,
): RowWindow {
  if (total <= 0 || rowHeight <= 0) return { start: 0, end: 0 };
  const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
  const last = Math.ceil((Math.max(0, scrollTop) + Math.max(0, viewportHeight)) / rowHeight);
  const start = Math.min(total, Math.max(0, first - overscan));
  const end = Math.min(total, Math.max(start, last + overscan));
  return { start, end };
}

/** The scrollTop that brings row `index` fully into view, or the current one when it already is. */
export function scrollToRow(index: number, scrollTop: number, viewportHeight: number, rowHeight: number): number {
  const top = index * rowHeight;
  const bottom = top + rowHeight;
  if (top < scrollTop) return top;
  if (bottom > scrollTop + viewportHeight) return Math.max(0, bottom - viewportHeight);
  return scrollTop;
}

/** Moves a selection by `delta` rows within `names` (the current view order); starts at the first row. */
export function moveSelection(names: readonly string[], selected: string | null, delta: number): string | null {
  if (names.length === 0) return null;
  const at = selected === null ? -1 : names.indexOf(selected);
  if (at < 0) return names[delta < 0 ? names.length - 1 : 0];
  return names[Math.min(names.length - 1, Math.max(0, at + delta))];
}
