// App half of the sensitivity panel: the launch form, then a run's heatmaps, bars and activation ranges, filled in
// as the host streams rows (protocol/analysisPanel.ts). It reports what the heatmap drew after every draw.
import type { AnalysisRun, RunStatus } from '../../extension/protocol/analysis';
import type { AnalysisToHost, HostToAnalysis } from '../../extension/protocol/analysisPanel';
import { applyChartDefaults } from '../shared/chartTheme';
import { h, icon } from '../shared/dom';
import { formatCount } from '../shared/format';
import { colormapTheme, onThemeChange, themeColors } from '../shared/theme';
import { connectToHost } from '../shared/vscodeApi';
import { formatMetric, RangeChart, SensitiveBars } from './charts';
import { Colormap } from './colormap';
import { launchForm } from './form';
import { Heatmap } from './heatmap';
import {
  ALL_UNIT,
  badness,
  badnessRange,
  colorPosition,
  fromBadness,
  isMetricKey,
  METRICS,
  RunData,
  sensitivityOrder,
  timestepLabel,
  type Matrix,
  type MetricInfo,
  type MetricKey,
  type TimestepChoice,
} from './runData';

/** What survives the webview being hidden and reloaded, and VS Code restarting (the serializer reads the paths). */
interface SavedState {
  modelPath?: string;
  recordPath?: string;
  setting?: string;
  metric: MetricKey;
  timestep: TimestepChoice;
  order: 'model' | 'sensitivity';
  selected?: string;
  scrollTop: number;
}

const BARS = 20;

const host = connectToHost<AnalysisToHost, SavedState>();
const saved = host.getState();
const ui: SavedState = {
  ...(typeof saved?.modelPath === 'string' ? { modelPath: saved.modelPath } : {}),
  ...(typeof saved?.recordPath === 'string' ? { recordPath: saved.recordPath } : {}),
  ...(typeof saved?.setting === 'string' ? { setting: saved.setting } : {}),
  metric: isMetricKey(saved?.metric) ? saved.metric : 'sqnrDb',
  timestep: typeof saved?.timestep === 'number' || saved?.timestep === 'mean' ? saved.timestep : 'mean',
  order: saved?.order === 'sensitivity' ? 'sensitivity' : 'model',
  ...(typeof saved?.selected === 'string' ? { selected: saved.selected } : {}),
  scrollTop: typeof saved?.scrollTop === 'number' ? saved.scrollTop : 0,
};

let run: AnalysisRun | undefined;
let data: RunData | undefined;
let status: RunStatus | undefined;
let lastReport = '';
/** The layers × timesteps matrix on screen (what `rendered` reports). */
let shownByTimestep: Matrix | undefined;
/** Worst layer of the bars: the range chart shows it until the user picks one. */
let mostSensitive: string | undefined;
let colors = themeColors();
applyChartDefaults(colors);
let colormap = new Colormap(colormapTheme());

// ----- layout -----
const app = document.getElementById('app')!;
const title = h('h1', { className: 'title', text: 'Sensitivity analysis' });
const statusLine = h('div', { className: 'status-line', attrs: { role: 'status' } });
const progressBar = h('div', { className: 'progress-bar' });
const progressTrack = h('div', { className: 'progress-track' }, progressBar);
const cancelButton = h('button', { className: 'secondary', title: 'Stop the run; finished rows stay saved' }, icon('debug-stop'), 'Cancel');
const newButton = h('button', { className: 'secondary', title: 'Show the launch form for this model again' }, icon('add'), 'New analysis');
const exportButton = h('button', { className: 'secondary', title: 'Write the rows as CSV next to the record' }, icon('export'), 'Export CSV');
const searchButton = h('button', { className: 'secondary', title: 'Choose each layer\'s bits under a budget from this run' }, icon('symbol-ruler'), 'Search bit allocation…');
const banner = h('div', { className: 'banner', attrs: { role: 'alert' } });
const header = h(
  'header',
  { className: 'header' },
  h('div', { className: 'header-row' }, title, h('div', { className: 'actions' }, cancelButton, newButton, exportButton, searchButton)),
  statusLine,
  progressTrack,
  banner,
);
const formSlot = h('div', { className: 'form-slot' });

const settingSelect = h('select', { attrs: { 'aria-label': 'Setting' } });
const metricSelect = h('select', { attrs: { 'aria-label': 'Metric' } });
for (const metric of METRICS) metricSelect.append(h('option', { text: metric.label, attrs: { value: metric.key } }));
const timestepSelect = h('select', { attrs: { 'aria-label': 'Timestep for the settings heatmap and the bars' } });
const orderSelect = h('select', { attrs: { 'aria-label': 'Row order' } });
orderSelect.append(
  h('option', { text: 'model order', attrs: { value: 'model' } }),
  h('option', { text: 'most sensitive first', attrs: { value: 'sensitivity' } }),
);
const timestepControl = h('label', { className: 'control' }, 'Timestep ', timestepSelect);
const controls = h(
  'div',
  { className: 'controls' },
  h('label', { className: 'control' }, 'Setting ', settingSelect),
  h('label', { className: 'control' }, 'Metric ', metricSelect),
  timestepControl,
  h('label', { className: 'control' }, 'Rows ', orderSelect),
);

const byTimestepTitle = h('h2', { text: 'Layers × timesteps' });
const bySettingTitle = h('h2', { text: 'Layers × settings' });
const byTimestepLegend = makeLegend();
const bySettingLegend = makeLegend();
const rangeTitle = h('h2', { text: 'Activation range' });
const rangeHint = h('div', { className: 'muted hint' });

const byTimestep = new Heatmap(
  {
    label: 'sensitivity heatmap: layers by timesteps',
    xTitle: 'timestep',
    describe: (row, column) => describeCell(row, ui.setting ?? '', column),
    click: (row, column) => {
      if (ui.timestep !== 'mean') setTimestep(column);
      selectUnit(row, true);
    },
    scrolled: (top) => {
      bySetting.scrollTop = top;
      ui.scrollTop = top;
      saveStateSoon();
    },
    drawn: () => report(),
  },
  colors,
);
const bySetting = new Heatmap(
  {
    label: 'sensitivity heatmap: layers by settings',
    xTitle: 'setting',
    describe: (row, column) => {
      const setting = data?.settings[column] ?? '';
      return ui.timestep === 'mean' ? describeMean(row, setting) : describeCell(row, setting, ui.timestep);
    },
    click: (row, column) => {
      const setting = data?.settings[column];
      if (setting !== undefined) setSetting(setting);
      selectUnit(row, true);
    },
    scrolled: (top) => {
      byTimestep.scrollTop = top;
    },
  },
  colors,
);
byTimestep.canvas.classList.add('by-timestep');
bySetting.canvas.classList.add('by-setting');
const barsCanvas = h('canvas', { className: 'bars-canvas', attrs: { role: 'img', 'aria-label': 'most sensitive layers' } });
const rangeCanvas = h('canvas', { className: 'range-canvas', attrs: { role: 'img', 'aria-label': 'activation range per timestep' } });
const bars = new SensitiveBars(barsCanvas, (unit) => {
  const row = data?.units.indexOf(unit) ?? -1;
  if (row >= 0) selectUnit(row, true);
});
const rangeChart = new RangeChart(rangeCanvas, colors);

const bySettingSection = h(
  'section',
  { className: 'map by-setting-map' },
  h('div', { className: 'map-head' }, bySettingTitle, bySettingLegend.element),
  bySetting.element,
);
const runView = h(
  'div',
  { className: 'run-view' },
  controls,
  h(
    'div',
    { className: 'maps' },
    h('section', { className: 'map by-timestep-map' }, h('div', { className: 'map-head' }, byTimestepTitle, byTimestepLegend.element), byTimestep.element),
    bySettingSection,
  ),
  h(
    'div',
    { className: 'lower' },
    h('section', { className: 'chart-section' }, h('h2', { text: `Most sensitive layers (top ${BARS})` }), h('div', { className: 'chart-box bars-box' }, barsCanvas)),
    h('section', { className: 'chart-section' }, rangeTitle, rangeHint, h('div', { className: 'chart-box' }, rangeCanvas)),
  ),
);
app.append(header, formSlot, runView);
runView.hidden = true;
cancelButton.hidden = true;
newButton.hidden = true;
exportButton.hidden = true;
searchButton.hidden = true;
progressTrack.hidden = true;
statusLine.textContent = 'Loading…';

cancelButton.addEventListener('click', () => {
  cancelButton.disabled = true;
  host.post({ type: 'cancel' });
});
exportButton.addEventListener('click', () => host.post({ type: 'exportCsv' }));
searchButton.addEventListener('click', () => host.post({ type: 'searchAllocation' }));
newButton.addEventListener('click', () => host.post({ type: 'newAnalysis' }));
settingSelect.addEventListener('change', () => setSetting(settingSelect.value));
metricSelect.addEventListener('change', () => {
  if (isMetricKey(metricSelect.value)) ui.metric = metricSelect.value;
  saveState();
  refresh();
});
timestepSelect.addEventListener('change', () => setTimestep(timestepSelect.value === 'mean' ? 'mean' : Number(timestepSelect.value)));
orderSelect.addEventListener('change', () => {
  ui.order = orderSelect.value === 'sensitivity' ? 'sensitivity' : 'model';
  saveState();
  refresh();
});
const fitHeight = () => {
  const height = Math.max(240, Math.round(window.innerHeight * 0.55));
  byTimestep.setMaxHeight(height);
  bySetting.setMaxHeight(height);
};
window.addEventListener('resize', fitHeight);
fitHeight();
onThemeChange(() => {
  colors = themeColors();
  applyChartDefaults(colors);
  colormap = new Colormap(colormapTheme());
  byTimestep.recolor(colors);
  bySetting.recolor(colors);
  bars.recolor(colors);
  rangeChart.recolor(colors);
  refresh();
});

// ----- host messages -----
window.addEventListener('message', (event: MessageEvent<HostToAnalysis>) => {
  const message = event.data;
  switch (message?.type) {
    case 'form':
      showForm(message);
      break;
    case 'run':
      showRun(message.run, message.recordPath);
      break;
    case 'rows':
      if (!data) break;
      data.add(message.rows, message.ranges);
      refreshSoon();
      break;
    case 'progress':
      showProgress(message.done, message.total, message.etaMs);
      break;
    case 'status':
      showStatus(message.status, message.message);
      break;
  }
});
host.post({ type: 'ready' });

function showForm(message: Extract<HostToAnalysis, { type: 'form' }>): void {
  title.textContent = `Sensitivity analysis: ${message.fileName}`;
  if (message.modelPath) ui.modelPath = message.modelPath;
  delete ui.recordPath;
  saveState();
  statusLine.textContent = 'Choose what to measure, then start.';
  run = undefined;
  data = undefined;
  shownByTimestep = undefined;
  banner.replaceChildren();
  for (const button of [cancelButton, newButton, exportButton, searchButton]) button.hidden = true;
  progressTrack.hidden = true;
  runView.hidden = true;
  formSlot.replaceChildren(
    launchForm(message.fileName, message.form, message.timestepInputs, (form) => {
      statusLine.textContent = 'Starting…';
      host.post({ type: 'start', form });
    }),
  );
}

function showRun(next: AnalysisRun, recordPath: string | undefined): void {
  run = next;
  data = new RunData(next);
  data.add(next.rows, next.ranges);
  status = next.status;
  if (recordPath) ui.recordPath = recordPath;
  ui.modelPath = next.settings.model;
  formSlot.replaceChildren();
  title.textContent = `Sensitivity analysis: ${next.model.fileName}`;

  settingSelect.replaceChildren(...data.settings.map((s) => h('option', { text: s, attrs: { value: s } })));
  if (!ui.setting || !data.settings.includes(ui.setting)) ui.setting = data.settings[0];
  settingSelect.value = ui.setting ?? '';
  metricSelect.value = ui.metric;
  const hasTimesteps = !(data.timesteps.length === 1 && data.timesteps[0] === null);
  timestepSelect.replaceChildren(
    h('option', { text: 'mean over timesteps', attrs: { value: 'mean' } }),
    ...data.timesteps.map((t, i) => h('option', { text: `t = ${timestepLabel(t)}`, attrs: { value: String(i) } })),
  );
  if (typeof ui.timestep === 'number' && ui.timestep >= data.timesteps.length) ui.timestep = 'mean';
  timestepSelect.value = String(ui.timestep);
  timestepControl.hidden = !hasTimesteps;
  orderSelect.value = ui.order;
  runView.hidden = false;
  showStatus(next.status, next.message);
  refresh();
  byTimestep.scrollTop = ui.scrollTop;
  saveState();
}

function showProgress(done: number, total: number, etaMs: number | null): void {
  if (status !== 'running') return;
  progressTrack.hidden = false;
  progressBar.style.width = `${total > 0 ? Math.min(100, (100 * done) / total).toFixed(1) : 0}%`;
  const eta = etaMs === null ? '' : ` · about ${formatDuration(etaMs)} left`;
  statusLine.textContent = `Running: ${formatCount(done)} of ${formatCount(total)} cells${eta}`;
}

function showStatus(next: RunStatus, message: string | undefined): void {
  status = next;
  // A run that ended before its plan was made leaves the form up: let the user correct it and start again.
  const start = formSlot.querySelector<HTMLButtonElement>('button[type="submit"]');
  if (start && next !== 'running') start.disabled = false;
  const running = next === 'running';
  cancelButton.hidden = !running;
  cancelButton.disabled = false;
  exportButton.hidden = running || !run;
  searchButton.hidden = status !== 'complete' || !run;
  newButton.hidden = running || !run;
  progressTrack.hidden = !running;
  if (!running) progressBar.style.width = '0';
  const rows = data ? `${formatCount(data.rowCount)} of ${formatCount(run?.plan.total ?? 0)} cells` : '';
  switch (next) {
    case 'running':
      statusLine.textContent = rows ? `Running: ${rows}` : 'Running…';
      break;
    case 'complete':
      statusLine.textContent = `Complete: ${rows}${run ? ` · ${describeRun(run)}` : ''}`;
      break;
    case 'cancelled':
      statusLine.textContent = `Cancelled: ${rows} kept`;
      break;
    case 'failed':
      statusLine.textContent = rows ? `Stopped: ${rows} kept` : 'Failed';
      break;
  }
  banner.replaceChildren();
  banner.className = 'banner';
  if (message && next !== 'complete') {
    banner.className = `banner ${next === 'failed' ? 'error' : 'info'}`;
    banner.append(icon(next === 'failed' ? 'error' : 'info'), h('span', { text: message }));
  }
}

function describeRun(r: AnalysisRun): string {
  const t = r.settings.timestep;
  const parts = [
    `${r.plan.units.length} units`,
    `${r.plan.settings.length} settings`,
    t ? `${t.values.length} timesteps of ${t.input}` : 'no timestep input',
    `${r.settings.calibration.samples} samples`,
    r.environment.executionProvider,
  ];
  return parts.join(' · ');
}

// ----- drawing -----
let refreshTimer: ReturnType<typeof setTimeout> | undefined;

/** Rows arrive in bursts; one refresh per burst (the heatmaps themselves draw once per frame). */
function refreshSoon(): void {
  refreshTimer ??= setTimeout(refresh, 30);
}

function refresh(): void {
  clearTimeout(refreshTimer);
  refreshTimer = undefined;
  if (!data || !ui.setting) return;
  const metric = metricInfo();
  const timesteps = data.byTimestep(ui.setting, metric.key);
  shownByTimestep = timesteps;
  const settings = data.bySetting(ui.timestep, metric.key);
  // Each heatmap spans the color scale over its own values: across settings the spread is wide (W4 against W8),
  // within one setting narrow, and it is the within-setting structure over timesteps that the left map is for.
  const timestepRange = badnessRange(timesteps, metric.key);
  const settingRange = badnessRange(settings, metric.key);
  const order = ui.order === 'sensitivity' ? sensitivityOrder(timesteps, metric.key) : undefined;
  byTimestepTitle.textContent = `Layers × timesteps · ${ui.setting} · ${metric.label}`;
  bySettingTitle.textContent = `Layers × settings · ${ui.timestep === 'mean' ? 'mean over timesteps' : `t = ${timestepLabel(data.timesteps[ui.timestep] ?? null)}`}`;
  byTimestep.show(timesteps, metric.key, colormap, timestepRange, order);
  bySetting.show(settings, metric.key, colormap, settingRange, order);
  const selectedRow = ui.selected === undefined ? -1 : data.units.indexOf(ui.selected);
  byTimestep.select(selectedRow);
  bySetting.select(selectedRow);

  const ranked = data.mostSensitive(ui.setting, ui.timestep, metric.key, BARS);
  mostSensitive = ranked[0]?.unit;
  // The bars are the settings map's column for this setting, so they take its colors.
  const barColor = (value: number) => (settingRange ? colormap.color(colorPosition(badness(metric.key, value), settingRange)) : colors.series[0]!);
  bars.show(ranked, ranked.map((r) => barColor(r.value)), metric);
  byTimestepLegend.draw(timestepRange, metric);
  bySettingLegend.draw(settingRange, metric);
  showRange();
}

function showRange(): void {
  if (!data) return;
  const picked = ui.selected && ui.selected !== ALL_UNIT ? ui.selected : undefined;
  const layer = picked ?? mostSensitive;
  rangeTitle.textContent = layer ? `Activation range · ${layer}${picked ? '' : ' (most sensitive)'}` : 'Activation range';
  if (!layer) rangeHint.textContent = 'Click a cell or a bar to see that layer’s input range per timestep.';
  else if (!data.hasRanges(layer)) rangeHint.textContent = 'No activation ranges recorded for this unit (yet).';
  else rangeHint.textContent = 'Min and max of the layer’s input over the calibration samples, at full precision. Click a cell or a bar for another layer.';
  rangeChart.show(data.timesteps, layer ? data.rangesOf(layer) : []);
}

/** A color bar with the metric values at its ends (least sensitive left, most sensitive right). */
function makeLegend(): { element: HTMLElement; draw(range: { lo: number; hi: number } | undefined, metric: MetricInfo): void } {
  const canvas = h('canvas', { className: 'legend-bar', attrs: { width: '120', height: '8', 'aria-hidden': 'true' } });
  const lo = h('span', { className: 'legend-end muted' });
  const hi = h('span', { className: 'legend-end muted' });
  const element = h('div', { className: 'legend', title: 'Color scale: least to most sensitive of the layers shown' }, lo, canvas, hi);
  return {
    element,
    draw(range, metric) {
      const ctx = canvas.getContext('2d');
      if (ctx) {
        for (let x = 0; x < canvas.width; x++) {
          ctx.fillStyle = colormap.color(x / (canvas.width - 1));
          ctx.fillRect(x, 0, 1, canvas.height);
        }
      }
      element.hidden = !range;
      lo.textContent = range ? formatMetric(metric, fromBadness(metric.key, range.lo)) : '';
      hi.textContent = range ? formatMetric(metric, fromBadness(metric.key, range.hi)) : '';
    },
  };
}

/** Tells the host what the layers × timesteps heatmap holds now, when that changed (tests read it). */
function report(): void {
  const matrix = shownByTimestep;
  if (!data || !ui.setting || !matrix) return;
  const rendered: AnalysisToHost = {
    type: 'rendered',
    cells: matrix.filled,
    units: data.units.length,
    timesteps: data.timesteps.length,
    setting: ui.setting,
    metric: ui.metric,
  };
  const canvas = byTimestep.canvas;
  canvas.dataset.cells = String(matrix.filled);
  canvas.dataset.units = String(data.units.length);
  canvas.dataset.timesteps = String(data.timesteps.length);
  const key = JSON.stringify(rendered);
  if (key === lastReport) return;
  lastReport = key;
  host.post(rendered);
}

// ----- selection -----
function selectUnit(row: number, fromUser: boolean): void {
  if (!data) return;
  const unit = data.units[row];
  if (unit === undefined) return;
  ui.selected = unit;
  byTimestep.select(row);
  bySetting.select(row);
  byTimestep.reveal(row);
  showRange();
  saveState();
  // Groups and the all-at-once unit are not layers the inspector lists.
  if (fromUser && unit !== ALL_UNIT && run?.settings.unit !== 'group') host.post({ type: 'revealLayer', name: unit });
}

function setSetting(setting: string): void {
  if (!data?.settings.includes(setting)) return;
  ui.setting = setting;
  settingSelect.value = setting;
  saveState();
  refresh();
}

function setTimestep(choice: TimestepChoice): void {
  ui.timestep = choice;
  timestepSelect.value = String(choice);
  saveState();
  refresh();
}

// ----- tooltips -----
function describeCell(row: number, setting: string, t: number): string[] {
  if (!data) return [];
  const unit = data.units[row] ?? '';
  const timestep = data.timesteps[t] ?? null;
  const cell = data.row(unit, setting, timestep);
  const head = `${setting}${timestep === null ? '' : ` · t = ${timestep}`}`;
  if (!cell) return [head, 'not measured yet'];
  return [head, ...METRICS.map((m) => `${m.label}: ${formatMetric(m, cell.primary?.[m.key])}`)];
}

function describeMean(row: number, setting: string): string[] {
  if (!data) return [];
  const unit = data.units[row] ?? '';
  const values = data.timesteps.map((t) => data!.row(unit, setting, t)).filter((r) => r !== undefined);
  const head = `${setting} · mean over ${values.length} of ${data.timesteps.length} timesteps`;
  if (values.length === 0) return [head, 'not measured yet'];
  return [
    head,
    ...METRICS.map((m) => {
      const mean = values.reduce((sum, r) => sum + (r.primary?.[m.key] ?? NaN), 0) / values.length;
      return `${m.label}: ${formatMetric(m, mean)}`;
    }),
  ];
}

// ----- helpers -----
function metricInfo(): MetricInfo {
  return METRICS.find((m) => m.key === ui.metric) ?? METRICS[0]!;
}

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function saveState(): void {
  host.setState({ ...ui });
}

let saveTimer: ReturnType<typeof setTimeout> | undefined;
function saveStateSoon(): void {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveState, 200);
}
