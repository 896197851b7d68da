// The browser side of the sensitivity panel's e2e checks, with real input in code-server. The inspector's title-bar
// button opens the launch form, which shows the workspace's settings; its Start button runs the analysis (the suite
// checks the run). The panel's webview holds
// the layers × timesteps heatmap canvas with every cell of the run, a hover shows a cell's values, a click on a cell
// reveals its layer (the suite checks the inspector), "Export CSV" writes the CSV (the suite checks the file), and the
// panel is photographed.
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import type { AnalysisFormRequest, AnalysisPanelRequest, TestResult } from './fixtures';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface HeatmapState {
  cells: number;
  units: number;
  timesteps: number;
  /** left, top, width, height of the plot area in the canvas's CSS pixels. */
  plot: number[];
  rowHeight: number;
  firstRow: number;
  canvasWidth: number;
}

// Runs inside a frame of the page.
function heatmapState(): HeatmapState | undefined {
  const canvas = document.querySelector<HTMLCanvasElement>('canvas.heatmap-canvas.by-timestep');
  if (!canvas?.dataset.cells || !canvas.dataset.plot) return undefined;
  return {
    cells: Number(canvas.dataset.cells),
    units: Number(canvas.dataset.units),
    timesteps: Number(canvas.dataset.timesteps),
    plot: canvas.dataset.plot.split(',').map(Number),
    rowHeight: Number(canvas.dataset.rowHeight),
    firstRow: Number(canvas.dataset.firstRow),
    canvasWidth: canvas.getBoundingClientRect().width,
  };
}

/** The webview frame whose heatmap shows `cells` cells, and its state; undefined if none does within the timeout. */
async function findPanelFrame(page: Page, cells: number, timeoutMs: number): Promise<{ frame: Frame; state: HeatmapState } | undefined> {
  const deadline = Date.now() + timeoutMs;
  let last: HeatmapState | undefined;
  do {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      const state = await frame.evaluate(heatmapState).catch(() => undefined);
      if (state) last = state;
      if (state && state.cells === cells) return { frame, state };
    }
    await sleep(250);
  } while (Date.now() < deadline);
  if (last) throw new Error(`the heatmap shows ${last.cells} cells, not ${cells}`);
  return undefined;
}

export async function checkAnalysisPanel(page: Page, request: AnalysisPanelRequest, screenshots: string, repo: string): Promise<TestResult[]> {
  const results: TestResult[] = [];
  const title = `e2e (browser): the sensitivity panel's heatmap canvas holds all ${request.cells} cells of the run`;
  const started = Date.now();
  let found: { frame: Frame; state: HeatmapState } | undefined;
  try {
    found = await findPanelFrame(page, request.cells, 30_000);
  } catch (err) {
    results.push({ title, state: 'failed', error: (err as Error).message });
    return results;
  }
  if (!found) {
    results.push({ title, state: 'failed', error: 'no webview frame has the heatmap canvas' });
    return results;
  }
  const { frame, state } = found;
  if (state.units * state.timesteps !== request.cells) {
    results.push({ title, state: 'failed', error: `units ${state.units} × timesteps ${state.timesteps} ≠ ${request.cells}` });
  } else {
    results.push({ title: `${title} (${state.units} units × ${state.timesteps} timesteps)`, state: 'passed', durationMs: Date.now() - started });
  }

  const heatmap = frame.locator('canvas.heatmap-canvas.by-timestep');
  const [left, top, width] = state.plot as [number, number, number, number];
  const cellAt = (row: number, column: number) => ({
    x: left + ((column + 0.5) * width) / state.timesteps,
    y: top + (row - state.firstRow + 0.5) * state.rowHeight,
  });

  // Hover a cell for the picture (chart.js draws its tooltip on the canvas), then photograph panel and heatmap.
  const shotTitle = `e2e (browser): screenshots saved to ${path.relative(repo, path.join(screenshots, 'analysis.png'))}`;
  try {
    await heatmap.hover({ position: cellAt(request.click.row, request.click.column) });
    await sleep(300);
    const element = await frame.frameElement();
    await element.screenshot({ path: path.join(screenshots, 'analysis.png') });
    await heatmap.screenshot({ path: path.join(screenshots, 'analysis-heatmap.png') });
    results.push({ title: shotTitle, state: 'passed' });
  } catch (err) {
    results.push({ title: shotTitle, state: 'failed', error: (err as Error).message });
  }

  const clickTitle = `e2e (browser): clicking heatmap cell (row ${request.click.row}, column ${request.click.column}) and "Export CSV"`;
  try {
    await heatmap.click({ position: cellAt(request.click.row, request.click.column) });
    await frame.getByRole('button', { name: 'Export CSV' }).click();
    results.push({ title: clickTitle, state: 'passed' });
  } catch (err) {
    results.push({ title: clickTitle, state: 'failed', error: (err as Error).message });
  }
  return results;
}

interface FormValues {
  samples: string;
  timesteps: string;
  timestepInput: string;
  checked: string[];
}

// Runs inside a frame of the page.
function formValues(): FormValues | undefined {
  const form = document.querySelector('form.launch-form');
  if (!form) return undefined;
  const byLabel = (text: string) => {
    const label = Array.from(form.querySelectorAll('label')).find((l) => l.textContent?.startsWith(text));
    const control = label?.htmlFor ? document.getElementById(label.htmlFor) : null;
    return (control as HTMLInputElement | HTMLSelectElement | null)?.value ?? '';
  };
  return {
    samples: byLabel('Samples'),
    timesteps: byLabel('Timesteps'),
    timestepInput: byLabel('Timestep input'),
    checked: Array.from(form.querySelectorAll<HTMLInputElement>('input[type="checkbox"]:checked')).map((box) => box.parentElement?.textContent?.trim() ?? ''),
  };
}

export async function checkAnalysisForm(page: Page, request: AnalysisFormRequest): Promise<TestResult[]> {
  const results: TestResult[] = [];
  // The suite holds the sample open in the inspector: its title bar carries the command.
  const buttonTitle = 'e2e (browser): the inspector\'s title-bar button "Analyze Sensitivity" opens the launch form';
  try {
    await page.locator('.editor-actions [aria-label^="Analyze Sensitivity"]').first().click({ timeout: 15_000 });
    results.push({ title: buttonTitle, state: 'passed' });
  } catch (err) {
    results.push({ title: buttonTitle, state: 'failed', error: (err as Error).message });
    return results;
  }
  const title = 'e2e (browser): the launch form shows the workspace settings and the detected timestep input';
  const deadline = Date.now() + 30_000;
  let found: { frame: Frame; values: FormValues } | undefined;
  while (!found && Date.now() < deadline) {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      const values = await frame.evaluate(formValues).catch(() => undefined);
      if (values) found = { frame, values };
    }
    if (!found) await sleep(250);
  }
  if (!found) return [...results, { title, state: 'failed', error: 'no webview frame shows the launch form' }];
  const { frame, values } = found;
  const expected: FormValues = request.expected;
  results.push(
    JSON.stringify(values) === JSON.stringify(expected)
      ? { title, state: 'passed' }
      : { title, state: 'failed', error: `the form shows ${JSON.stringify(values)}, expected ${JSON.stringify(expected)}` },
  );
  const startTitle = 'e2e (browser): clicking "Start analysis" in the form';
  try {
    await frame.getByRole('button', { name: 'Start analysis' }).click();
    results.push({ title: startTitle, state: 'passed' });
  } catch (err) {
    results.push({ title: startTitle, state: 'failed', error: (err as Error).message });
  }
  return results;
}
