// App half of the inspector: shows what the host streams (protocol/inspector.ts) and reports back what it rendered.
import type { HostToInspector, InspectorToHost } from '../../extension/protocol/inspector';
import type { LayerRecord, ModelSummary } from '../../extension/protocol/records';
import { h, icon } from '../shared/dom';
import { themeColors, onThemeChange } from '../shared/theme';
import { connectToHost } from '../shared/vscodeApi';
import { DetailPane } from './detail';
import { renderSummary } from './summary';
import { LayerTable, ROW_HEIGHT } from './table';
import { nextSort, viewLayers, columnByKey, shownColumns, type SortSpec } from './tableModel';

/** What survives the webview being hidden and reloaded (vscode.setState). */
interface SavedState {
  sort: SortSpec | null;
  filter: string;
  selected: string | null;
  scrollTop: number;
  logScale: boolean;
  /** The user closed the detail pane (it shows only while a layer is selected anyway). */
  detailHidden: boolean;
}

const FIRST_NAMES_REPORTED = 20;

const host = connectToHost<InspectorToHost, SavedState>();
const saved = host.getState();
const ui: SavedState = {
  sort: saved?.sort && columnByKey(saved.sort.key) ? saved.sort : null,
  filter: typeof saved?.filter === 'string' ? saved.filter : '',
  selected: typeof saved?.selected === 'string' ? saved.selected : null,
  scrollTop: typeof saved?.scrollTop === 'number' ? saved.scrollTop : 0,
  logScale: saved?.logScale === true,
  detailHidden: saved?.detailHidden === true,
};
/** Scroll position to restore once enough rows have arrived to scroll that far. */
let pendingScrollTop: number | undefined = ui.scrollTop > 0 ? ui.scrollTop : undefined;

let fileName = '';
let summary: ModelSummary | undefined;
let layers: LayerRecord[] = [];
/** First layer of each name: names are how host, tree and webview refer to layers. */
let layerByName = new Map<string, LayerRecord>();
let view: LayerRecord[] = [];
let finished = false;
/**
 * The host re-inspects the file because it changed on disk. A webview that (re)loads starts with nothing shown, so a
 * 'loading' that arrives after this page has shown a model can only mean that.
 */
let reloading = false;
let lastReport = '';

// ----- layout -----
const app = document.getElementById('app')!;
const status = h('div', { className: 'status', attrs: { role: 'status' } });
const summarySlot = h('div', { className: 'summary-slot' });
const filterInput = h('input', {
  className: 'filter',
  attrs: { type: 'search', placeholder: 'Filter by name, op or group', 'aria-label': 'Filter layers', spellcheck: 'false' },
});
filterInput.value = ui.filter;
const countLabel = h('span', { className: 'count muted' });
const reloadNote = h('span', { className: 'reload-note muted', attrs: { role: 'status' } });
const table = new LayerTable({
  select: (name) => select(name, true),
  sort: (key) => {
    ui.sort = nextSort(ui.sort, key);
    table.setSort(ui.sort);
    refresh();
    saveState();
  },
  scrolled: () => saveStateSoon(),
});
table.setSort(ui.sort);
table.setSelected(ui.selected, false);
const detail = new DetailPane(themeColors(), ui.logScale, (on) => {
  ui.logScale = on;
  saveState();
});
const detailToggle = h('button', { className: 'icon-button detail-toggle' });
detailToggle.addEventListener('click', () => {
  ui.detailHidden = !ui.detailHidden;
  refresh();
  saveState();
});
const main = h(
  'div',
  { className: 'main' },
  h(
    'section',
    { className: 'table-pane' },
    h('div', { className: 'toolbar' }, h('div', { className: 'filter-box' }, icon('filter'), filterInput), countLabel, reloadNote, detailToggle),
    table.frame,
  ),
  detail.element,
);
app.append(status, summarySlot, main);
main.hidden = true;

filterInput.addEventListener('input', () => {
  ui.filter = filterInput.value;
  refresh();
  saveState();
});
filterInput.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowDown') {
    e.preventDefault();
    table.element.focus();
  }
});
onThemeChange(() => detail.recolor(themeColors()));

// ----- host messages -----
window.addEventListener('message', (event: MessageEvent<HostToInspector>) => {
  const message = event.data;
  switch (message?.type) {
    case 'loading':
      reloading = summary !== undefined || finished;
      // Come back to the same rows once the new inspection has streamed that far.
      if (reloading && table.scrollTop > 0) pendingScrollTop ??= table.scrollTop;
      fileName = message.fileName;
      // Report the next render even if it looks like the last one: the host has forgotten what it saw.
      lastReport = '';
      summary = undefined;
      layers = [];
      layerByName = new Map();
      finished = false;
      summarySlot.replaceChildren();
      showLoading(undefined);
      refreshSoon();
      break;
    case 'progress':
      if (!finished) showLoading(message);
      break;
    case 'summary':
      summary = message.summary;
      summarySlot.replaceChildren(renderSummary(summary));
      main.hidden = false;
      refreshSoon();
      break;
    case 'layers':
      for (const layer of message.layers) {
        layers.push(layer);
        if (!layerByName.has(layer.name)) layerByName.set(layer.name, layer);
      }
      refreshSoon();
      break;
    case 'done':
      finished = true;
      if (reloading) {
        reloading = false;
        reloadNote.replaceChildren(icon('history'), h('span', { text: `updated from disk at ${new Date().toLocaleTimeString()}` }));
      }
      status.replaceChildren();
      status.className = 'status';
      main.hidden = false;
      refresh();
      countLabel.title = `inspected in ${(message.elapsedMs / 1000).toFixed(2)} s`;
      break;
    case 'error':
      finished = true;
      reloading = false;
      showError(message.message);
      refresh();
      break;
    case 'select':
      if (typeof message.name === 'string') select(message.name, false);
      break;
  }
});
host.post({ type: 'ready' });

// ----- rendering -----
function showLoading(progress: { done: number; total: number } | undefined): void {
  const bar = h('div', { className: 'progress-bar' });
  if (progress && progress.total > 0) bar.style.width = `${Math.min(100, (100 * progress.done) / progress.total).toFixed(1)}%`;
  else bar.classList.add('indeterminate');
  status.className = 'status loading';
  status.replaceChildren(
    h('div', { className: 'progress-track' }, bar),
    h(
      'div',
      { className: 'status-text' },
      icon('loading', 'codicon-modifier-spin'),
      h('span', { text: loadingText(progress) }),
    ),
  );
}

function loadingText(progress: { done: number; total: number } | undefined): string {
  if (reloading) {
    const done = progress ? `: ${progress.done} of ${progress.total} layers` : '…';
    return `${fileName} changed on disk; inspecting it again${done}`;
  }
  return progress ? `Inspecting ${fileName}: ${progress.done} of ${progress.total} layers` : `Loading ${fileName}…`;
}

function showError(message: string): void {
  // With partial results the table stays and the error is a banner above it; otherwise it fills the editor.
  const partial = summary !== undefined;
  status.className = partial ? 'status error-banner' : 'status error-page';
  status.replaceChildren(
    h('div', { className: 'error-message' }, icon('error'), h('span', { className: 'error-text', text: message })),
  );
  main.hidden = !partial;
  host.post({ type: 'shownError', message });
}

let refreshTimer: ReturnType<typeof setTimeout> | undefined;

/** Coalesces bursts of streamed batches into one table update (a timer, not rAF: it must run in background tabs too). */
function refreshSoon(): void {
  refreshTimer ??= setTimeout(refresh, 30);
}

function refresh(): void {
  clearTimeout(refreshTimer);
  refreshTimer = undefined;
  view = viewLayers(layers, ui.filter, ui.sort);
  const emptyText = layers.length === 0
    ? finished ? 'This model has no quantizable layers.' : 'Waiting for layers…'
    : 'No layer matches the filter.';
  table.setColumns(shownColumns(layers));
  table.setRows(view, emptyText);
  countLabel.textContent = view.length === layers.length ? `${layers.length} layers` : `${view.length} of ${layers.length} layers`;
  if (pendingScrollTop !== undefined && (finished || view.length * ROW_HEIGHT >= pendingScrollTop + table.element.clientHeight)) {
    table.scrollTop = pendingScrollTop;
    pendingScrollTop = undefined;
  }
  showDetail(ui.selected === null ? undefined : layerByName.get(ui.selected));
  report();
}

/** The detail pane takes room from the table only while there is a layer to show and the user wants it. */
function showDetail(layer: LayerRecord | undefined): void {
  detail.element.hidden = !layer || ui.detailHidden;
  detailToggle.disabled = !layer;
  detailToggle.setAttribute('aria-pressed', String(!ui.detailHidden));
  const title = !layer
    ? 'Select a layer to see its histogram and quantization error'
    : ui.detailHidden ? 'Show the selected layer\'s details' : 'Hide the layer details (more room for the table)';
  detailToggle.title = title;
  detailToggle.setAttribute('aria-label', title);
  detailToggle.replaceChildren(icon(ui.detailHidden ? 'layout-sidebar-right-off' : 'layout-sidebar-right'));
  detail.show(layer);
}

/** Tells the host what the table shows now, when that changed (tests read it through the extension's API). */
function report(): void {
  const rendered: InspectorToHost = {
    type: 'rendered',
    rowCount: view.length,
    totalRows: layers.length,
    selected: ui.selected,
    firstNames: view.slice(0, FIRST_NAMES_REPORTED).map((l) => l.name),
  };
  const key = JSON.stringify(rendered);
  if (key === lastReport) return;
  lastReport = key;
  host.post(rendered);
}

/** Selects a layer by name. From the host (tree view) a filter that hides it is cleared, so it can be shown. */
function select(name: string, fromUser: boolean): void {
  ui.selected = name;
  table.setSelected(name, false);
  if (!fromUser && ui.filter && layerByName.has(name) && !view.some((l) => l.name === name)) {
    ui.filter = '';
    filterInput.value = '';
  }
  refresh();
  table.reveal(name);
  saveState();
  if (fromUser) host.post({ type: 'selected', name });
}

// ----- state -----
function saveState(): void {
  ui.scrollTop = pendingScrollTop ?? table.scrollTop;
  host.setState({ ...ui });
}

let saveTimer: ReturnType<typeof setTimeout> | undefined;
function saveStateSoon(): void {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveState, 200);
}
