// App half of the search panel: the launch form, progress while the engine searches and measures, then the report —
// the Pareto front (predicted) with the chosen point and the measured uniform baselines, predicted against measured
// (table and bars), the allocation as a layers × ranges heatmap colored by bits, and the export buttons. Every string
// from a file goes in as text. It reports what it drew after each draw of a report.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineElement,
  LogarithmicScale,
  PointElement,
  ScatterController,
  Tooltip,
  type TooltipItem,
} from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import type { ExportReport, HostToSearch, SearchForm, SearchReport, SearchReportStep, SearchToHost } from '../../extension/protocol/searchPanel';
import { DEFAULT_MIN_SQNR_DB, MAX_SQNR_DB, maxErrorForSqnrDb, pinPattern, pinProblem, searchFormProblem, sqnrDbForMaxError, type SearchFormLimits } from '../../extension/features/search/searchForm';
import { Colormap } from '../analysis/colormap';
import { applyChartDefaults } from '../shared/chartTheme';
import { h, icon, clear } from '../shared/dom';
import { formatDb, formatNumber, shorten } from '../shared/format';
import { colormapTheme, onThemeChange, themeColors, type ThemeColors } from '../shared/theme';
import { connectToHost } from '../shared/vscodeApi';

Chart.register(ScatterController, BarController, BarElement, LineElement, PointElement, CategoryScale, LinearScale, LogarithmicScale, Tooltip, Legend, MatrixController, MatrixElement);

interface SavedState {
  runPath?: string;
  reportPath?: string;
}

const host = connectToHost<SearchToHost, SavedState>();
// The theme's colors of the moment: charts copy them when built, so a theme change rebuilds the charts (see the end).
let colors: ThemeColors = themeColors();
let colormap = new Colormap(colormapTheme());
applyChartDefaults(colors);

// ----- layout -----
const app = document.getElementById('app')!;
const title = h('h1', { className: 'title', text: 'Mixed-precision search' });
const statusLine = h('div', { className: 'status-line', attrs: { role: 'status' } });
const progressBar = h('div', { className: 'progress-bar' });
const progressTrack = h('div', { className: 'progress-track' }, progressBar);
const cancelButton = h('button', { className: 'secondary', title: 'Stop the search' }, icon('debug-stop'), 'Cancel');
const newButton = h('button', { className: 'secondary', title: 'Show the launch form for this run again' }, icon('add'), 'New search');
const banner = h('div', { className: 'banner error', attrs: { role: 'alert' } });
const formView = h('div', { className: 'form-view' });
const stepsView = h('ol', { className: 'steps' });
const reportView = h('div', { className: 'report-view' });
app.append(
  h('header', { className: 'header' }, h('div', { className: 'header-row' }, title, h('div', { className: 'actions' }, cancelButton, newButton)), statusLine, progressTrack),
  banner,
  formView,
  stepsView,
  reportView,
);
for (const el of [cancelButton, newButton, banner, progressTrack, formView, stepsView, reportView]) el.hidden = true;
cancelButton.addEventListener('click', () => host.post({ type: 'cancel' }));
newButton.addEventListener('click', () => host.post({ type: 'newSearch' }));

let charts: Chart[] = [];
let report: SearchReport | undefined;
let exportView: HTMLElement | undefined;
/** Where the shown report's charts and bits legend are drawn: rebuilt there when the theme changes. */
let chartPlaces: { pareto: HTMLCanvasElement; bars: HTMLCanvasElement; heatmap: HTMLCanvasElement; heatmapBox: HTMLElement; legend: HTMLElement } | undefined;

function setStatus(text: string): void {
  statusLine.textContent = text;
}

function showBanner(message: string | undefined): void {
  banner.textContent = message ?? '';
  banner.hidden = !message;
}

// ----- form -----

function labelled(labelText: string, control: HTMLElement, id: string, hint?: string): HTMLElement {
  control.id = id;
  return h('div', { className: 'field' }, h('label', { text: labelText, attrs: { for: id } }), control, ...(hint ? [h('span', { className: 'muted hint', text: hint })] : []));
}

function showForm(message: Extract<HostToSearch, { type: 'form' }>): void {
  host.setState({ runPath: message.runPath });
  destroyReport();
  title.textContent = `Mixed-precision search: ${message.runName}`;
  setStatus('Choose a budget or a quality target, then Start. The engine solves the Pareto front, then measures the chosen allocation and uniform ones for real.');
  showBanner(undefined);
  cancelButton.hidden = true;
  newButton.hidden = true;
  progressTrack.hidden = true;
  clear(formView);
  formView.hidden = false;
  const form = message.form;
  const limits: SearchFormLimits = { maxRanges: message.maxRanges, settings: message.runSettings, units: message.units };

  const kind = h('select');
  for (const [value, text] of [['averageBits', 'Average weight bits'], ['sizeMB', 'Model size (MB)'], ['minSqnrDb', 'Quality target (minimum SQNR)']] as const) {
    const option = h('option', { text, attrs: { value } });
    if (form.budgetKind === value) option.selected = true;
    kind.append(option);
  }
  const slider = h('input', { attrs: { type: 'range', min: '2', max: '8', step: '0.25' } });
  const megabytes = h('input', { attrs: { type: 'number', min: '0.001', step: 'any', 'aria-label': 'Budget in MB' } });
  const decibels = h('input', { attrs: { type: 'number', min: '0.5', max: String(MAX_SQNR_DB), step: '0.5', 'aria-label': 'Minimum SQNR in dB' } });
  const sliderValue = h('output', { className: 'slider-value' });
  const targetHint = h('span', { className: 'muted hint' });
  slider.value = String(form.budgetKind === 'averageBits' ? form.budgetValue : 5);
  megabytes.value = String(form.budgetKind === 'sizeMB' ? form.budgetValue : 1);
  decibels.value = String(form.budgetKind === 'minSqnrDb' ? form.budgetValue : DEFAULT_MIN_SQNR_DB);
  const sync = () => {
    slider.hidden = sliderValue.hidden = kind.value !== 'averageBits';
    megabytes.hidden = kind.value !== 'sizeMB';
    decibels.hidden = targetHint.hidden = kind.value !== 'minSqnrDb';
    sliderValue.textContent = `${Number(slider.value).toFixed(2)} bits`;
    const db = Number(decibels.value);
    targetHint.textContent = Number.isFinite(db) ? `dB: output noise power ≤ ${formatNumber(maxErrorForSqnrDb(db), 3)} × signal power; the cheapest allocation predicted to meet it` : 'dB';
  };
  kind.addEventListener('change', sync);
  slider.addEventListener('input', sync);
  decibels.addEventListener('input', sync);
  sync();

  const ranges = h('input', { attrs: { type: 'number', min: '1', max: String(message.maxRanges), step: '1' } });
  ranges.value = String(form.rangeCount);
  const refine = h('input', { attrs: { type: 'number', min: '0', max: '200', step: '1' } });
  refine.value = String(form.refine);

  const pin = h('input', { className: 'pin-input', attrs: { type: 'text', spellcheck: 'false', placeholder: 'e.g. embed|final_layer (empty: none)' } });
  pin.value = form.pin;
  const pinHint = h('span', { className: 'muted hint pin-hint', attrs: { 'aria-live': 'polite' } });
  const syncPin = () => {
    const pattern = pin.value.trim();
    const problem = pinProblem(pattern, limits.units);
    pin.setCustomValidity(problem ?? '');
    pinHint.classList.toggle('invalid', problem !== undefined);
    if (problem) pinHint.textContent = problem;
    else if (pattern === '') pinHint.textContent = 'case-insensitive regular expression over layer names; matches stay in full precision';
    else {
      const hits = limits.units.filter((unit) => pinPattern(pattern).test(unit));
      pinHint.textContent = `full precision: ${hits.length} of ${limits.units.length} layers (${hits.slice(0, 3).join(', ')}${hits.length > 3 ? ', …' : ''})`;
    }
  };
  pin.addEventListener('input', syncPin);
  syncPin();

  const settingBoxes = message.runSettings.map((id, i) => {
    const box = h('input', { attrs: { type: 'checkbox', value: id, id: `setting-${i}` } });
    box.checked = form.settings.includes(id);
    return box;
  });
  const settings = h(
    'fieldset',
    { className: 'field checks settings-field' },
    h('legend', { text: 'Settings to choose from (full precision always is one)' }),
    ...settingBoxes.map((box) => h('label', { className: 'check', attrs: { for: box.id } }, box, box.value)),
  );

  const problem = h('div', { className: 'form-problem', attrs: { role: 'alert' } });
  const start = h('button', { className: 'primary', attrs: { type: 'submit' } }, icon('play'), 'Start search');
  const element = h(
    'form',
    { className: 'launch-form search-form', attrs: { novalidate: '' } },
    labelled('Budget', kind, 'budget-kind'),
    h('div', { className: 'field' }, h('label', { text: 'Budget value', attrs: { for: 'budget-bits' } }), h('div', { className: 'budget-value' }, slider, sliderValue, megabytes, decibels, targetHint)),
    labelled('Timestep ranges (K)', ranges, 'range-count', message.maxRanges > 1 ? `1 to ${message.maxRanges}: each range gets its own allocation` : 'the run has one timestep (or none)'),
    labelled('Refine measurements (N)', refine, 'refine', 'moves tried on measured error after the solve'),
    h('div', { className: 'field pin-field' }, h('label', { text: 'Pin layers in full precision', attrs: { for: 'pin' } }), pin, pinHint),
    settings,
    problem,
    h('div', { className: 'form-actions' }, start),
  );
  slider.id = 'budget-bits';
  pin.id = 'pin';
  element.addEventListener('submit', (event) => {
    event.preventDefault();
    const budgetKind = kind.value === 'sizeMB' || kind.value === 'minSqnrDb' ? kind.value : 'averageBits';
    const searchForm: SearchForm = {
      budgetKind,
      budgetValue: Number(budgetKind === 'sizeMB' ? megabytes.value : budgetKind === 'minSqnrDb' ? decibels.value : slider.value),
      rangeCount: Number(ranges.value),
      refine: Number(refine.value),
      pin: pin.value.trim(),
      settings: settingBoxes.filter((box) => box.checked).map((box) => box.value),
    };
    const why = searchFormProblem(searchForm, limits);
    problem.textContent = why ?? '';
    if (why) return;
    showBanner(undefined);
    host.post({ type: 'start', form: searchForm });
  });
  formView.append(element);
}

// ----- running -----

function showRunning(): void {
  formView.hidden = true;
  destroyReport();
  clear(stepsView);
  stepsView.hidden = true;
  showBanner(undefined);
  cancelButton.hidden = false;
  newButton.hidden = true;
  progressTrack.hidden = false;
  progressBar.classList.add('indeterminate');
  setStatus('Starting the search…');
}

function showProgress(stage: string, done: number, total: number): void {
  setStatus(total > 0 ? `${stage}: ${done} of ${total}` : `${stage}…`);
  progressBar.classList.toggle('indeterminate', total <= 0);
  if (total > 0) progressBar.style.width = `${Math.min(100, (100 * done) / total)}%`;
}

/** A refinement step as the live list and the report's list write it; `prefix` names its range in the live list. */
function stepItem(step: SearchReportStep, prefix = ''): HTMLLIElement {
  return h('li', { className: step.accepted ? 'accepted' : '', text: `${prefix}${step.moves}: predicted ${formatNumber(step.predicted)}, measured ${formatNumber(step.measured)}${step.accepted ? ' — kept' : ''}` });
}

function showStep(step: SearchReportStep): void {
  stepsView.hidden = false;
  stepsView.append(stepItem(step, step.range === 'all' ? '' : `[${step.range}] `));
}

// ----- report -----

function destroyCharts(): void {
  for (const chart of charts) chart.destroy();
  charts = [];
}

function drawCharts(next: SearchReport): void {
  if (!chartPlaces) return;
  destroyCharts();
  const legend = bitsLegend(next);
  chartPlaces.legend.replaceWith(legend);
  chartPlaces.legend = legend;
  charts.push(paretoChart(chartPlaces.pareto, next), measuredChart(chartPlaces.bars, next), allocationChart(chartPlaces.heatmap, chartPlaces.heatmapBox, next));
}

function destroyReport(): void {
  destroyCharts();
  chartPlaces = undefined;
  report = undefined;
  exportView = undefined;
  clear(reportView);
  reportView.hidden = true;
}

function section(heading: string, ...children: (Node | string)[]): HTMLElement {
  return h('section', { className: 'report-section' }, h('h2', { text: heading }), ...children);
}

function showReport(next: SearchReport, reportPath: string | undefined): void {
  if (reportPath) host.setState({ reportPath, ...(next.runPath ? { runPath: next.runPath } : {}) });
  destroyReport();
  report = next;
  formView.hidden = true;
  clear(stepsView);
  stepsView.hidden = true;
  cancelButton.hidden = true;
  newButton.hidden = !next.runPath;
  progressTrack.hidden = true;
  title.textContent = `Mixed-precision search: ${basename(next.modelPath)}`;
  const chosen = next.chosen;
  setStatus(chosenSummary(next));
  reportView.hidden = false;

  const exportButton = h('button', { className: 'primary', title: 'Write the allocation as a QDQ ONNX model next to the model' }, icon('package'), 'Export QDQ model…');
  const openButton = h('button', { className: 'secondary', title: next.allocationPath }, icon('json'), 'Open allocation JSON');
  exportButton.addEventListener('click', () => host.post({ type: 'exportQdq' }));
  openButton.addEventListener('click', () => host.post({ type: 'openAllocation' }));
  exportView = h('div', { className: 'export-view' });
  reportView.append(h('div', { className: 'report-actions' }, exportButton, openButton), exportView);

  const notes = [...next.warnings.map((w) => `warning: ${w}`), ...next.notes];
  if (notes.length > 0) reportView.append(h('ul', { className: 'notes' }, ...notes.map((note) => h('li', { text: note }))));

  const paretoCanvas = h('canvas', { className: 'pareto-canvas', attrs: { role: 'img', 'aria-label': 'Pareto front: cost against predicted error' } });
  const barsCanvas = h('canvas', { className: 'measured-canvas', attrs: { role: 'img', 'aria-label': 'Predicted against measured error' } });
  const heatmapCanvas = h('canvas', { className: 'allocation-canvas', attrs: { role: 'img', 'aria-label': 'Allocation: layers × timestep ranges, colored by bits' } });
  const heatmapBox = h('div', { className: 'allocation-box' }, heatmapCanvas);
  const legend = h('div');
  reportView.append(
    h(
      'div',
      { className: 'report-grid' },
      section('Pareto front (predicted) with the chosen point and measured uniform allocations', h('div', { className: 'chart-box' }, paretoCanvas)),
      section('Predicted against measured', h('div', { className: 'table-scroll' }, measuredTable(next)), h('div', { className: 'chart-box small' }, barsCanvas)),
    ),
    section(`Allocation: ${next.layers.length} layers × ${next.rangeLabels.length} timestep range${next.rangeLabels.length === 1 ? '' : 's'} (weight bits)`, legend, heatmapBox),
  );
  if (next.refinement.length > 0) {
    reportView.append(
      section(
        `Refinement: ${next.refinement.length} measurement${next.refinement.length === 1 ? '' : 's'}, ${next.refinement.filter((s) => s.accepted).length} kept`,
        h('ol', { className: 'steps' }, ...next.refinement.map((step) => stepItem(step))),
      ),
    );
  }
  reportView.append(h('p', { className: 'muted paths', text: `Allocation: ${next.allocationPath}${next.yamlPaths.length ? ` · YAML: ${next.yamlPaths.join(', ')}` : ''}` }));

  const frontPoints = next.ranges.reduce((sum, range) => sum + range.front.length, 0);
  chartPlaces = { pareto: paretoCanvas, bars: barsCanvas, heatmap: heatmapCanvas, heatmapBox, legend };
  drawCharts(next);
  paretoCanvas.dataset.points = String(frontPoints);
  host.post({
    type: 'rendered',
    frontPoints,
    chosenCost: chosen.predicted.cost,
    allocationCells: next.layers.length * next.rangeLabels.length,
    measured: chosen.measured.error,
  });
}

function chosenSummary(next: SearchReport): string {
  const chosen = next.chosen;
  const target = next.budget?.kind === 'errorTarget' ? `; quality target SQNR ≥ ${formatDb(sqnrDbForMaxError(next.budget.maxError))} dB (error ≤ ${formatNumber(next.budget.maxError)})` : '';
  return `Chosen: ${formatNumber(chosen.predicted.cost)} ${next.costLabel}, measured error ${formatNumber(chosen.measured.error)} (${formatDb(chosen.measured.sqnrDb)} dB), predicted ${formatNumber(chosen.predicted.error)}${target}`;
}

/** The error target of a quality-target search, undefined for cost budgets. */
function targetError(next: SearchReport): number | undefined {
  return next.budget?.kind === 'errorTarget' ? next.budget.maxError : undefined;
}

function basename(file: string): string {
  return file.split(/[\\/]/).pop() ?? file;
}

function measuredTable(next: SearchReport): HTMLElement {
  const rows = [next.chosen, ...(next.solved && next.refinement.length > 0 ? [next.solved] : []), ...next.uniform];
  const head = h('tr', {}, ...['', next.costLabel, 'predicted', 'measured', 'SQNR dB'].map((text) => h('th', { text })));
  const body = rows.map((row) =>
    h(
      'tr',
      { className: row === next.chosen ? 'chosen' : '' },
      h('td', { text: `${row.label}${row.fits === false ? (targetError(next) !== undefined ? ' (misses the target)' : ' (over budget)') : ''}` }),
      h('td', { text: formatNumber(row.predicted.cost) }),
      h('td', { text: formatNumber(row.predicted.error) }),
      h('td', { text: formatNumber(row.measured.error) }),
      h('td', { text: formatDb(row.measured.sqnrDb) }),
    ),
  );
  return h('table', { className: 'measured-table' }, h('thead', {}, head), h('tbody', {}, ...body));
}

const positive = (value: number | null) => (value !== null && value > 0 ? value : undefined);

function paretoChart(canvas: HTMLCanvasElement, next: SearchReport): Chart {
  const [blue, orange, green, red] = colors.series;
  const multi = next.ranges.length > 1;
  const datasets: Chart<'scatter'>['data']['datasets'] = next.ranges.map((range, r) => ({
    label: multi ? `front ${range.label}` : 'front (predicted)',
    data: range.front.filter((p) => p.error > 0).map((p) => ({ x: p.cost, y: p.error })),
    showLine: true,
    borderColor: r === 0 ? blue : colors.series[(r + 3) % colors.series.length],
    backgroundColor: r === 0 ? blue : colors.series[(r + 3) % colors.series.length],
    pointRadius: 2,
    borderWidth: 1,
  }));
  const chosenPredicted = positive(next.chosen.predicted.error);
  if (chosenPredicted) {
    datasets.push({ label: 'chosen (predicted)', data: [{ x: next.chosen.predicted.cost, y: chosenPredicted }], backgroundColor: orange, borderColor: colors.foreground, pointRadius: 7, pointStyle: 'rectRot', borderWidth: 2 });
  }
  const chosenMeasured = positive(next.chosen.measured.error);
  if (chosenMeasured) {
    datasets.push({ label: 'chosen (measured)', data: [{ x: next.chosen.predicted.cost, y: chosenMeasured }], backgroundColor: red, borderColor: colors.foreground, pointRadius: 8, pointStyle: 'star', borderWidth: 2 });
  }
  const uniform = next.uniform.flatMap((u) => (positive(u.measured.error) ? [{ x: u.predicted.cost, y: u.measured.error as number, label: u.label }] : []));
  if (uniform.length > 0) {
    datasets.push({ label: 'uniform (measured)', data: uniform, backgroundColor: green, borderColor: green, pointRadius: 6, pointStyle: 'triangle' });
  }
  const target = targetError(next);
  const costs = next.ranges.flatMap((range) => range.front.map((p) => p.cost));
  if (target !== undefined && target > 0 && costs.length > 0) {
    const [from, to] = [Math.min(...costs), Math.max(...costs)];
    datasets.push({ label: 'quality target', data: [{ x: from, y: target }, { x: to, y: target }], showLine: true, borderColor: colors.foreground, backgroundColor: colors.foreground, borderDash: [5, 4], borderWidth: 1, pointRadius: 0, pointStyle: 'line' });
  }
  const budget = next.ranges[0]?.maxCost;
  return new Chart(canvas, {
    type: 'scatter',
    data: { datasets },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: { type: 'linear', title: { display: true, text: `${next.costLabel}${budget !== null && budget !== undefined ? ` (budget ${formatNumber(budget)})` : ''}` } },
        y: { type: 'logarithmic', title: { display: true, text: 'error (relative noise power, log)' }, ticks: { callback: (value) => formatNumber(Number(value), 2) } },
      },
      plugins: {
        legend: { position: 'bottom', labels: { color: colors.muted, usePointStyle: true } },
        tooltip: {
          callbacks: {
            label: (item: TooltipItem<'scatter'>) => {
              const raw = item.raw as { x: number; y: number; label?: string };
              return `${raw.label ?? item.dataset.label}: ${formatNumber(raw.x)} ${next.costLabel}, error ${formatNumber(raw.y)}`;
            },
          },
        },
      },
    },
  }) as unknown as Chart;
}

function measuredChart(canvas: HTMLCanvasElement, next: SearchReport): Chart {
  const rows = [next.chosen, ...next.uniform];
  const [blue, orange] = colors.series;
  return new Chart(canvas, {
    type: 'bar',
    data: {
      labels: rows.map((row) => row.label),
      datasets: [
        { label: 'predicted', data: rows.map((row) => positive(row.predicted.error) ?? null) as number[], backgroundColor: blue },
        { label: 'measured', data: rows.map((row) => positive(row.measured.error) ?? null) as number[], backgroundColor: orange },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: { y: { type: 'logarithmic', title: { display: true, text: 'error (log)' }, ticks: { callback: (value) => formatNumber(Number(value), 2) } } },
      plugins: { legend: { position: 'bottom', labels: { color: colors.muted } } },
    },
  }) as unknown as Chart;
}

/** Bit-widths the shown allocation uses, most first: colors spread over them so neighbours stay apart. */
let shownBits: number[] = [];

/** Fewer bits are hotter; floating point (16) is the faintest color. */
function bitsColor(bits: number): string {
  if (bits >= 16) return colormap.color(0);
  const rank = shownBits.indexOf(bits);
  return colormap.color(rank < 0 ? (16 - bits) / 14 : (rank + 1) / shownBits.length);
}

function bitsLegend(next: SearchReport): HTMLElement {
  const used = [...new Set(next.bits.flat())].sort((a, b) => a - b);
  shownBits = used.filter((bits) => bits < 16).sort((a, b) => b - a);
  return h(
    'div',
    { className: 'legend' },
    ...used.map((bits) => {
      const swatch = h('canvas', { className: 'swatch', attrs: { width: '12', height: '12', 'aria-hidden': 'true' } });
      const ctx = swatch.getContext('2d');
      if (ctx) {
        ctx.fillStyle = bitsColor(bits);
        ctx.fillRect(0, 0, 12, 12);
      }
      const count = next.bits.flat().filter((b) => b === bits).length;
      return h('span', { className: 'legend-item' }, swatch, `${bits >= 16 ? 'FP' : `W${bits}`} ×${count}`);
    }),
  );
}

const ROW = 16;

function allocationChart(canvas: HTMLCanvasElement, box: HTMLElement, next: SearchReport): Chart {
  const cells = next.layers.flatMap((_, row) => next.rangeLabels.map((__, column) => ({ x: column, y: row, v: next.bits[row]![column]! })));
  box.style.height = `${Math.max(120, next.layers.length * ROW + 60)}px`;
  const columns = next.rangeLabels.length;
  const chart = new Chart(canvas, {
    type: 'matrix',
    data: {
      datasets: [
        {
          label: 'bits',
          data: cells,
          backgroundColor: (ctx) => {
            const raw = ctx.raw as { v: number } | undefined;
            return raw ? bitsColor(raw.v) : 'transparent';
          },
          borderWidth: 0,
          width: ({ chart: c }: { chart: Chart }) => Math.max(1, (c.chartArea?.width ?? 0) / columns - 2),
          height: ({ chart: c }: { chart: Chart }) => Math.max(1, (c.chartArea?.height ?? 0) / Math.max(1, next.layers.length) - 2),
        },
      ],
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: {
          type: 'linear',
          min: -0.5,
          max: columns - 0.5,
          offset: false,
          grid: { display: false },
          title: { display: true, text: 'timestep range' },
          afterBuildTicks: (scale) => {
            scale.ticks = next.rangeLabels.map((_, i) => ({ value: i }));
          },
          ticks: { callback: (value) => next.rangeLabels[Number(value)] ?? '' },
        },
        y: {
          type: 'linear',
          reverse: true,
          min: -0.5,
          max: next.layers.length - 0.5,
          offset: false,
          grid: { display: false },
          afterBuildTicks: (scale) => {
            scale.ticks = next.layers.map((_, i) => ({ value: i }));
          },
          ticks: { autoSkip: false, callback: (value) => shorten(next.layers[Number(value)] ?? '', 40) },
        },
      },
      plugins: {
        legend: { display: false },
        tooltip: {
          displayColors: false,
          callbacks: {
            title: (items) => next.layers[(items[0]?.raw as { y: number } | undefined)?.y ?? -1] ?? '',
            label: (item) => {
              const raw = item.raw as { x: number; y: number; v: number };
              const act = next.activationBits?.[raw.y]?.[raw.x];
              return `${next.rangeLabels[raw.x]}: ${raw.v >= 16 ? 'floating point' : `W${raw.v}`}${act ? ` A${act}` : ''}`;
            },
          },
        },
      },
    },
  });
  return chart as unknown as Chart;
}

function showExported(exported: ExportReport): void {
  if (!exportView) return;
  clear(exportView);
  for (const model of exported.models) {
    const sqnr = Object.entries(model.sqnrDb).map(([name, db]) => `${name} ${formatDb(db)} dB`).join(', ');
    exportView.append(
      h('div', { className: 'exported' }, h('strong', { text: basename(model.outPath) }),
        ` — ${(model.exportedBytes / 1e6).toFixed(2)} MB against ${(model.originalBytes / 1e6).toFixed(2)} MB (${((100 * model.exportedBytes) / Math.max(1, model.originalBytes)).toFixed(1)} %); ${model.weights} weights, ${model.activations} activation points${sqnr ? `; SQNR against full precision: ${sqnr}` : ''}`),
    );
    for (const note of model.notes) exportView.append(h('div', { className: 'muted', text: `note: ${note}` }));
  }
}

onThemeChange(() => {
  colors = themeColors();
  colormap = new Colormap(colormapTheme());
  applyChartDefaults(colors);
  if (report) drawCharts(report);
});

window.addEventListener('message', (event: MessageEvent<HostToSearch>) => {
  const message = event.data;
  switch (message?.type) {
    case 'form':
      showForm(message);
      break;
    case 'progress':
      showProgress(message.stage, message.done, message.total);
      break;
    case 'step':
      showStep(message.step);
      break;
    case 'report':
      showReport(message.report, message.reportPath);
      break;
    case 'exported':
      showExported(message.report);
      break;
    case 'status':
      if (message.status === 'running') {
        if (report) setStatus(message.message ?? 'Working…');
        else showRunning();
      } else {
        cancelButton.hidden = true;
        progressTrack.hidden = true;
        if (message.status === 'complete' && report) setStatus(chosenSummary(report));
        showBanner(message.status === 'failed' || message.status === 'cancelled' ? message.message : undefined);
      }
      break;
  }
});

host.post({ type: 'ready' });
