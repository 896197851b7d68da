// The install test's Restricted Mode phase: the installed extension in an untrusted folder (workspace trust on, no
// startup prompt). Inspection works; analysis, search and the QDQ export each stop at a modal that says why they need
// trust, and nothing runs: no run record, no search panel, no exported model.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { extensionHostLaunches, findWebviewFrameWithRow, launchChromium, openInWindow, openWhenJoined, startCodeServer, type CodeServer } from './codeServer';
import { findFrameWithText, runFromPalette } from './walkthroughJourney';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type Check = (title: string, body: () => Promise<string | void>) => Promise<boolean>;

export interface RestrictedModeInputs {
  extensionsDir: string;
  sample: string;
  sampleLayer: string;
  /** A search report (`*.search.json`) the trusted phase wrote: its panel's Export must ask for trust. */
  searchReport?: string;
}

/** The modal requireTrust shows; dismissed with Escape. Returns its text. */
async function expectTrustModal(page: Page): Promise<string> {
  const dialog = page.locator('.monaco-dialog-box', { hasText: 'needs a trusted workspace' });
  await dialog.waitFor({ state: 'visible', timeout: 30_000 });
  const text = (await dialog.innerText()).replace(/\s+/g, ' ').trim();
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'hidden', timeout: 10_000 });
  return text;
}

/** Modification times of the QDQ models beside `model`: an export that ran would change them. */
function exportedModels(model: string): string {
  const dir = path.dirname(model);
  return fs
    .readdirSync(dir)
    .filter((name) => /\.qdq.*\.onnx$/.test(name))
    .map((name) => `${name}@${fs.statSync(path.join(dir, name)).mtimeMs}`)
    .join(',');
}

export async function restrictedModeChecks(check: Check, inputs: RestrictedModeInputs): Promise<void> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-restricted-'));
  const workspace = path.join(scratch, 'untrusted');
  fs.mkdirSync(path.join(workspace, '.quantlens', 'search'), { recursive: true });
  fs.copyFileSync(inputs.sample, path.join(workspace, 'dit-sample.onnx'));
  const report = inputs.searchReport && path.join(workspace, '.quantlens', 'search', path.basename(inputs.searchReport));
  if (inputs.searchReport && report) fs.copyFileSync(inputs.searchReport, report);
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  try {
    server = await startCodeServer({ workspace, extensionsDir: inputs.extensionsDir, restricted: true });
    browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.setDefaultTimeout(30_000);
    await page.goto(`http://127.0.0.1:${server.port}/?folder=${encodeURIComponent(workspace)}`, { waitUntil: 'domcontentloaded' });
    const live = server;
    for (let i = 0; i < 240 && extensionHostLaunches(live) === 0; i++) await sleep(250);
    const runs = path.join(workspace, '.quantlens', 'runs');

    const inspects = await check(`Restricted Mode: the installed inspector still shows the sample (${inputs.sampleLayer})`, async () => {
      await page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).first().waitFor({ state: 'visible', timeout: 60_000 });
      await openWhenJoined(live, path.join(workspace, 'dit-sample.onnx'));
      const found = await findWebviewFrameWithRow(page, inputs.sampleLayer, 120_000);
      if (!found) throw new Error(`no webview frame has a table row containing ${inputs.sampleLayer}`);
      return `${found.rows} rows`;
    });
    if (!inspects) return;
    await check('Restricted Mode: "QuantLens: Analyze Sensitivity" asks for trust and runs nothing', async () => {
      await runFromPalette(page, 'QuantLens: Analyze Sensitivity');
      const said = await expectTrustModal(page);
      if (fs.existsSync(runs)) throw new Error(`${runs} exists: something ran`);
      if (await findFrameWithText(page, 'Start analysis', 1000)) throw new Error('the analysis form opened');
      return said.slice(0, 80);
    });
    await check('Restricted Mode: "QuantLens: Search Mixed Precision" asks for trust and opens no search', async () => {
      await runFromPalette(page, 'QuantLens: Search Mixed Precision');
      await expectTrustModal(page);
      if (await findFrameWithText(page, 'Start search', 1000)) throw new Error('the search form opened');
    });
    if (!report) return;
    await check('Restricted Mode: a saved search opens (its report open as text, then "QuantLens: Open Allocation"), but its Export asks for trust and writes nothing', async () => {
      const { modelPath } = JSON.parse(fs.readFileSync(report, 'utf8')) as { modelPath: string };
      const before = exportedModels(modelPath);
      openInWindow(live, report);
      await page.locator('.tab.active', { hasText: path.basename(report) }).waitFor({ state: 'visible', timeout: 30_000 });
      await runFromPalette(page, 'QuantLens: Open Allocation');
      const panel = await findFrameWithText(page, 'Export QDQ model', 60_000);
      if (!panel) throw new Error('the saved search did not open in a panel');
      await panel.getByRole('button', { name: /Export QDQ model/ }).click();
      await expectTrustModal(page);
      await sleep(1000);
      if (exportedModels(modelPath) !== before) throw new Error(`a QDQ model beside ${modelPath} was written`);
    });
  } finally {
    await browser?.close().catch(() => undefined);
    await server?.stop();
    if (server) fs.rmSync(server.stateDir, { recursive: true, force: true });
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
