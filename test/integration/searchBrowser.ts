// The browser side of the search panel's e2e check: some webview frame of code-server holds the Pareto front's canvas
// with the points the panel reported drawing, and a drawn plot; the panel and the chart are photographed; then the
// theme's chart colors change (as VS Code changes them) and the front and the heatmap must redraw in them.
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import type { SearchPanelRequest, TestResult } from './fixtures';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface ParetoState {
  points: number;
  width: number;
  height: number;
  /** Pixels of the canvas that are not transparent: the plot was drawn. */
  painted: number;
}

// Runs inside a frame of the page.
function paretoState(): ParetoState | undefined {
  const canvas = document.querySelector<HTMLCanvasElement>('canvas.pareto-canvas');
  if (!canvas?.dataset.points) return undefined;
  const ctx = canvas.getContext('2d');
  const data = ctx?.getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  if (data) for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) painted++;
  const box = canvas.getBoundingClientRect();
  return { points: Number(canvas.dataset.points), width: box.width, height: box.height, painted };
}

export async function checkSearchPanel(page: Page, request: SearchPanelRequest, screenshots: string, repo: string): Promise<TestResult[]> {
  const title = `e2e (browser): the search panel's webview holds the Pareto front canvas with ${request.frontPoints} points, drawn`;
  const started = Date.now();
  let found: { frame: Frame; state: ParetoState } | undefined;
  let last: ParetoState | undefined;
  while (!found && Date.now() - started < 30_000) {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      const state = await frame.evaluate(paretoState).catch(() => undefined);
      if (state) last = state;
      if (state && state.points === request.frontPoints && state.painted > 0 && state.width > 100) found = { frame, state };
    }
    if (!found) await sleep(250);
  }
  if (!found) return [{ title, state: 'failed', error: last ? `the canvas shows ${JSON.stringify(last)}` : 'no webview frame has the Pareto canvas' }];
  const results: TestResult[] = [{ title: `${title} (${found.state.painted} painted pixels)`, state: 'passed', durationMs: Date.now() - started }];
  const shot = path.join(screenshots, 'search.png');
  const shotTitle = `e2e (browser): screenshots saved to ${path.relative(repo, shot)}`;
  try {
    await (await found.frame.frameElement()).screenshot({ path: shot });
    await found.frame.locator('canvas.pareto-canvas').screenshot({ path: path.join(screenshots, 'search-pareto.png') });
    results.push({ title: shotTitle, state: 'passed' });
  } catch (err) {
    results.push({ title: shotTitle, state: 'failed', error: (err as Error).message });
  }
  results.push(await checkThemeRedraw(found.frame));
  return results;
}

/** Colors no VS Code theme uses for charts: pixels of them can only come from a redraw after the change below. */
const THEMED = { front: [255, 0, 255], hottest: [0, 255, 0] } as const;

interface ThemedPixels {
  /** Pareto canvas pixels in THEMED.front (the front's series color, --vscode-charts-blue). */
  front: number;
  /** Allocation heatmap pixels in THEMED.hottest (the fewest-bits color, --vscode-charts-red). */
  hottest: number;
}

// Runs inside the webview frame.
function themedPixels(colors: typeof THEMED): ThemedPixels {
  const count = (selector: string, [r, g, b]: readonly number[]) => {
    const canvas = document.querySelector<HTMLCanvasElement>(selector);
    const data = canvas?.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    if (data) for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i]! - r!) <= 3 && Math.abs(data[i + 1]! - g!) <= 3 && Math.abs(data[i + 2]! - b!) <= 3 && data[i + 3]! > 250) n++;
    return n;
  };
  return { front: count('canvas.pareto-canvas', colors.front), hottest: count('canvas.allocation-canvas', colors.hottest) };
}

// Runs inside the webview frame: what VS Code does on a theme switch, new --vscode-* variables on the root's style.
// Through the CSS object model only: the webview's CSP refuses a written style attribute.
function switchChartColors(colors: typeof THEMED | null): void {
  const style = document.documentElement.style;
  const names = ['--vscode-charts-blue', '--vscode-charts-red'];
  if (colors === null) {
    const saved = JSON.parse(document.documentElement.dataset.colorsBeforeTest ?? '[]') as string[];
    names.forEach((name, i) => (saved[i] ? style.setProperty(name, saved[i]) : style.removeProperty(name)));
    delete document.documentElement.dataset.colorsBeforeTest;
    return;
  }
  document.documentElement.dataset.colorsBeforeTest = JSON.stringify(names.map((name) => style.getPropertyValue(name)));
  style.setProperty(names[0]!, `rgb(${colors.front.join(', ')})`);
  style.setProperty(names[1]!, `rgb(${colors.hottest.join(', ')})`);
}

/** The search panel's charts follow a theme change: the front and the heatmap redraw in the new colors, and back. */
async function checkThemeRedraw(frame: Frame): Promise<TestResult> {
  const title = 'e2e (browser): the search panel\'s Pareto front and allocation heatmap redraw in the new colors when the theme changes';
  const started = Date.now();
  const waitForPixels = async (accept: (pixels: ThemedPixels) => boolean): Promise<ThemedPixels> => {
    let pixels = await frame.evaluate(themedPixels, THEMED);
    for (const deadline = Date.now() + 10_000; !accept(pixels) && Date.now() < deadline; ) {
      await sleep(100);
      pixels = await frame.evaluate(themedPixels, THEMED);
    }
    return pixels;
  };
  try {
    const before = await frame.evaluate(themedPixels, THEMED);
    if (before.front > 0 || before.hottest > 0) return { title, state: 'failed', error: `the theme already draws the test colors: ${JSON.stringify(before)}` };
    await frame.evaluate(switchChartColors, THEMED);
    const switched = await waitForPixels((p) => p.front > 0 && p.hottest > 0);
    await frame.evaluate(switchChartColors, null);
    const restored = await waitForPixels((p) => p.front === 0 && p.hottest === 0);
    const ok = switched.front > 0 && switched.hottest > 0 && restored.front === 0 && restored.hottest === 0;
    return ok
      ? { title: `${title} (${switched.front} front and ${switched.hottest} heatmap pixels in the new colors)`, state: 'passed', durationMs: Date.now() - started }
      : { title, state: 'failed', error: `pixels in the test colors after the switch ${JSON.stringify(switched)}, after switching back ${JSON.stringify(restored)}` };
  } catch (err) {
    return { title, state: 'failed', error: (err as Error).message };
  }
}
