// `npm run test:install`: what a user gets. Packages the linux-x64 VSIX (scripts/package.js), installs it into a
// fresh extensions folder with `code-server --install-extension`, starts code-server without any development path,
// and drives the workbench from headless Chromium: the sample and a safetensors checkpoint open in the installed
// inspector, a pickle checkpoint gets the "never unpickled" message; then the walkthrough is clicked through (sample,
// layers view, analysis, 5-bit search, QDQ export), each step checked only once its work finished, and photographed
// (walkthrough.png). Last, in an untrusted folder (Restricted Mode), inspection works and analysis, search and export
// ask for trust and run nothing. Prints `N passed, N failed`.
//   --no-build   package the bundles already in dist/ (npm test's integration step has just built them)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  extensionHostLaunches,
  findCodeServer,
  findLogs,
  findWebviewFrameWithRow,
  launchChromium,
  openWhenJoined,
  startCodeServer,
  tailOf,
  type CodeServer,
} from './codeServer';
import { ANALYSIS_WORKSPACE_SETTINGS, CHECKPOINT_TENSORS, writeSafetensors, type TestResult } from './fixtures';
import { indent, printResults, summaryLine } from './report';
import { restrictedModeChecks } from './restrictedMode';
import {
  WALKTHROUGH_STEPS,
  canvasCount,
  clickStepButton,
  doneSteps,
  findFiles,
  findFrameWithText,
  openWalkthrough,
  pickQuickPickRow,
  qdqModelFacts,
  waitForJson,
  waitForStepDone,
} from './walkthroughJourney';

const REPO = path.resolve(__dirname, '..', '..', '..');
const SAMPLE = path.join(REPO, 'resources', 'sample', 'dit-sample.onnx');
const SCREENSHOTS = path.join(REPO, '.test-output', 'screenshots');
const LOGS = path.join(REPO, '.test-output', 'install');
const SAMPLE_LAYER = 'blocks.0.attn.qkv';
const CHECKPOINT_LAYER = CHECKPOINT_TENSORS[0]!.name;
const PICKLE = 'model.pt';
const EXTENSION_FOLDER = /^quantlens\.quantlens-\d[\w.-]*$/;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function packageVsix(noBuild: boolean): string {
  const args = ['scripts/package.js', '--target', 'linux-x64', ...(noBuild ? ['--no-build'] : [])];
  const result = spawnSync('node', args, { cwd: REPO, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  const vsix = path.join(REPO, 'dist-vsix', `quantlens-${version}-linux-x64.vsix`);
  console.log(`packaged ${path.relative(REPO, vsix)} (${(fs.statSync(vsix).size / 1024 / 1024).toFixed(1)} MB)`);
  return vsix;
}

/** The workspace a researcher might have: the sample, a checkpoint, a pickle file, and small analysis settings. */
function writeInstallWorkspace(workspace: string): void {
  fs.copyFileSync(SAMPLE, path.join(workspace, 'dit-sample.onnx'));
  writeSafetensors(path.join(workspace, 'small.safetensors'));
  // Pickle protocol 2 header bytes: the engine must refuse the file by its name without reading it.
  fs.writeFileSync(path.join(workspace, PICKLE), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
  fs.mkdirSync(path.join(workspace, '.vscode'));
  fs.writeFileSync(path.join(workspace, '.vscode', 'settings.json'), JSON.stringify(ANALYSIS_WORKSPACE_SETTINGS, null, 2));
}

/** Command lines of the processes running a file from `folder` (the engine process of the installed extension). */
function processesUnder(folder: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    const cmdline = (() => {
      try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      } catch {
        return '';
      }
    })();
    if (cmdline.includes(folder)) found.push(cmdline.trim());
  }
  return found;
}

async function check(results: TestResult[], title: string, body: () => Promise<string | void>): Promise<boolean> {
  const started = Date.now();
  try {
    const detail = await body();
    results.push({ title: detail ? `${title} (${detail})` : title, state: 'passed', durationMs: Date.now() - started });
    console.log(`  … ok: ${title}`);
    return true;
  } catch (err) {
    results.push({ title, state: 'failed', error: (err as Error).message });
    console.log(`  … FAILED: ${title}`);
    return false;
  }
}

async function main(): Promise<number> {
  const noBuild = process.argv.includes('--no-build');
  fs.rmSync(LOGS, { recursive: true, force: true });
  fs.mkdirSync(LOGS, { recursive: true });
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  fs.rmSync(path.join(SCREENSHOTS, 'walkthrough.png'), { force: true });
  const results: TestResult[] = [];
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-install-'));
  const workspace = path.join(scratch, 'workspace');
  const extensionsDir = path.join(scratch, 'extensions');
  fs.mkdirSync(workspace);
  fs.mkdirSync(extensionsDir);
  writeInstallWorkspace(workspace);
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  const started = Date.now();
  try {
    let installed = '';
    const packagedAndInstalled = await check(results, 'the linux-x64 VSIX installs into a fresh extensions folder', async () => {
      const vsix = packageVsix(noBuild);
      const install = spawnSync(findCodeServer(), ['--extensions-dir', extensionsDir, '--install-extension', vsix], {
        encoding: 'utf8',
        timeout: 120_000,
      });
      if (install.status !== 0) throw new Error(`code-server --install-extension failed: ${install.stdout}${install.stderr}`);
      const folders = fs.readdirSync(extensionsDir).filter((name) => EXTENSION_FOLDER.test(name));
      if (folders.length !== 1) throw new Error(`expected one quantlens.quantlens-<version> folder, found ${fs.readdirSync(extensionsDir).join(', ')}`);
      installed = path.join(extensionsDir, folders[0]!);
      const binding = path.join(installed, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64', 'onnxruntime_binding.node');
      if (!fs.existsSync(binding)) throw new Error(`${binding} missing from the installed extension`);
      return folders[0];
    });
    // Nothing else can be checked without the installed extension.
    if (packagedAndInstalled) {

      server = await startCodeServer({ workspace, extensionsDir });
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
      // A click on an element that never becomes actionable fails the check instead of waiting forever.
      page.setDefaultTimeout(30_000);
      // No extensionDevelopmentPath: the window loads only what the extensions folder holds.
      await page.goto(`http://127.0.0.1:${server.port}/?folder=${encodeURIComponent(workspace)}`, { waitUntil: 'domcontentloaded' });
      const liveServer = server;
      const livePage = page;
      for (let i = 0; i < 240 && extensionHostLaunches(liveServer) === 0; i++) await sleep(250);

      await check(results, `installed inspector shows the sample's layers (${SAMPLE_LAYER} in the webview DOM)`, async () => {
        await openWhenJoined(liveServer, path.join(workspace, 'dit-sample.onnx'));
        const found = await findWebviewFrameWithRow(livePage, SAMPLE_LAYER, 120_000);
        if (!found) throw new Error(`no webview frame has a table row containing ${SAMPLE_LAYER}`);
        return `${found.rows} rows`;
      });
      await check(results, 'the engine process runs from the installed extension folder', async () => {
        const engines = processesUnder(path.join(installed, 'dist', 'engine.js'));
        if (engines.length === 0) throw new Error(`no process runs ${path.join(installed, 'dist', 'engine.js')}`);
        const fromRepo = processesUnder(path.join(REPO, 'dist', 'engine.js'));
        if (fromRepo.length) throw new Error(`the development folder's engine runs too: ${fromRepo.join('; ')}`);
        return `${engines.length} process`;
      });
      await check(results, `installed inspector shows the safetensors checkpoint (${CHECKPOINT_LAYER})`, async () => {
        await openWhenJoined(liveServer, path.join(workspace, 'small.safetensors'));
        const found = await findWebviewFrameWithRow(livePage, CHECKPOINT_LAYER, 60_000);
        if (!found) throw new Error(`no webview frame has a table row containing ${CHECKPOINT_LAYER}`);
        return `${found.rows} rows`;
      });
      await check(results, `a pickle checkpoint (${PICKLE}) opens with the "never unpickled" message`, async () => {
        await openWhenJoined(liveServer, path.join(workspace, PICKLE));
        const frame = await findFrameWithText(livePage, 'never unpickled', 60_000);
        if (!frame) throw new Error('no webview frame says the checkpoint is never unpickled');
      });
      const journey = await walkthroughJourney(results, livePage, { workspace, userDataDir: liveServer.userDataDir });
      // One window at a time on these two cores: the trusted one goes before the Restricted Mode one starts.
      await browser.close();
      browser = undefined;
      page = undefined;
      await liveServer.stop();
      await restrictedModeChecks((title, body) => check(results, title, body), {
        extensionsDir,
        sample: SAMPLE,
        sampleLayer: SAMPLE_LAYER,
        ...(journey.searchReport ? { searchReport: journey.searchReport } : {}),
      });
    }
  } catch (err) {
    results.push({ title: 'install harness', state: 'failed', error: (err as Error).stack ?? String(err) });
  } finally {
    if (page && results.some((r) => r.state === 'failed')) {
      await page.screenshot({ path: path.join(SCREENSHOTS, 'installed-failure.png') }).catch(() => undefined);
    }
    await browser?.close().catch(() => undefined);
    if (server) {
      await server.stop();
      fs.copyFileSync(server.logFile, path.join(LOGS, 'code-server.log'));
      const vscodeLogs = path.join(server.userDataDir, 'logs');
      if (fs.existsSync(vscodeLogs)) fs.cpSync(vscodeLogs, path.join(LOGS, 'vscode-logs'), { recursive: true });
      fs.rmSync(server.stateDir, { recursive: true, force: true });
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return finish(results, started);
}

/**
 * The walkthrough, clicked through in the installed extension: the sample opens from the extension's storage, the
 * layers view shows, an analysis, a 5-bit search and a QDQ export run to the end, and each step's checkbox turns on
 * only once its work finished.
 */
async function walkthroughJourney(
  results: TestResult[],
  page: Page,
  where: { workspace: string; userDataDir: string },
): Promise<{ searchReport?: string }> {
  let searchReport: string | undefined;
  const opened = await check(results, 'the walkthrough opens from "Welcome: Open Walkthrough..." with no step done', async () => {
    await openWalkthrough(page);
    const done = await doneSteps(page);
    if (done.length) throw new Error(`steps already done before the user did anything: ${done.join(', ')}`);
  });
  if (!opened) return {};
  const sampleStep = await check(results, 'step "Open the sample": the button opens a copy of the sample (outside the extension folder) in the inspector; the step is checked', async () => {
    await clickStepButton(page, 'openSample', 'Open Sample');
    const found = await findWebviewFrameWithRow(page, SAMPLE_LAYER, 60_000);
    if (!found) throw new Error(`no webview frame has a table row containing ${SAMPLE_LAYER}`);
    const copies = findFiles(path.join(where.userDataDir, 'User', 'globalStorage'), /^dit-sample\.onnx$/);
    if (copies.length !== 1) throw new Error(`expected one copy of the sample in the global storage, found ${copies.length}`);
    await waitForStepDone(page, 'openSample', 15_000);
    return path.relative(where.userDataDir, copies[0]!);
  });
  await check(results, 'step "Read the inspector": "Show Layers" reveals the QuantLens Layers view; the step is checked', async () => {
    await clickStepButton(page, 'readInspector', 'Show Layers');
    await page.locator('.pane-header', { hasText: 'QuantLens Layers' }).first().waitFor({ state: 'visible', timeout: 15_000 });
    await waitForStepDone(page, 'readInspector', 15_000);
  });
  if (!sampleStep) return {};
  const runs = path.join(where.workspace, '.quantlens', 'runs');
  const analyzed = await check(results, 'step "Run a per-timestep analysis": the form opens for the sample, Start runs it to a complete record with a layers × timesteps heatmap; then the step is checked', async () => {
    await clickStepButton(page, 'analyze', 'Analyze Sensitivity');
    const form = await findFrameWithText(page, 'Start analysis', 60_000);
    if (!form) throw new Error('no webview frame shows the launch form');
    if ((await doneSteps(page)).includes('analyze')) throw new Error('the step was checked when the form opened, before any analysis ran');
    await form.getByRole('button', { name: 'Start analysis' }).click();
    const record = await waitForJson<{ status: string; rows: unknown[] }>(runs, '.json', (run) => run.status !== 'running', 180_000);
    if (record?.value.status !== 'complete') throw new Error(`the run record is ${record ? record.value.status : 'missing'}`);
    const cells = await canvasCount(page, 'canvas.heatmap-canvas.by-timestep', 'cells', 15_000);
    if (cells === 0) throw new Error('no heatmap canvas with cells');
    await waitForStepDone(page, 'analyze', 15_000);
    return `${record.value.rows.length} rows, ${cells} heatmap cells`;
  });
  if (!analyzed) return {};
  const searches = path.join(where.workspace, '.quantlens', 'search');
  const searched = await check(results, 'step "Search a 5-bit allocation": the run is picked, Start search measures an allocation within 5 average bits and draws the Pareto front; then the step is checked', async () => {
    await clickStepButton(page, 'search', 'Search Mixed Precision');
    await pickQuickPickRow(page, '.json');
    const form = await findFrameWithText(page, 'Start search', 60_000);
    if (!form) throw new Error('no webview frame shows the search form');
    await form.getByRole('button', { name: 'Start search' }).click();
    type Report = { chosen: { predicted: { cost: number }; measured: { sqnrDb: number | null } }; budget: { kind: string; bits?: number } };
    const report = await waitForJson<Report>(searches, '.search.json', () => true, 180_000);
    if (!report) throw new Error(`no search report under ${searches}`);
    searchReport = report.file;
    const { budget, chosen } = report.value;
    if (budget.kind !== 'averageBits' || budget.bits !== 5) throw new Error(`the budget is ${JSON.stringify(budget)}, not 5 average bits`);
    if (!(chosen.predicted.cost <= 5 + 1e-9)) throw new Error(`the chosen allocation costs ${chosen.predicted.cost} average bits`);
    if (chosen.measured.sqnrDb === null) throw new Error('the chosen allocation was not measured');
    const points = await canvasCount(page, 'canvas.pareto-canvas', 'points', 30_000);
    if (points === 0) throw new Error('no Pareto canvas with points');
    await waitForStepDone(page, 'search', 15_000);
    return `${chosen.predicted.cost.toFixed(2)} average bits, measured ${chosen.measured.sqnrDb.toFixed(1)} dB, ${points} front points`;
  });
  if (!searched) return { searchReport };
  await check(results, 'step "Export": the button writes a QDQ model that onnxruntime loads, with QuantizeLinear/DequantizeLinear nodes; then the step is checked', async () => {
    const storage = path.join(where.userDataDir, 'User', 'globalStorage');
    await clickStepButton(page, 'export', 'Export QDQ Model');
    await waitForStepDone(page, 'export', 120_000);
    const exported = findFiles(storage, /\.qdq.*\.onnx$/);
    if (exported.length === 0) throw new Error(`no *.qdq*.onnx beside the sample's copy under ${storage}`);
    const facts = await qdqModelFacts(exported[0]!);
    if (facts.dequantize === 0) throw new Error(`${path.basename(exported[0]!)} has no DequantizeLinear node`);
    return `${path.basename(exported[0]!)}: ${facts.dequantize} DequantizeLinear, ${facts.quantize} QuantizeLinear, inputs ${facts.inputs.join(', ')}`;
  });
  await check(results, `every walkthrough step is checked (${WALKTHROUGH_STEPS.join(', ')}); screenshot ${path.relative(REPO, path.join(SCREENSHOTS, 'walkthrough.png'))}`, async () => {
    const done = await doneSteps(page);
    const missing = WALKTHROUGH_STEPS.filter((step) => !done.includes(step));
    if (missing.length) throw new Error(`steps not checked: ${missing.join(', ')}`);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'walkthrough.png') });
  });
  return { searchReport };
}

function finish(results: TestResult[], started: number): number {
  console.log(`install test (code-server, installed VSIX), ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const counts = printResults(results);
  if (counts.failed > 0) {
    console.log(`\nlogs: ${path.relative(REPO, LOGS)}/`);
    for (const log of findLogs(path.join(LOGS, 'vscode-logs')).filter((f) => f.endsWith('remoteexthost.log'))) {
      console.log(indent(tailOf(log, 3000)));
    }
  }
  console.log(summaryLine(counts));
  return counts.failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
