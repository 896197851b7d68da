// The layer table, virtualised: rows have a fixed height, only the rows in view (plus a margin) exist in the DOM,
// and a sized body keeps the scrollbar honest. Stays fluid at thousands of layers.
import type { LayerRecord } from '../../extension/protocol/records';
import { h, icon } from '../shared/dom';
import {
  COLUMNS, gridTemplate, minTableWidth, moveSelection, scrollToRow, visibleWindow, type ColumnKey, type SortSpec,
} from './tableModel';

export const ROW_HEIGHT = 22;

export interface TableEvents {
  /** The user picked a row (mouse or keyboard). */
  select(name: string): void;
  sort(key: ColumnKey): void;
  scrolled(scrollTop: number): void;
}

export class LayerTable {
  /** The scroll container; focusable for keyboard navigation. */
  readonly element: HTMLDivElement;
  private readonly head: HTMLDivElement;
  private readonly body: HTMLDivElement;
  private readonly empty: HTMLDivElement;
  private readonly headerCells = new Map<ColumnKey, HTMLElement>();
  private readonly pool: HTMLDivElement[] = [];
  private rows: LayerRecord[] = [];
  private selected: string | null = null;

  constructor(private readonly events: TableEvents) {
    this.head = h('div', { className: 'thead', attrs: { role: 'row' } });
    for (const column of COLUMNS) {
      const cell = h(
        'button',
        { className: `th${column.numeric ? ' num' : ''}`, title: column.title, attrs: { role: 'columnheader', 'data-key': column.key } },
        h('span', { className: 'th-label', text: column.label }),
        h('span', { className: 'sort-indicator' }),
      );
      cell.addEventListener('click', () => this.events.sort(column.key));
      this.headerCells.set(column.key, cell);
      this.head.append(cell);
    }
    this.body = h('div', { className: 'tbody', attrs: { role: 'rowgroup' } });
    this.empty = h('div', { className: 'table-empty' });
    this.element = h('div', { className: 'table', attrs: { role: 'grid', tabindex: '0', 'aria-label': 'Layers' } }, this.head, this.body, this.empty);
    this.element.style.setProperty('--row-height', `${ROW_HEIGHT}px`);
    this.element.style.setProperty('--columns', gridTemplate(COLUMNS));
    this.element.style.setProperty('--table-min-width', `${minTableWidth(COLUMNS)}px`);

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

  private rowViewportHeight(): number {
    return Math.max(0, this.element.clientHeight - this.head.offsetHeight);
  }

  private makeRow(): HTMLDivElement {
    const row = h('div', { className: 'row', attrs: { role: 'row' } });
    for (const column of COLUMNS) row.append(h('div', { className: `td${column.numeric ? ' num' : ''}`, attrs: { role: 'gridcell' } }));
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
    COLUMNS.forEach((column, c) => {
      const cell = row.children[c] as HTMLElement;
      const text = column.text(layer);
      if (cell.textContent !== text) cell.textContent = text;
      if (column.key === 'name') cell.title = layer.group.length ? `${layer.name}\n${layer.group.join(' › ')}` : layer.name;
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
