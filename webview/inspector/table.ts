// The layer table, virtualised: rows have a fixed height, only the rows in view (plus a margin) exist in the DOM,
// and a sized body keeps the scrollbar honest. Stays fluid at thousands of layers.
import type { LayerRecord } from '../../extension/protocol/records';
import { h, icon } from '../shared/dom';
import {
  COLUMNS, columnGroups, gridTemplate, minTableWidth, moveSelection, scrollToRow, shownColumns, splitName, visibleWindow, type Column,
  type ColumnKey, type SortSpec,
} from './tableModel';

export const ROW_HEIGHT = 22;

export interface TableEvents {
  /** The user picked a row (mouse or keyboard). */
  select(name: string): void;
  sort(key: ColumnKey): void;
  scrolled(scrollTop: number): void;
}

export class LayerTable {
  /** What the page lays out: the scroll container and the cue that more columns lie to its right. */
  readonly frame: HTMLDivElement;
  /** The scroll container; focusable for keyboard navigation. */
  readonly element: HTMLDivElement;
  private readonly head: HTMLDivElement;
  private readonly body: HTMLDivElement;
  private readonly empty: HTMLDivElement;
  private readonly headerCells = new Map<ColumnKey, HTMLElement>();
  private readonly pool: HTMLDivElement[] = [];
  private rows: LayerRecord[] = [];
  private selected: string | null = null;
  /** The header font the column widths were last fitted to. */
  private fittedFont = '';
  /** Minimum widths (px) of the shown columns, fitted to that font; unset until the table is laid out. */
  private readonly fittedWidths = new Map<ColumnKey, number>();
  /** The columns in the DOM: COLUMNS in order, less those no layer needs (shownColumns). */
  private shown: readonly Column[] = shownColumns([]);

  constructor(private readonly events: TableEvents) {
    this.head = h('div', { className: 'thead', attrs: { role: 'row' } });
    // Every header is made once; placeColumns puts the shown ones in the header row.
    for (const column of COLUMNS) {
      const cell = h(
        'button',
        {
          className: `th${cellClasses(column)}`,
          title: column.group ? `${column.group}: ${column.title}` : column.title,
          attrs: { role: 'columnheader', 'data-key': column.key },
        },
        h('span', { className: 'th-label', text: column.label }),
        h('span', { className: 'sort-indicator' }),
      );
      cell.addEventListener('click', () => this.events.sort(column.key));
      this.headerCells.set(column.key, cell);
    }
    this.body = h('div', { className: 'tbody', attrs: { role: 'rowgroup' } });
    this.empty = h('div', { className: 'table-empty' });
    this.element = h('div', { className: 'table', attrs: { role: 'grid', tabindex: '0', 'aria-label': 'Layers' } }, this.head, this.body, this.empty);
    this.frame = h('div', { className: 'table-frame' }, this.element, h('div', { className: 'more-right', attrs: { 'aria-hidden': 'true' } }));
    this.element.style.setProperty('--row-height', `${ROW_HEIGHT}px`);
    this.placeColumns();

    this.element.addEventListener('scroll', () => {
      this.render();
      this.events.scrolled(this.element.scrollTop);
    });
    this.body.addEventListener('click', (e) => {
      const row = (e.target as Element).closest<HTMLElement>('.row');
      const layer = row ? this.rows[Number(row.dataset.index)] : undefined;
      if (!layer) return;
      this.element.focus({ preventScroll: true });
      this.events.select(layer.name);
    });
    this.element.addEventListener('keydown', (e) => this.onKey(e));
    new ResizeObserver(() => this.render()).observe(this.element);
  }

  setRows(rows: LayerRecord[], emptyText: string): void {
    this.rows = rows;
    this.body.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.empty.textContent = rows.length === 0 ? emptyText : '';
    this.element.setAttribute('aria-rowcount', String(rows.length));
    this.render();
  }

  /** Shows these columns (shownColumns of the model's layers) and hides the rest. */
  setColumns(columns: readonly Column[]): void {
    if (columns.length === this.shown.length && columns.every((c, i) => c === this.shown[i])) return;
    this.shown = columns;
    this.placeColumns();
    // Rows are made with one cell per shown column: make them again.
    this.pool.length = 0;
    this.body.replaceChildren();
    // A header that was not in the DOM had no width to measure: fit again.
    this.fittedFont = '';
    this.render();
  }

  setSort(sort: SortSpec | null): void {
    for (const [key, cell] of this.headerCells) {
      const indicator = cell.querySelector('.sort-indicator')!;
      const active = sort?.key === key;
      indicator.replaceChildren(...(active ? [icon(sort.dir === 'asc' ? 'arrow-up' : 'arrow-down')] : []));
      cell.setAttribute('aria-sort', active ? (sort.dir === 'asc' ? 'ascending' : 'descending') : 'none');
    }
  }

  setSelected(name: string | null, reveal: boolean): void {
    this.selected = name;
    if (reveal && name !== null) this.reveal(name);
    this.render();
  }

  get scrollTop(): number {
    return this.element.scrollTop;
  }

  set scrollTop(value: number) {
    this.element.scrollTop = value;
    this.render();
  }

  /** Scrolls so that the named row is in view, if it is in the table. */
  reveal(name: string): void {
    const index = this.rows.findIndex((r) => r.name === name);
    if (index < 0) return;
    const next = scrollToRow(index, this.element.scrollTop, this.rowViewportHeight(), ROW_HEIGHT);
    if (next !== this.element.scrollTop) this.element.scrollTop = next;
  }

  render(): void {
    this.fitColumns();
    // Shadows mark the edges columns scroll past: under the pinned name column, and at the right while more columns
    // lie there (scrollbars can be hidden: macOS, headless browsers).
    const { scrollLeft, scrollWidth, clientWidth } = this.element;
    this.element.classList.toggle('scrolled-x', scrollLeft > 0);
    this.frame.classList.toggle('has-more-right', scrollLeft + clientWidth < scrollWidth - 1);
    const { start, end } = visibleWindow(this.element.scrollTop, this.rowViewportHeight(), ROW_HEIGHT, this.rows.length);
    const count = end - start;
    while (this.pool.length < count) this.pool.push(this.makeRow());
    // Rows beyond the window leave the DOM; the pool keeps them for reuse.
    while (this.body.childElementCount > count) this.body.lastElementChild!.remove();
    for (let i = 0; i < count; i++) {
      const row = this.pool[i];
      if (row.parentElement !== this.body) this.body.append(row);
      this.fillRow(row, start + i);
    }
  }

  /**
   * Widens columns whose header (label, sort arrow and padding) or widest usual value would not fit their minimum
   * width in the page's font, so headers and numbers are never cut off, sorted or not. Measured once the table is
   * laid out, and again if the font changes.
   */
  private fitColumns(): void {
    if (this.head.offsetWidth === 0) return;
    const style = getComputedStyle(this.head);
    const font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
    if (font === this.fittedFont) return;
    this.fittedFont = font;
    // A hidden cell in the body measures values in the cells' own font and padding.
    const probe = h('div', { className: 'td measure' });
    this.body.append(probe);
    const probeStyle = getComputedStyle(probe);
    const cellPadding = parseFloat(probeStyle.paddingLeft) + parseFloat(probeStyle.paddingRight);
    for (const column of this.shown) {
      const head = this.headerCells.get(column.key)!;
      const headStyle = getComputedStyle(head);
      const label = head.querySelector<HTMLElement>('.th-label')!;
      const arrow = head.querySelector<HTMLElement>('.sort-indicator')!;
      const headChrome = parseFloat(headStyle.paddingLeft) + parseFloat(headStyle.paddingRight) + (parseFloat(headStyle.columnGap) || 0);
      probe.textContent = column.widest ?? '';
      const value = column.widest ? textWidth(probe) + cellPadding : 0;
      this.fittedWidths.set(column.key, Math.ceil(Math.max(column.minWidth, textWidth(label) + arrow.getBoundingClientRect().width + headChrome, value)));
    }
    probe.remove();
    this.applyWidths();
  }

  /** Fills the header row: captions over runs of shown columns in its first grid row, their headers in its second. */
  private placeColumns(): void {
    const groups = columnGroups(this.shown);
    const captions = groups.map((group) => {
      const caption = h('div', { className: 'th-group', text: group.label, attrs: { 'aria-hidden': 'true' } });
      caption.style.gridArea = `1 / ${group.start + 1} / 2 / ${group.end + 1}`;
      return caption;
    });
    const headers = this.shown.map((column, c) => {
      const cell = this.headerCells.get(column.key)!;
      // The pinned header spans both rows, so captions scrolling sideways pass under it too.
      const [rowStart, rowEnd] = groups.length === 0 ? [1, 2] : column.key === 'name' ? [1, 3] : [2, 3];
      cell.style.gridArea = `${rowStart} / ${c + 1} / ${rowEnd} / ${c + 2}`;
      return cell;
    });
    this.head.replaceChildren(...captions, ...headers);
    this.applyWidths();
  }

  private applyWidths(): void {
    const widths = this.fittedWidths.size > 0 ? this.shown.map((c) => this.fittedWidths.get(c.key) ?? c.minWidth) : undefined;
    this.element.style.setProperty('--columns', gridTemplate(this.shown, widths));
    this.element.style.setProperty('--table-min-width', `${minTableWidth(this.shown, widths)}px`);
  }

  private rowViewportHeight(): number {
    return Math.max(0, this.element.clientHeight - this.head.offsetHeight);
  }

  private makeRow(): HTMLDivElement {
    const row = h('div', { className: 'row', attrs: { role: 'row' } });
    for (const column of this.shown) {
      // A name too long for its column loses the middle, not the end that tells layers apart (splitName). The warning
      // glyph shows on layers whose statistics come with a warning (NaN or infinite weights).
      const content = column.key === 'name'
        ? [icon('warning', 'row-warning'), h('span', { className: 'name-head' }), h('span', { className: 'name-tail' })]
        : [];
      row.append(h('div', { className: `td${cellClasses(column)}`, attrs: { role: 'gridcell' } }, ...content));
    }
    return row;
  }

  private fillRow(row: HTMLDivElement, index: number): void {
    const layer = this.rows[index];
    row.dataset.index = String(index);
    row.style.top = `${index * ROW_HEIGHT}px`;
    row.setAttribute('aria-rowindex', String(index + 1));
    const selected = layer.name === this.selected;
    row.classList.toggle('selected', selected);
    row.setAttribute('aria-selected', String(selected));
    this.shown.forEach((column, c) => {
      const cell = row.children[c] as HTMLElement;
      const text = column.text(layer);
      if (column.key === 'name') {
        // A reused row, or a re-inspected file, can show the same name with other statistics: the flag is always set.
        const warnings = layer.stats.warnings;
        (cell.children[0] as HTMLElement).hidden = warnings.length === 0;
        cell.title = [layer.name, ...(layer.group.length ? [layer.group.join(' › ')] : []), ...warnings.map((w) => `⚠ ${w}`)].join('\n');
        if (cell.textContent === text) return;
        const { head, tail } = splitName(text);
        cell.children[1]!.textContent = head;
        cell.children[2]!.textContent = tail;
      } else if (cell.textContent !== text) {
        cell.textContent = text;
      }
    });
  }

  private onKey(e: KeyboardEvent): void {
    const page = Math.max(1, Math.floor(this.rowViewportHeight() / ROW_HEIGHT) - 1);
    const deltas: Record<string, number> = {
      ArrowDown: 1,
      ArrowUp: -1,
      PageDown: page,
      PageUp: -page,
      Home: -Infinity,
      End: Infinity,
    };
    const delta = deltas[e.key];
    if (delta === undefined || this.rows.length === 0) return;
    e.preventDefault();
    const names = this.rows.map((r) => r.name);
    const next = Number.isFinite(delta)
      ? moveSelection(names, this.selected, delta)
      : names[delta < 0 ? 0 : names.length - 1];
    if (next !== null && next !== this.selected) this.events.select(next);
  }
}

/** The name column stays pinned at the left while the table scrolls sideways. */
function cellClasses(column: Column): string {
  return `${column.numeric ? ' num' : ''}${column.key === 'name' ? ' pinned' : ''}`;
}

/** The laid-out width of an element's text, fractions included (scrollWidth rounds, and a rounded-down width shows
 *  an ellipsis). */
function textWidth(el: Element): number {
  const range = document.createRange();
  range.selectNodeContents(el);
  return range.getBoundingClientRect().width;
}
