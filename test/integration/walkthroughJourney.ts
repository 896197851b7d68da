// The install test's journey through the "Get started with QuantLens" walkthrough, clicked in the workbench like a new
// user would: each step's button runs its command, the work finishes, and the step's checkbox turns on (its
// completion event fired). Ends with every step done and the walkthrough photographed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { onnx } from 'onnx-proto';
import * as ort from 'onnxruntime-node';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const WALKTHROUGH_TITLE = 'Get started with QuantLens';
/** package.json's step ids, in order. */
export const WALKTHROUGH_STEPS = ['openSample', 'readInspector', 'analyze', 'search', 'export'] as const;
export type WalkthroughStep = (typeof WALKTHROUGH_STEPS)[number];

/** Runs a command by its palette label ("Category: Title"), then waits for its quick pick row to go. */
export async function runFromPalette(page: Page, label: string): Promise<void> {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible', timeout: 15_000 });
  await input.fill(`>${label}`);
  const entry = page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first();
  await entry.waitFor({ state: 'visible', timeout: 15_000 });
  await page.keyboard.press('Enter');
}

/** Picks the first row of an open quick pick that contains `text`. */
export async function pickQuickPickRow(page: Page, text: string): Promise<void> {
  const entry = page.locator('.quick-input-widget .quick-input-list .monaco-list-row', { hasText: text }).first();
  await entry.waitFor({ state: 'visible', timeout: 30_000 });
  await entry.click();
}

/** A webview frame whose body text contains `text`. */
export async function findFrameWithText(page: Page, text: string, timeoutMs: number): Promise<Frame | undefined> {
  const deadline = Date.now() + timeoutMs;
  do {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      const body = await frame.evaluate(() => document.body?.innerText ?? '').catch(() => '');
      if (body.includes(text)) return frame;
    }
    await sleep(250);
  } while (Date.now() < deadline);
  return undefined;
}

export async function openWalkthrough(page: Page): Promise<void> {
  await runFromPalette(page, 'Welcome: Open Walkthrough...');
  await pickQuickPickRow(page, WALKTHROUGH_TITLE);
  await stepLocator(page, 'openSample').waitFor({ state: 'visible', timeout: 30_000 });
}

function stepLocator(page: Page, step: WalkthroughStep) {
  return page.locator(`.gettingStartedContainer button.getting-started-step[data-step-id$="#${step}"]`);
}

/** Expands a step and clicks the button its description renders for a `[label](command:…)` link. */
export async function clickStepButton(page: Page, step: WalkthroughStep, label: string): Promise<void> {
  const item = stepLocator(page, step);
  await item.locator('h3.step-title').click();
  const button = item.locator('.button-container .monaco-button', { hasText: label });
  await button.waitFor({ state: 'visible', timeout: 15_000 });
  await button.click();
}

/** Which steps show as done (aria-checked on the step, which the walkthrough sets when a completion event fired). */
export async function doneSteps(page: Page): Promise<WalkthroughStep[]> {
  // Read at once, without waiting for steps that are not shown (the walkthrough may be behind another editor).
  const checked = await page.evaluate(() =>
    Array.from(document.querySelectorAll('.gettingStartedContainer button.getting-started-step[aria-checked="true"]'), (step) => step.getAttribute('data-step-id') ?? ''),
  );
  return WALKTHROUGH_STEPS.filter((step) => checked.some((id) => id.endsWith(`#${step}`)));
}

export async function waitForStepDone(page: Page, step: WalkthroughStep, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await doneSteps(page)).includes(step)) return;
    await sleep(250);
  }
  throw new Error(`the walkthrough step "${step}" is not checked after ${timeoutMs / 1000} s (done: ${(await doneSteps(page)).join(', ') || 'none'})`);
}

/** Waits for a JSON file in `dir` whose parsed value `ready` accepts; returns it and its path. */
export async function waitForJson<T>(
  dir: string,
  suffix: string,
  ready: (value: T) => boolean,
  timeoutMs: number,
): Promise<{ file: string; value: T } | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith(suffix)) : [];
    for (const name of names) {
      const file = path.join(dir, name);
      try {
        const value = JSON.parse(fs.readFileSync(file, 'utf8')) as T;
        if (ready(value)) return { file, value };
      } catch {
        // Half-written: look again.
      }
    }
    await sleep(500);
  }
  return undefined;
}

/** Files under `dir` (recursively) whose name matches. */
export function findFiles(dir: string, name: RegExp): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((relative) => name.test(path.basename(relative)))
    .map((relative) => path.join(dir, relative));
}

/** A webview canvas's `data-<key>` count (the panels publish what they drew), 0 if none within the timeout. */
export async function canvasCount(page: Page, selector: string, key: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  do {
    for (const frame of page.frames()) {
      const value = await frame
        .evaluate(([sel, k]) => document.querySelector<HTMLCanvasElement>(sel!)?.dataset[k!], [selector, key])
        .catch(() => undefined);
      if (value && Number(value) > 0) return Number(value);
    }
    await sleep(250);
  } while (Date.now() < deadline);
  return 0;
}

/**
 * What an exported QDQ model holds, read independently of QuantLens: its QuantizeLinear/DequantizeLinear nodes
 * (protobuf decode) and whether onnxruntime builds a session for it.
 */
export async function qdqModelFacts(file: string): Promise<{ dequantize: number; quantize: number; inputs: string[] }> {
  const model = onnx.ModelProto.decode(fs.readFileSync(file));
  const ops = (model.graph?.node ?? []).map((node) => node.opType);
  const session = await ort.InferenceSession.create(file);
  const inputs = [...session.inputNames];
  await session.release();
  return {
    dequantize: ops.filter((op) => op === 'DequantizeLinear').length,
    quantize: ops.filter((op) => op === 'QuantizeLinear').length,
    inputs,
  };
}
