// `npm run test:integration`: runs the integration suite inside a real VS Code (code-server 4.96.4) driven by headless
// Chromium, checks the inspector webview's DOM from the browser side, takes the e2e screenshot, and prints one line
// per test and `N passed, N failed`. Exit code 1 on any failure or timeout.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, ConsoleMessage, Frame, Page } from 'playwright-core';
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
  writeFileAtomic,
  writeWorkspace,
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
  for (const old of ['inspector.png', 'inspector-webview.png', 'failure.png']) fs.rmSync(path.join(SCREENSHOTS, old), { force: true });

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
    let screenshotHandled = false;
    while (!suiteResults && !stopping) {
      if (serverGone) throw new Error('code-server exited while the suite ran');
      if (Date.now() > deadline) {
        timedOut = true;
        break;
      }
      const request = exchangePath(workspace, EXCHANGE.readyForScreenshot);
      if (!screenshotHandled && fs.existsSync(request)) {
        screenshotHandled = true;
        harnessResults.push(...(await checkAndScreenshot(page, JSON.parse(fs.readFileSync(request, 'utf8')))));
        writeFileAtomic(exchangePath(workspace, EXCHANGE.screenshotDone), 'done');
      }
      const resultsFile = exchangePath(workspace, EXCHANGE.results);
      if (fs.existsSync(resultsFile)) suiteResults = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as SuiteResults;
      else await sleep(200);
    }
    if (!screenshotHandled) {
      harnessResults.push({
        title: 'e2e (browser): the inspector webview shows the layer table',
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

/** A layer of the sample and its group path in the Layers tree (LayerInfo.group). */
const TREE_CLICK = { groups: ['block 1', 'attn'], layer: 'blocks.1.attn.qkv' };

/**
 * Real clicks in the workbench: expand the Layers tree down to a layer and click it; the inspector webview must then
 * show that row selected and the layer's details.
 */
async function clickThroughLayersTree(page: Page, inspector: Frame, workspaceName: string): Promise<TestResult> {
  const title = `e2e (browser): clicking ${TREE_CLICK.layer} in the Layers tree selects it in the inspector`;
  const started = Date.now();
  const treeRow = (label: string) =>
    page.locator('.monaco-list-row').filter({ has: page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(label)}$`) }) });
  try {
    // The workspace's file tree takes the sidebar's room; fold it so the Layers view has space.
    const filesHeader = page.locator('.pane-header[aria-expanded="true"]', { hasText: workspaceName });
    if ((await filesHeader.count()) > 0) await filesHeader.first().click();
    for (const group of TREE_CLICK.groups) {
      const row = treeRow(group).first();
      await row.waitFor({ timeout: 15_000 });
      if ((await row.getAttribute('aria-expanded')) !== 'true') await row.click();
    }
    const leaf = treeRow(TREE_CLICK.layer).first();
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
    const rows = await page.locator('.monaco-list-row').allTextContents().catch(() => []);
    return { title, state: 'failed', error: `${(err as Error).message}\ntree rows: ${rows.join(' | ')}` };
  }
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
