// The browser side of the search panel's e2e check: some webview frame of code-server holds the Pareto front's canvas
// with the points the panel reported drawing, and a drawn plot; the panel and the chart are photographed.
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
  return results;
}
