// `npm run test:integration`: runs the integration suite inside a real VS Code (code-server 4.96.4) driven by headless
// Chromium, checks the inspector webview's DOM from the browser side, takes the e2e screenshot, and prints one line
// per test and `N passed, N failed`. Exit code 1 on any failure or timeout.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, ConsoleMessage, Frame, Page } from 'playwright-core';
import { checkAnalysisForm, checkAnalysisPanel } from './analysisBrowser';
import { checkSearchPanel } from './searchBrowser';
import {
  findLogs,
  findWebviewFrameWithRow,
  launchChromium,
  startCodeServer,
  tailOf,
  workbenchUrl,
  type CodeServer,
} from './codeServer';
import {
  EXCHANGE,
  exchangePath,
  LARGE_CHECKPOINT,
  largeCheckpointTensors,
  writeFileAtomic,
  writeWorkspace,
  type AnalysisFormRequest,
  type SearchPanelRequest,
  type AnalysisPanelRequest,
  type LargeTableRequest,
  type ScreenshotRequest,
  type SuiteResults,
  type TestResult,
} from './fixtures';
import { indent, printResults, summaryLine } from './report';

const REPO = path.resolve(__dirname, '..', '..', '..');
const OUTPUT = path.join(REPO, '.test-output');
const SCREENSHOTS = path.join(OUTPUT, 'screenshots');
const LOGS = path.join(OUTPUT, 'integration');
const SAMPLE = path.join(REPO, 'resources', 'sample', 'dit-sample.onnx');
const SUITE = path.join(REPO, 'out', 'test', 'integration', 'suite', 'index.js');
const TIMEOUT_MS = Number(process.env.QUANTLENS_IT_TIMEOUT_S || 420) * 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface BrowserLog {
  text: string;
  url: string;
  type: string;
}

async function main(): Promise<number> {
  for (const needed of [path.join(REPO, 'dist', 'extension.js'), SAMPLE, SUITE]) {
    if (!fs.existsSync(needed)) throw new Error(`${path.relative(REPO, needed)} is missing: build first (npm run test:integration does)`);
  }
  fs.rmSync(LOGS, { recursive: true, force: true });
  fs.mkdirSync(LOGS, { recursive: true });
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  for (const old of ['inspector.png', 'inspector-webview.png', 'inspector-5000.png', 'inspector-5000-wide.png', 'analysis.png', 'analysis-heatmap.png', 'failure.png']) {
    fs.rmSync(path.join(SCREENSHOTS, old), { force: true });
  }

  const workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-it-workspace-'));
  writeWorkspace(workspace, SAMPLE, { screenshot: true });
  const browserLogs: BrowserLog[] = [];
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  const harnessResults: TestResult[] = [];
  let suiteResults: SuiteResults | undefined;
  let timedOut = false;
  const started = Date.now();

  // Ctrl+C or a CI kill still stops the server and the browser (the finally below runs via the rejection).
  let interrupt: (reason: Error) => void = () => undefined;
  const interrupted = new Promise<never>((_, reject) => (interrupt = reject));
  const onSignal = (signal: NodeJS.Signals) => interrupt(new Error(`interrupted by ${signal}`));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let stopping = false;
  const run = (async () => {
    server = await startCodeServer({ workspace });
    console.log(`code-server ${server.port} up in ${((Date.now() - started) / 1000).toFixed(1)} s (pid ${server.pid})`);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on('console', (msg: ConsoleMessage) =>
      browserLogs.push({ text: msg.text(), url: msg.location().url, type: msg.type() }),
    );
    page.on('pageerror', (err) => browserLogs.push({ text: err.message, url: '', type: 'pageerror' }));
    const url = workbenchUrl(server.port, workspace, { extensionDevelopmentPath: REPO, extensionTestsPath: SUITE });
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    let serverGone = false;
    void server.exited.then(() => (serverGone = true));

    const deadline = started + TIMEOUT_MS;
    // Browser-side checks the suite asks for by writing a request file while it holds an inspector open.
    const browserChecks = [
      {
        request: EXCHANGE.readyForScreenshot,
        done: EXCHANGE.screenshotDone,
        missing: 'e2e (browser): the inspector webview shows the layer table',
        run: (p: Page, request: unknown) => checkAndScreenshot(p, request as ScreenshotRequest),
        handled: false,
      },
      {
        request: EXCHANGE.readyForLargeTable,
        done: EXCHANGE.largeTableDone,
        missing: 'e2e (browser): the 5,000-layer table',
        run: (p: Page, request: unknown) => checkLargeTable(p, request as LargeTableRequest),
        handled: false,
      },
      {
        request: EXCHANGE.readyForAnalysis,
        done: EXCHANGE.analysisDone,
        missing: 'e2e (browser): the sensitivity panel',
        run: (p: Page, request: unknown) => checkAnalysisPanel(p, request as AnalysisPanelRequest, SCREENSHOTS, REPO),
        handled: false,
      },
      {
        request: EXCHANGE.readyForAnalysisForm,
        done: EXCHANGE.analysisFormDone,
        missing: 'e2e (browser): the sensitivity launch form',
        run: (p: Page, request: unknown) => checkAnalysisForm(p, request as AnalysisFormRequest),
        handled: false,
      },
      {
        request: EXCHANGE.readyForSearch,
        done: EXCHANGE.searchDone,
        missing: 'e2e (browser): the search panel',
        run: (p: Page, request: unknown) => checkSearchPanel(p, request as SearchPanelRequest, SCREENSHOTS, REPO),
        handled: false,
      },
    ];
    while (!suiteResults && !stopping) {
      if (serverGone) throw new Error('code-server exited while the suite ran');
      if (Date.now() > deadline) {
        timedOut = true;
        break;
      }
      for (const check of browserChecks) {
        const request = exchangePath(workspace, check.request);
        if (check.handled || !fs.existsSync(request)) continue;
        check.handled = true;
        harnessResults.push(...(await check.run(page, JSON.parse(fs.readFileSync(request, 'utf8')))));
        writeFileAtomic(exchangePath(workspace, check.done), 'done');
      }
      const resultsFile = exchangePath(workspace, EXCHANGE.results);
      if (fs.existsSync(resultsFile)) suiteResults = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as SuiteResults;
      else await sleep(200);
    }
    for (const check of browserChecks.filter((c) => !c.handled)) {
      harnessResults.push({
        title: check.missing,
        state: 'failed',
        error: 'the suite never held the inspector open for the browser-side check',
      });
    }
    harnessResults.push(webviewConsoleCheck(browserLogs));
  })();
  // After an interruption the loop above may still be winding down: its late errors are of no interest.
  run.catch(() => undefined);
  try {
    await Promise.race([interrupted, run]);
  } catch (err) {
    harnessResults.push({ title: 'harness', state: 'failed', error: (err as Error).stack ?? String(err) });
  } finally {
    stopping = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const failedSoFar = timedOut || !suiteResults || [...harnessResults, ...suiteResults.tests].some((t) => t.state === 'failed');
    if (failedSoFar && page) await page.screenshot({ path: path.join(SCREENSHOTS, 'failure.png') }).catch(() => undefined);
    await browser?.close().catch(() => undefined);
    if (server) {
      await server.stop();
      saveLogs(server);
    }
    fs.writeFileSync(
      path.join(LOGS, 'browser-console.log'),
      browserLogs.map((l) => `[${l.type}] ${l.text}${l.url ? `  (${l.url})` : ''}`).join('\n'),
    );
    fs.rmSync(workspace, { recursive: true, force: true });
    if (server) fs.rmSync(server.stateDir, { recursive: true, force: true });
  }

  const tests: TestResult[] = [...(suiteResults?.tests ?? []), ...harnessResults];
  if (timedOut) {
    tests.push({ title: 'harness', state: 'failed', error: `the suite did not finish within ${TIMEOUT_MS / 1000} s` });
  } else if (suiteResults && suiteResults.tests.length === 0) {
    tests.push({ title: 'harness', state: 'failed', error: 'the suite ran no tests' });
  }
  console.log(`VS Code ${suiteResults?.vscodeVersion ?? '?'} (code-server), ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const { passed, failed } = printResults(tests);
  if (failed > 0) {
    const errors = browserLogs.filter((l) => l.type === 'error' || l.type === 'pageerror');
    console.log(`\nbrowser console errors (${errors.length}; all messages in ${path.relative(REPO, LOGS)}/browser-console.log):`);
    for (const e of errors.slice(-30)) console.log(indent(`${e.text}${e.url ? `  (${e.url})` : ''}`));
    console.log(`\ncode-server and extension host logs: ${path.relative(REPO, LOGS)}/`);
    console.log(indent(tailOf(path.join(LOGS, 'code-server.log'), 3000)));
    for (const log of findLogs(path.join(LOGS, 'vscode-logs')).filter((f) => f.endsWith('remoteexthost.log'))) {
      console.log(indent(tailOf(log, 3000)));
    }
  }
  console.log(summaryLine({ passed, failed }));
  return failed > 0 ? 1 : 0;
}

/** The browser side of the e2e check: the webview's own DOM shows the layer, then the screenshots. */
async function checkAndScreenshot(page: Page, request: ScreenshotRequest): Promise<TestResult[]> {
  const results: TestResult[] = [];
  const domTitle = `e2e (browser): the inspector webview's table shows a row for ${request.layer}`;
  const started = Date.now();
  const { frame, rows } = (await findWebviewFrameWithRow(page, request.layer, 30_000)) ?? {};
  if (frame) {
    results.push({ title: `${domTitle} (${rows} rows in the DOM)`, state: 'passed', durationMs: Date.now() - started });
  } else {
    results.push({ title: domTitle, state: 'failed', error: `no webview frame has a table row containing ${request.layer}` });
  }

  if (frame) results.push(await clickThroughLayersTree(page, frame, path.basename(path.dirname(request.file))));
  if (frame) {
    const readable = 'e2e (browser): every header and value of the sample\'s table can be scrolled to and read in full';
    const layout = await frame.evaluate(columnLayout, true).catch((err: Error) => err);
    const problems = layout instanceof Error ? [layout.message] : layoutProblems(layout);
    results.push(problems.length ? { title: readable, state: 'failed', error: problems.join('; ') } : { title: readable, state: 'passed' });
  }
  // Give the selected layer's charts time to draw (chart.js animates); this only affects the picture.
  await sleep(1500);
  const fullShot = path.join(SCREENSHOTS, 'inspector.png');
  const shotTitle = `e2e (browser): screenshot saved to ${path.relative(REPO, fullShot)}`;
  try {
    await page.screenshot({ path: fullShot });
    const element = await frame?.frameElement();
    if (element) await element.screenshot({ path: path.join(SCREENSHOTS, 'inspector-webview.png') });
    results.push({ title: shotTitle, state: 'passed' });
  } catch (err) {
    results.push({ title: shotTitle, state: 'failed', error: (err as Error).message });
  }
  return results;
}

/** Virtualisation keeps the DOM to the rows in view plus a margin, whatever the table's length. */
const MAX_ROWS_IN_DOM = 200;

interface TableState {
  /** Names of the rows in the DOM, in table order. */
  rows: string[];
  /** Table position (1-based) of the first row in the DOM. */
  firstIndex: number;
  count: string;
  scrollHeight: number;
  detail: string;
  detailVisible: boolean;
}

// Runs inside the inspector webview.
function tableState(): TableState {
  const table = document.querySelector<HTMLElement>('.table');
  const rows = Array.from(document.querySelectorAll<HTMLElement>('.tbody .row'))
    .map((row) => ({ index: Number(row.getAttribute('aria-rowindex')), name: row.children[0]?.textContent ?? '' }))
    .sort((a, b) => a.index - b.index);
  return {
    rows: rows.map((r) => r.name),
    firstIndex: rows[0]?.index ?? 0,
    count: document.querySelector('.count')?.textContent ?? '',
    scrollHeight: table?.scrollHeight ?? 0,
    detail: document.querySelector('.detail-name')?.textContent ?? '',
    detailVisible: document.querySelector('.detail:not([hidden])') !== null,
  };
}

interface ColumnLayout {
  /** Headers that no sideways scroll position shows whole and clear of the pinned name column. */
  unreachable: string[];
  /** Headers and numbers in the DOM cut off with an ellipsis. */
  truncated: string[];
  /** Largest distance of the pinned name header from the table's left edge over all scroll positions. */
  pinnedDrift: number;
  scrollWidth: number;
  clientWidth: number;
}

// Runs inside the inspector webview: scrolls the table sideways through every position, ending at the far right
// unless `backToLeft`.
function columnLayout(backToLeft: boolean): ColumnLayout {
  const table = document.querySelector<HTMLElement>('.table')!;
  const pinned = table.querySelector<HTMLElement>('.th.pinned')!;
  const headers = Array.from(table.querySelectorAll<HTMLElement>('.th:not(.pinned)'));
  const seen = new Set<string>();
  let pinnedDrift = 0;
  const maxScroll = table.scrollWidth - table.clientWidth;
  for (let x = 0; ; x = Math.min(maxScroll, x + 10)) {
    table.scrollLeft = x;
    const box = table.getBoundingClientRect();
    const pinnedBox = pinned.getBoundingClientRect();
    pinnedDrift = Math.max(pinnedDrift, Math.abs(pinnedBox.left - box.left));
    for (const header of headers) {
      const r = header.getBoundingClientRect();
      if (r.left >= pinnedBox.right - 0.5 && r.right <= box.left + table.clientWidth + 0.5) seen.add(header.dataset.key ?? '');
    }
    if (x >= maxScroll) break;
  }
  // Text wider than its box, by any fraction of a pixel, is drawn with an ellipsis.
  const clipped = (el: HTMLElement) => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const style = getComputedStyle(el);
    const box = el.getBoundingClientRect().width - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return range.getBoundingClientRect().width > box + 0.01;
  };
  const truncated = [
    ...Array.from(table.querySelectorAll<HTMLElement>('.th-label')).filter(clipped).map((el) => `header ${el.textContent}`),
    ...Array.from(table.querySelectorAll<HTMLElement>('.row .td:not(.pinned)')).filter(clipped).map((el) => `cell ${el.textContent}`),
  ];
  if (backToLeft) table.scrollLeft = 0;
  return {
    unreachable: headers.map((h) => h.dataset.key ?? '').filter((key) => !seen.has(key)),
    truncated,
    pinnedDrift,
    scrollWidth: table.scrollWidth,
    clientWidth: table.clientWidth,
  };
}

function layoutProblems(layout: ColumnLayout): string[] {
  return [
    ...(layout.unreachable.length ? [`columns never fully in view: ${layout.unreachable.join(', ')}`] : []),
    ...(layout.truncated.length ? [`cut off: ${layout.truncated.slice(0, 10).join(', ')}`] : []),
    ...(layout.pinnedDrift > 1 ? [`the name column moved ${layout.pinnedDrift} px while the table scrolled sideways`] : []),
  ];
}

/** Names compared chunk by chunk, digit runs as numbers: `blocks.2` before `blocks.10`. */
function naturalCompare(a: string, b: string): number {
  const chunks = (s: string) => s.toLowerCase().match(/\d+|\D+/g) ?? [];
  const ca = chunks(a);
  const cb = chunks(b);
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i]!;
    const y = cb[i]!;
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return ca.length - cb.length;
}

/**
 * The browser side of the 5,000-layer check, with real input: the webview's DOM holds only the rows in view, the
 * wheel scrolls to the last layer, typing filters, header clicks sort, a click selects, every column can be reached
 * and read at 1440×900 with the detail pane open, and all fit once it is closed. Leaves the table filtered to
 * LARGE_CHECKPOINT.filter and sorted by params, with the first row of the name sort selected, for the suite to check.
 */
async function checkLargeTable(page: Page, request: LargeTableRequest): Promise<TestResult[]> {
  const results: TestResult[] = [];
  const fileName = path.basename(request.file);
  const tensors = largeCheckpointTensors();
  const names = tensors.map((t) => t.name);
  const params = new Map(tensors.map((t) => [t.name, t.shape.reduce((a, b) => a * b, 1)]));
  const step = async (title: string, body: () => Promise<string | void>): Promise<boolean> => {
    const started = Date.now();
    try {
      const detail = await body();
      results.push({ title: `e2e (browser, ${fileName}): ${title}${detail ? ` (${detail})` : ''}`, state: 'passed', durationMs: Date.now() - started });
      return true;
    } catch (err) {
      results.push({ title: `e2e (browser, ${fileName}): ${title}`, state: 'failed', durationMs: Date.now() - started, error: (err as Error).message });
      return false;
    }
  };

  let frame: Frame | undefined;
  const found = await step('the inspector webview shows the checkpoint', async () => {
    frame = await findInspectorFrame(page, fileName, 60_000);
    if (!frame) throw new Error(`no webview frame shows ${fileName} with table rows`);
  });
  if (!found || !frame) return results;
  const inspector = frame;
  const waitForTable = async (what: string, accept: (state: TableState) => boolean, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    let state: TableState | undefined;
    while (Date.now() < deadline) {
      state = await inspector.evaluate(tableState).catch(() => undefined);
      if (state && accept(state)) return state;
      await sleep(100);
    }
    const shown = state ? { ...state, rows: `${state.rows.length}: ${state.rows.slice(0, 12).join(', ')}` } : 'nothing';
    throw new Error(`timed out waiting for ${what}; the table shows ${JSON.stringify(shown)}`);
  };
  const table = inspector.locator('.table');
  const filter = inspector.locator('input.filter');

  await step(`virtualised: all ${LARGE_CHECKPOINT.layers} layers in the table, at most ${MAX_ROWS_IN_DOM} rows in the DOM`, async () => {
    const state = await waitForTable(`"${LARGE_CHECKPOINT.layers} layers"`, (s) => s.count === `${LARGE_CHECKPOINT.layers} layers` && s.rows.length > 0);
    if (state.rows.length > MAX_ROWS_IN_DOM) throw new Error(`${state.rows.length} rows in the DOM`);
    // Rows are at least 16 px high, so a body sized for every row is at least this tall.
    if (state.scrollHeight < LARGE_CHECKPOINT.layers * 16) throw new Error(`the table scrolls only ${state.scrollHeight} px`);
    if (state.rows[0] !== names[0]) throw new Error(`the first row is ${state.rows[0]}, the file's first layer is ${names[0]}`);
    return `${state.rows.length} rows in the DOM, ${state.scrollHeight} px to scroll`;
  });

  const last = names[names.length - 1]!;
  await step(`the mouse wheel scrolls to the last layer, ${last}`, async () => {
    await table.hover();
    const { scrollHeight } = await inspector.evaluate(tableState);
    await page.mouse.wheel(0, scrollHeight);
    const state = await waitForTable(`a row for ${last}`, (s) => s.rows.includes(last));
    if (state.rows.length > MAX_ROWS_IN_DOM) throw new Error(`${state.rows.length} rows in the DOM at the bottom`);
    if (state.rows.includes(names[0]!)) throw new Error('the first layer is still in the DOM at the bottom');
    return `rows ${state.firstIndex}–${state.firstIndex + state.rows.length - 1} in the DOM`;
  });

  const filtered = names.filter((n) => n.includes(LARGE_CHECKPOINT.filter));
  await step(`typing "${LARGE_CHECKPOINT.filter}" in the filter leaves its ${filtered.length} layers`, async () => {
    await filter.click();
    await filter.pressSequentially(LARGE_CHECKPOINT.filter);
    const state = await waitForTable(`${filtered.length} rows`, (s) => s.rows.length === filtered.length);
    if ([...state.rows].sort().join() !== [...filtered].sort().join()) throw new Error(`rows: ${state.rows.join(', ')}`);
    const count = `${filtered.length} of ${LARGE_CHECKPOINT.layers} layers`;
    if (state.count !== count) throw new Error(`the count reads "${state.count}", not "${count}"`);
  });

  // Stable sorts: ties keep file order.
  const byParams = [...names].sort((a, b) => params.get(a)! - params.get(b)! || names.indexOf(a) - names.indexOf(b));
  const byName = [...names].sort(naturalCompare);
  await step('clicking the Params header sorts by parameter count', async () => {
    await filter.fill('');
    await table.evaluate((el) => (el.scrollTop = 0));
    if (byParams[0] === names[0]) throw new Error('the fixture must not start with its smallest layer');
    await inspector.locator('.th[data-key="params"]').click();
    await waitForTable(`${byParams[0]} first`, (s) => s.firstIndex === 1 && s.rows[0] === byParams[0]);
    return `${byParams[0]} first`;
  });
  const nameHead = byName.slice(0, 11);
  await step('clicking the Name header sorts by name, numbers in names in numeric order', async () => {
    await inspector.locator('.th[data-key="name"]').click();
    await waitForTable(`rows ${nameHead.join(', ')}`, (s) => s.firstIndex === 1 && s.rows.slice(0, nameHead.length).join() === nameHead.join());
    return `… ${nameHead[nameHead.length - 1]}`;
  });

  const clicked = nameHead[0]!;
  await step(`clicking the row of ${clicked} selects it and shows its details`, async () => {
    await inspector.locator('.tbody .row[aria-rowindex="1"]').click();
    await waitForTable(`the details of ${clicked}`, (s) => s.detailVisible && s.detail === clicked);
  });

  await step('at 1440×900 with the detail pane open every column can be scrolled to and read, the name column stays', async () => {
    const layout = await inspector.evaluate(columnLayout, false);
    const problems = layoutProblems(layout);
    if (problems.length) throw new Error(problems.join('; '));
    // Picture: scrolled to the right, the pinned names beside the SQNR columns.
    await sleep(500);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'inspector-5000.png') });
    return `table ${layout.clientWidth} of ${layout.scrollWidth} px wide`;
  });

  await step('with the detail pane closed every column fits without scrolling', async () => {
    await inspector.locator('.detail-toggle').click();
    await waitForTable('the detail pane to close', (s) => !s.detailVisible);
    const layout = await inspector.evaluate(columnLayout, false);
    if (layout.scrollWidth > layout.clientWidth) throw new Error(`the table is ${layout.scrollWidth} px wide in ${layout.clientWidth} px`);
    const problems = layoutProblems(layout);
    if (problems.length) throw new Error(problems.join('; '));
    await page.screenshot({ path: path.join(SCREENSHOTS, 'inspector-5000-wide.png') });
    await inspector.locator('.detail-toggle').click();
    await waitForTable('the detail pane to open again', (s) => s.detailVisible && s.detail === clicked);
    return `${layout.scrollWidth} px in ${layout.clientWidth} px`;
  });

  // The state the suite checks through the extension's API.
  await step(`left filtered to "${LARGE_CHECKPOINT.filter}" and sorted by params`, async () => {
    await inspector.locator('.th[data-key="params"]').click();
    await filter.fill(LARGE_CHECKPOINT.filter);
    const expected = byParams.filter((n) => n.includes(LARGE_CHECKPOINT.filter));
    await waitForTable(expected.join(', '), (s) => s.rows.join() === expected.join());
  });
  return results;
}

/** The inspector webview frame whose summary names `fileName` and whose table has rows. */
async function findInspectorFrame(page: Page, fileName: string, timeoutMs: number): Promise<Frame | undefined> {
  const deadline = Date.now() + timeoutMs;
  do {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      const shows = await frame
        .evaluate(
          (name) => document.querySelector('.summary-title h1')?.textContent === name && document.querySelector('.tbody .row') !== null,
          fileName,
        )
        .catch(() => false);
      if (shows) return frame;
    }
    await sleep(250);
  } while (Date.now() < deadline);
  return undefined;
}

/** A layer of the sample and its group path in the Layers tree (LayerInfo.group). */
const TREE_CLICK = { groups: ['block 1', 'attn'], layer: 'blocks.1.attn.qkv' };

/**
 * Real clicks in the workbench: expand the Layers tree down to a layer and click it; the inspector webview must then
 * show that row selected and the layer's details.
 */
async function clickThroughLayersTree(page: Page, inspector: Frame, workspaceName: string): Promise<TestResult> {
  const title = `e2e (browser): clicking ${TREE_CLICK.layer} in the Layers tree selects it in the inspector`;
  const started = Date.now();
  const layersView = page.locator('.pane').filter({ has: page.locator('.pane-header', { hasText: /QuantLens Layers/i }) });
  const treeRows = layersView.locator('.monaco-list-row');
  const treeRow = (label: string) =>
    treeRows.filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(label)}$`) }) });
  try {
    // The workspace's file tree takes the sidebar's room; fold it so the Layers view has space.
    const filesHeader = page.locator('.pane-header[aria-expanded="true"]', { hasText: workspaceName });
    if ((await filesHeader.count()) > 0) await filesHeader.first().click();
    // Group labels repeat (every block has an "attn"): each step looks only inside the group found before it, and
    // waits for that group's rows to appear after the click that expanded it.
    let parent: TreeRowInfo | undefined;
    for (const group of TREE_CLICK.groups) {
      const deadline = Date.now() + 15_000;
      let found: TreeRowInfo | undefined;
      while (!found && Date.now() < deadline) {
        const rows = (await treeRows.evaluateAll(treeRowInfo)).sort((a, b) => a.index - b.index);
        const inside = parent ? subtree(rows, parent) : rows;
        found = inside.find((r) => r.label === group && (!parent || r.level === parent.level + 1));
        if (!found) await sleep(100);
      }
      if (!found) throw new Error(`no tree row ${group}${parent ? ` under ${parent.label}` : ''}`);
      if (!found.expanded) await layersView.locator(`.monaco-list-row[data-index="${found.index}"]`).click();
      parent = found;
    }
    const leaf = treeRow(TREE_CLICK.layer);
    await leaf.waitFor({ timeout: 15_000 });
    await leaf.click();
    const deadline = Date.now() + 15_000;
    let shown: { selectedRow: string; heading: string } | undefined;
    while (Date.now() < deadline) {
      shown = await inspector.evaluate(selectedInTable).catch(() => undefined);
      if (shown?.selectedRow.includes(TREE_CLICK.layer) && shown.heading === TREE_CLICK.layer) {
        return { title, state: 'passed', durationMs: Date.now() - started };
      }
      await sleep(200);
    }
    return { title, state: 'failed', error: `the inspector shows ${JSON.stringify(shown)}` };
  } catch (err) {
    const rows = await treeRows.allTextContents().catch(() => []);
    return { title, state: 'failed', error: `${(err as Error).message}\ntree rows: ${rows.join(' | ')}` };
  }
}

interface TreeRowInfo {
  index: number;
  level: number;
  label: string;
  expanded: boolean;
}

/** The rows below `parent` in a depth-first list sorted by index, up to the next row at its level or above. */
function subtree(rows: readonly TreeRowInfo[], parent: TreeRowInfo): TreeRowInfo[] {
  const below = rows.filter((r) => r.index > parent.index);
  const end = below.findIndex((r) => r.level <= parent.level);
  return end < 0 ? below : below.slice(0, end);
}

// Runs in the workbench page, over its list rows.
function treeRowInfo(rows: Element[]): TreeRowInfo[] {
  return rows.map((row) => ({
    index: Number(row.getAttribute('data-index')),
    level: Number(row.getAttribute('aria-level')),
    label: row.querySelector('.label-name')?.textContent ?? '',
    expanded: row.getAttribute('aria-expanded') === 'true',
  }));
}

// Runs inside the inspector webview.
function selectedInTable(): { selectedRow: string; heading: string } {
  const row = document.querySelector('[role="row"][aria-selected="true"]');
  const heading = document.querySelector('.detail-name');
  return { selectedRow: row?.textContent ?? '', heading: heading?.textContent ?? '' };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The inspector's strict CSP must not block anything it needs, and its own scripts must not throw. */
function webviewConsoleCheck(logs: readonly BrowserLog[]): TestResult {
  const title = 'e2e (browser): no Content-Security-Policy violations or errors from the inspector webview';
  const problems = logs.filter(
    (l) =>
      /Content[- ]Security[- ]Policy/i.test(l.text) ||
      ((l.type === 'error' || l.type === 'pageerror') && l.url.includes('/dist/webview/')),
  );
  return problems.length === 0
    ? { title, state: 'passed' }
    : { title, state: 'failed', error: problems.map((p) => `${p.text}  (${p.url})`).join('\n') };
}

function saveLogs(server: CodeServer): void {
  fs.copyFileSync(server.logFile, path.join(LOGS, 'code-server.log'));
  const vscodeLogs = path.join(server.userDataDir, 'logs');
  if (fs.existsSync(vscodeLogs)) fs.cpSync(vscodeLogs, path.join(LOGS, 'vscode-logs'), { recursive: true });
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
