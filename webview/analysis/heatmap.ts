// A heatmap of layers (rows) × columns (timesteps or settings) on chartjs-chart-matrix, virtualised: a native scroll
// container holds a spacer as tall as every row, the canvas sticks to its top, and only the rows in view are handed
// to chart.js. Redraw cost therefore depends on the view, not on the run: 1,000 layers × 50 timesteps scroll as
// smoothly as 20 × 2. The y axis is linear with a fractional window, so scrolling moves by pixels, not by rows.
import { Chart, LinearScale, Tooltip, type ChartEvent, type ActiveElement, type Scale, type TooltipItem } from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import { h } from '../shared/dom';
import { restyleChart } from '../shared/chartTheme';
import { shorten } from '../shared/format';
import type { ThemeColors } from '../shared/theme';
import type { Colormap } from './colormap';
import { badness, colorPosition, unitLabel, type Matrix, type MetricKey } from './runData';

Chart.register(MatrixController, MatrixElement, LinearScale, Tooltip);

/** Preferred row height; rows of a short run grow to fill MIN_PLOT_HEIGHT. */
const ROW_HEIGHT = 14;
const MAX_ROW_HEIGHT = 28;
const MIN_PLOT_HEIGHT = 120;
const X_AXIS_HEIGHT = 38;
const PAD_TOP = 4;
/** Longest row label drawn; the full name is in the tooltip. */
const LABEL_CHARS = 36;
/** Share of the heatmap's width the row labels may take. */
const LABEL_SHARE = 0.4;

interface Cell {
  x: number;
  y: number;
  v: number;
  color: string;
}

export interface HeatmapOptions {
  label: string;
  xTitle: string;
  /** Tooltip lines for a cell. */
  describe(row: number, column: number): string[];
  click(row: number, column: number): void;
  scrolled?(scrollTop: number): void;
  /** After each redraw. */
  drawn?(): void;
}

export class Heatmap {
  readonly element: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly scroller: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly sticky: HTMLElement;
  private readonly chart: Chart<'matrix', Cell[]>;
  private matrix: Matrix = { rows: [], columns: [], values: new Float64Array(0), filled: 0 };
  private order: readonly number[] = [];
  private colors: string[] = [];
  private rowHeight = ROW_HEIGHT;
  private maxHeight = 480;
  private selectedRow = -1;
  private labelWidth = 120;
  private labelChars = LABEL_CHARS;
  private frame = 0;
  private lastDrawMs = 0;
  private readonly drawn: (() => void) | undefined;

  constructor(options: HeatmapOptions, theme: ThemeColors) {
    this.canvas = h('canvas', { className: 'heatmap-canvas', attrs: { role: 'img', 'aria-label': options.label } });
    this.sticky = h('div', { className: 'heatmap-sticky' }, this.canvas);
    this.spacer = h('div', { className: 'heatmap-spacer' }, this.sticky);
    this.scroller = h('div', { className: 'heatmap-scroll', attrs: { tabindex: '0' } }, this.spacer);
    this.element = h('div', { className: 'heatmap' }, this.scroller);
    this.drawn = options.drawn;
    this.scroller.addEventListener('scroll', () => {
      this.drawSoon();
      options.scrolled?.(this.scroller.scrollTop);
    });

    const heatmap = this;
    this.chart = new Chart<'matrix', Cell[]>(this.canvas, {
      type: 'matrix',
      data: { datasets: [{ label: options.label, data: [] }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        layout: { padding: { top: PAD_TOP, right: 8, left: 0, bottom: 0 } },
        events: ['mousemove', 'mouseout', 'click'],
        interaction: { mode: 'nearest', intersect: true },
        onClick: (_event: ChartEvent, elements: ActiveElement[]) => {
          const cell = this.chart.data.datasets[0]!.data[elements[0]?.index ?? -1];
          if (cell) options.click(this.order[cell.y]!, cell.x);
        },
        onHover: (event: ChartEvent, elements: ActiveElement[]) => {
          const target = event.native?.target as HTMLElement | undefined;
          if (target) target.classList.toggle('pointer', elements.length > 0);
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            displayColors: false,
            callbacks: {
              title: (items: TooltipItem<'matrix'>[]) => {
                const cell = items[0]?.raw as Cell | undefined;
                return cell ? unitLabel(this.matrix.rows[this.order[cell.y]!] ?? '') : '';
              },
              label: (item: TooltipItem<'matrix'>) => {
                const cell = item.raw as Cell;
                return options.describe(this.order[cell.y]!, cell.x);
              },
            },
          },
        },
        scales: {
          x: {
            type: 'linear',
            offset: false,
            position: 'bottom',
            min: -0.5,
            max: 0.5,
            grid: { display: false },
            border: { display: false },
            title: { display: true, text: options.xTitle, padding: 0 },
            ticks: {
              autoSkip: true,
              maxRotation: 0,
              callback: (value) => (Number.isInteger(value) ? this.matrix.columns[Number(value)] ?? '' : ''),
            },
            afterBuildTicks: integerTicks,
            afterFit: (scale: Scale) => {
              scale.height = X_AXIS_HEIGHT;
            },
          },
          y: {
            type: 'linear',
            reverse: true,
            offset: false,
            min: -0.5,
            max: 0.5,
            grid: { display: false },
            border: { display: false },
            ticks: {
              autoSkip: false,
              callback: (value) =>
                Number.isInteger(value) ? shorten(unitLabel(this.matrix.rows[this.order[Number(value)] ?? -1] ?? ''), this.labelChars) : '',
            },
            afterBuildTicks: integerTicks,
            // A fixed width: labels that change while scrolling must not move the plot.
            afterFit: (scale: Scale) => {
              scale.width = heatmap.labelWidth;
            },
          },
        },
      },
    });
    const dataset = this.chart.data.datasets[0]!;
    Object.assign(dataset, {
      // Rows half scrolled out must not draw over the axes (chart.js clips a matrix dataset only when told).
      clip: 0,
      backgroundColor: (ctx: { raw?: Cell }) => ctx.raw?.color ?? 'transparent',
      borderColor: theme.foreground,
      borderWidth: (ctx: { raw?: Cell }) => (ctx.raw && ctx.raw.y === this.selectedRow ? 1 : 0),
      width: ({ chart }: { chart: Chart }) => Math.max(1, (chart.chartArea?.width ?? 0) / Math.max(1, this.matrix.columns.length) - this.gap()),
      height: () => Math.max(1, this.rowHeight - this.gap()),
    });
  }

  /**
   * Shows `matrix` with rows in `order` (indices into matrix.rows), colored on `colormap` over `range`. Redraws on the
   * next frame; bursts of calls (rows streaming in) cost one redraw.
   */
  show(matrix: Matrix, metric: MetricKey, colormap: Colormap, range: { lo: number; hi: number } | undefined, order?: readonly number[]): void {
    const rowsChanged = matrix.rows !== this.matrix.rows;
    this.matrix = matrix;
    this.order = order ?? matrix.rows.map((_, i) => i);
    const colors = new Array<string>(matrix.values.length);
    for (let i = 0; i < matrix.values.length; i++) {
      const bad = badness(metric, matrix.values[i]);
      colors[i] = Number.isNaN(bad) || !range ? '' : colormap.color(colorPosition(bad, range));
    }
    this.colors = colors;
    if (rowsChanged) this.layout();
    this.drawSoon();
  }

  /** Outlines a row (a position in matrix.rows), or none with -1. */
  select(row: number): void {
    const at = this.order.indexOf(row);
    if (at === this.selectedRow) return;
    this.selectedRow = at;
    this.drawSoon();
  }

  /** Scrolls so that `row` (a position in matrix.rows) is in view. */
  reveal(row: number): void {
    const at = this.order.indexOf(row);
    if (at < 0) return;
    const top = at * this.rowHeight;
    const view = this.plotHeight();
    if (top < this.scroller.scrollTop || top + this.rowHeight > this.scroller.scrollTop + view) {
      this.scroller.scrollTop = Math.max(0, top - view / 2);
    }
  }

  get scrollTop(): number {
    return this.scroller.scrollTop;
  }

  set scrollTop(value: number) {
    if (Math.abs(this.scroller.scrollTop - value) >= 1) this.scroller.scrollTop = value;
  }

  setMaxHeight(px: number): void {
    this.maxHeight = Math.max(MIN_PLOT_HEIGHT + X_AXIS_HEIGHT, px);
    this.layout();
    this.drawSoon();
  }

  recolor(theme: ThemeColors): void {
    (this.chart.data.datasets[0] as { borderColor?: string }).borderColor = theme.foreground;
    restyleChart(this.chart, theme);
    this.drawSoon();
  }

  /** Milliseconds the last redraw took (chart.js update and paint). */
  get lastRedrawMs(): number {
    return this.lastDrawMs;
  }

  /** Redraws now (tests and the benchmark page call this; the UI goes through drawSoon). */
  draw(): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const started = performance.now();
    const rows = this.matrix.rows.length;
    const cols = this.matrix.columns.length;
    const visible = this.plotHeight() / this.rowHeight;
    const first = Math.min(this.scroller.scrollTop / this.rowHeight, Math.max(0, rows - visible));
    const data: Cell[] = [];
    const lastRow = Math.min(rows - 1, Math.ceil(first + visible));
    for (let y = Math.max(0, Math.floor(first)); y <= lastRow; y++) {
      const row = this.order[y]!;
      for (let x = 0; x < cols; x++) {
        const color = this.colors[row * cols + x];
        if (color) data.push({ x, y, v: this.matrix.values[row * cols + x]!, color });
      }
    }
    const scales = this.chart.options.scales!;
    scales.x!.min = -0.5;
    scales.x!.max = Math.max(0, cols - 1) + 0.5;
    scales.y!.min = first - 0.5;
    scales.y!.max = first - 0.5 + visible;
    this.chart.data.datasets[0]!.data = data;
    this.chart.update('none');
    this.lastDrawMs = performance.now() - started;
    // Where the cells are, in CSS pixels of the canvas: lets a browser-side test click a given cell.
    const area = this.chart.chartArea;
    this.canvas.dataset.plot = [area.left, area.top, area.width, area.height].map((v) => v.toFixed(1)).join(',');
    this.canvas.dataset.rowHeight = String(this.rowHeight);
    this.canvas.dataset.firstRow = first.toFixed(2);
    this.drawn?.();
  }

  /** Coalesces redraws to one per animation frame (a timer covers frames a hidden page never gets). */
  drawSoon(): void {
    if (this.frame) return;
    const timer = setTimeout(() => this.draw(), 100);
    this.frame = requestAnimationFrame(() => {
      clearTimeout(timer);
      this.draw();
    });
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    this.chart.destroy();
  }

  private gap(): number {
    return this.rowHeight >= 8 ? 1 : 0;
  }

  private plotHeight(): number {
    return this.sticky.clientHeight - X_AXIS_HEIGHT - PAD_TOP;
  }

  /** Sizes the spacer (every row) and the visible part (at most maxHeight), and the label column. */
  private layout(): void {
    const rows = Math.max(1, this.matrix.rows.length);
    this.rowHeight = Math.min(MAX_ROW_HEIGHT, Math.max(ROW_HEIGHT, MIN_PLOT_HEIGHT / rows));
    const full = rows * this.rowHeight;
    const plot = Math.min(full, this.maxHeight - X_AXIS_HEIGHT - PAD_TOP);
    this.sticky.style.height = `${plot + X_AXIS_HEIGHT + PAD_TOP}px`;
    this.spacer.style.height = `${full + X_AXIS_HEIGHT + PAD_TOP}px`;
    this.scroller.style.height = `${plot + X_AXIS_HEIGHT + PAD_TOP}px`;
    this.measureLabels();
    this.chart.resize();
  }

  /** Sets the label column's width and how many characters of a name fit in it. */
  private measureLabels(): void {
    const ctx = this.canvas.getContext('2d');
    if (!ctx) return;
    const font = Chart.defaults.font;
    ctx.font = `${font.size ?? 11}px ${font.family ?? 'sans-serif'}`;
    const budget = Math.max(80, (this.element.clientWidth || 600) * LABEL_SHARE);
    const charWidth = ctx.measureText('abcdefghij.0123456789').width / 21;
    this.labelChars = Math.max(8, Math.min(LABEL_CHARS, Math.floor((budget - 16) / charWidth)));
    let widest = 0;
    // Measuring every name of a 1,000-layer model is cheap next to drawing them.
    for (const name of this.matrix.rows) widest = Math.max(widest, ctx.measureText(shorten(unitLabel(name), this.labelChars)).width);
    // Room for chart.js's tick padding on both sides of the text.
    this.labelWidth = Math.ceil(Math.min(widest + 16, budget));
  }
}

/**
 * One tick per row or column in view. Linear ticks with stepSize 1 would start at the axis minimum (−0.5) whenever
 * the range spans a whole number of steps, putting every label between two rows.
 */
function integerTicks(scale: Scale): void {
  const ticks = [];
  for (let value = Math.ceil(scale.min); value <= Math.floor(scale.max); value++) ticks.push({ value });
  scale.ticks = ticks;
}
