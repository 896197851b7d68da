// "QuantLens: Search Mixed Precision" (palette, a run record in the Explorer, the sensitivity panel's button) opens the
// search panel's launch form for a saved run; Start runs the engine's `search` (cancellable, with progress), which
// writes the allocation JSON, its YAML and the panel's report under `.quantlens/search/`. "QuantLens: Open Allocation"
// and the panel serializer reopen a saved report.
import { promises as fs } from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { ALL_UNIT } from '../../engine/analysis/settings';
import { reportPathFor, reportProblem } from '../../engine/search/report';
import { loadRun } from '../../engine/runs/records';
import type { AnalysisRun } from '../../protocol/analysis';
import type { SearchForm, SearchReport } from '../../protocol/searchPanel';
import type { SearchRendered, SearchState } from '../../protocol/testApi';
import type { EngineHost } from '../engineHost';
import { outputBase, RUNS_FOLDER } from '../analysis/analysisFeature';
import { freshPath } from '../freshPath';
import { requireTrust } from '../trust';
import { fromWalkthrough, reachedMilestone } from '../walkthrough';
import { OpenPanels } from '../webview/replayPanel';
import { budgetLabel, budgetText, DEFAULT_SEARCH_FORM, searchFormWith, type SearchFormLimits } from './searchForm';
import { EXPORT_QDQ_COMMAND, SearchPanel, SEARCH_VIEW_TYPE, type SearchFormContent, type SearchPanelHost } from './searchPanel';

export const SEARCH_COMMAND = 'quantlens.searchMixedPrecision';
export const OPEN_ALLOCATION_COMMAND = 'quantlens.openAllocation';
export const SEARCH_FOLDER = path.join('.quantlens', 'search');

export class SearchFeature implements SearchPanelHost, vscode.Disposable {
  private readonly panels = new OpenPanels<SearchPanel, SearchRendered>();
  private lastAllocation: string | undefined;
  private lastState: SearchState | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly engine: EngineHost,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  register(): vscode.Disposable[] {
    return [
      // Explorer: (uri, selection); analysis panel: (uri); tests: (uri, form overrides).
      vscode.commands.registerCommand(SEARCH_COMMAND, (target?: unknown, options?: unknown) => this.searchCommand(target, options)),
      vscode.commands.registerCommand(OPEN_ALLOCATION_COMMAND, (target?: unknown) => this.openAllocationCommand(target)),
      // From the panel's Export button (with the panel) or the palette (the last search panel drawn).
      vscode.commands.registerCommand(EXPORT_QDQ_COMMAND, (target?: unknown) => this.exportCommand(target)),
      vscode.window.registerWebviewPanelSerializer(SEARCH_VIEW_TYPE, {
        deserializeWebviewPanel: (panel, state: unknown) => this.restore(panel, state),
      }),
    ];
  }

  // ----- test API -----
  searchRendered(): SearchRendered | undefined {
    return this.panels.lastRendered;
  }

  lastAllocationPath(): string | undefined {
    return this.lastAllocation;
  }

  lastSearchState(): SearchState | undefined {
    return this.lastState;
  }

  // ----- commands -----

  /** Opens the form for a run; with `options` (SearchForm fields) starts right away and resolves to the allocation path. */
  private async searchCommand(target: unknown, options: unknown): Promise<string | undefined> {
    if (!(await requireTrust('Mixed-precision search'))) return undefined;
    const uri = target instanceof vscode.Uri ? target : typeof target === 'string' ? vscode.Uri.file(target) : await this.pickRun();
    if (!uri) return undefined;
    const column = fromWalkthrough(target) ? vscode.ViewColumn.Beside : vscode.ViewColumn.Active;
    let run: AnalysisRun;
    try {
      run = await loadRun(uri.fsPath);
    } catch (err) {
      void vscode.window.showErrorMessage(`QuantLens: ${(err as Error).message}`);
      return undefined;
    }
    const content = formContent(uri.fsPath, run);
    const panel = this.createPanel(undefined, column);
    panel.showForm(content);
    const overrides = options && typeof options === 'object' && !Array.isArray(options) ? options : undefined;
    if (!overrides) return undefined;
    let form: SearchForm;
    try {
      form = searchFormWith(content.form, overrides, formLimits(content));
    } catch (err) {
      // The form stays up with the reason (kept for when the webview is ready), and the caller's promise rejects with
      // it: nothing runs.
      panel.ended('failed', (err as Error).message, content);
      throw err;
    }
    return this.startSearch(panel, form, content, run);
  }

  private async openAllocationCommand(target: unknown): Promise<void> {
    // From the palette while an allocation or its report is open as text: that one.
    const shown = vscode.window.activeTextEditor?.document.uri;
    let uri = target instanceof vscode.Uri ? target : shown && /\.(alloc|search)\.json$/i.test(shown.fsPath) ? shown : undefined;
    if (!uri) {
      const folder = vscode.workspace.workspaceFolders?.[0];
      const picked = await vscode.window.showOpenDialog({
        title: 'QuantLens: Open Allocation',
        canSelectMany: false,
        filters: { 'Allocations and search reports': ['json'] },
        openLabel: 'Open',
        ...(folder ? { defaultUri: vscode.Uri.joinPath(folder.uri, ...SEARCH_FOLDER.split(path.sep)) } : {}),
      });
      uri = picked?.[0];
    }
    if (!uri) return;
    const reportPath = /\.search\.json$/i.test(uri.fsPath) ? uri.fsPath : reportPathFor(uri.fsPath);
    try {
      this.createPanel().showReport(await readReport(reportPath), reportPath);
    } catch (err) {
      void vscode.window.showErrorMessage(`QuantLens: ${(err as Error).message}`);
    }
  }

  // ----- SearchPanelHost -----

  start(panel: SearchPanel, form: SearchForm): void {
    const runPath = panel.runPath;
    if (!runPath) return;
    void (async () => {
      const run = await loadRun(runPath);
      const content = formContent(runPath, run);
      let checked: SearchForm;
      try {
        checked = searchFormWith(content.form, form, formLimits(content));
      } catch (err) {
        // The webview checks the same rule before it posts; a form that still fails it stays up with the reason.
        panel.status('failed', (err as Error).message);
        return;
      }
      await this.startSearch(panel, checked, content, run);
    })().catch((err: Error) => {
      panel.status('failed', err.message);
      void vscode.window.showErrorMessage(`QuantLens: ${err.message}`);
    });
  }

  newSearch(panel: SearchPanel): void {
    const runPath = panel.runPath;
    if (!runPath) return;
    loadRun(runPath).then(
      (run) => panel.showForm(formContent(runPath, run)),
      (err: Error) => panel.showError(err.message),
    );
  }

  private async exportCommand(target: unknown): Promise<void> {
    const panel = target instanceof SearchPanel ? target : this.panels.lastRenderedPanel;
    if (!panel?.report) {
      void vscode.window.showInformationMessage('QuantLens: finish a mixed-precision search first; its panel exports the QDQ model.');
      return;
    }
    if (await requireTrust('Export')) this.exportQdq(panel);
  }

  private exportQdq(panel: SearchPanel): void {
    const report = panel.report;
    if (!report) return;
    const controller = new AbortController();
    panel.status('running', 'Exporting the QDQ model…');
    this.log.info(`Exporting ${report.allocationPath} as QDQ next to ${report.modelPath}`);
    this.engine
      .exportQdq({ modelPath: report.modelPath, allocationPath: report.allocationPath, ...(report.runPath ? { runPath: report.runPath } : {}) }, controller.signal)
      .then(
        (exported) => {
          panel.showExported(exported);
          panel.status('complete');
          reachedMilestone('exported');
          const sizes = exported.models.map((m) => `${path.basename(m.outPath)} ${(m.exportedBytes / 1e6).toFixed(2)} MB (original ${(m.originalBytes / 1e6).toFixed(2)} MB)`);
          this.log.info(`Exported ${sizes.join('; ')}`);
          void vscode.window.showInformationMessage(`QuantLens: wrote ${sizes.join('; ')}.`);
        },
        (err: Error) => {
          panel.status('failed', `Export failed: ${err.message}`);
          void vscode.window.showErrorMessage(`QuantLens: export failed: ${err.message}`);
        },
      );
  }

  openAllocation(panel: SearchPanel): void {
    const report = panel.report;
    if (report) void vscode.window.showTextDocument(vscode.Uri.file(report.allocationPath), { viewColumn: vscode.ViewColumn.Beside });
  }

  rendered(panel: SearchPanel, rendered: SearchRendered): void {
    this.panels.rendered(panel, rendered);
  }

  dispose(): void {
    for (const panel of [...this.panels]) panel.controller?.abort();
  }

  // ----- internals -----

  private createPanel(webviewPanel?: vscode.WebviewPanel, column = vscode.ViewColumn.Active): SearchPanel {
    const created =
      webviewPanel ??
      vscode.window.createWebviewPanel(SEARCH_VIEW_TYPE, 'Search', { viewColumn: column, preserveFocus: false }, { enableScripts: true });
    const panel = new SearchPanel(created, this.extensionUri, this);
    this.panels.add(panel);
    return panel;
  }

  private async startSearch(panel: SearchPanel, form: SearchForm, content: SearchFormContent, run: AnalysisRun): Promise<string> {
    const dir = path.join(outputBase(content.runPath), SEARCH_FOLDER);
    await fs.mkdir(dir, { recursive: true });
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const base = `${path.basename(content.runPath).replace(/\.json$/i, '')}-${budgetLabel(form)}-${stamp}`;
    const outPath = await freshPath(path.join(dir, `${base}.alloc.json`));
    const controller = new AbortController();
    panel.controller = controller;
    panel.showRunning();
    this.lastAllocation = outPath;
    this.lastState = { status: 'running' };
    const pins = form.pin === '' ? [] : [form.pin];
    this.log.info(
      `Searching ${content.runPath}: budget ${budgetText(form)}${form.budgetKind === 'minSqnrDb' ? ` (SQNR ≥ ${form.budgetValue} dB)` : ''}, ` +
        `${form.rangeCount} range(s), refine ${form.refine}, settings ${form.settings.join(',')}${pins.length ? `, pin /${form.pin}/i` : ''}; allocation ${outPath}`,
    );
    const started = Date.now();
    const done = this.engine.search(
      {
        runPath: content.runPath,
        modelPath: run.settings.model,
        budget: budgetText(form),
        rangeCount: form.rangeCount,
        refine: form.refine,
        outPath,
        pins,
        settings: form.settings,
      },
      (event) => {
        if (event.kind === 'progress') panel.progress(event.stage, event.done, event.total);
        else panel.step(event.step);
      },
      controller.signal,
    );
    notifyProgress(path.basename(content.runPath), controller, done);
    void done.then(
      (report) => {
        this.lastState = { status: 'complete' };
        reachedMilestone('searched');
        this.log.info(`Search done in ${((Date.now() - started) / 1000).toFixed(1)} s: measured ${report.chosen.measured.error}; ${outPath}`);
        if (!panel.disposed) panel.showReport(report, reportPathFor(outPath));
      },
      (err: Error & { code?: string }) => {
        const cancelled = controller.signal.aborted || err.code === 'cancelled';
        const message = cancelled ? 'The search was cancelled.' : err.message;
        this.lastState = { status: cancelled ? 'cancelled' : 'failed', message };
        this.log[cancelled ? 'info' : 'error'](`Search of ${content.runPath}: ${message}`);
        if (!panel.disposed) panel.ended(cancelled ? 'cancelled' : 'failed', message, { ...content, form });
        if (!cancelled) void vscode.window.showErrorMessage(`QuantLens: search failed: ${message}`);
      },
    );
    return outPath;
  }

  private async pickRun(): Promise<vscode.Uri | undefined> {
    const files = await vscode.workspace.findFiles(`**/${RUNS_FOLDER.split(path.sep).join('/')}/*.json`, '**/node_modules/**', 1000);
    const stats = await Promise.all(files.map(async (uri) => ({ uri, mtime: (await fs.stat(uri.fsPath).catch(() => undefined))?.mtimeMs ?? 0 })));
    stats.sort((a, b) => b.mtime - a.mtime);
    const items = stats.map(({ uri }) => ({ label: path.basename(uri.fsPath), description: vscode.workspace.asRelativePath(uri), uri }));
    const browse = { label: '$(folder-opened) Browse…', description: '', alwaysShow: true, uri: undefined };
    const choice = await vscode.window.showQuickPick([...items, browse], {
      title: 'QuantLens: Search Mixed Precision',
      placeHolder: items.length > 0 ? 'Choose a sensitivity run (newest first)' : 'No runs under .quantlens/runs yet: analyze a model first, or browse',
      matchOnDescription: true,
      // Opened from the walkthrough, whose page can take focus back as the step expands: keep the picker up.
      ignoreFocusOut: true,
    });
    if (!choice) return undefined;
    if (choice.uri) return choice.uri;
    const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'Analysis runs': ['json'] }, openLabel: 'Search' });
    return picked?.[0];
  }

  private async restore(webviewPanel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const panel = this.createPanel(webviewPanel);
    const saved = (state ?? {}) as { reportPath?: unknown; runPath?: unknown };
    try {
      if (typeof saved.reportPath === 'string') panel.showReport(await readReport(saved.reportPath), saved.reportPath);
      else if (typeof saved.runPath === 'string') panel.showForm(formContent(saved.runPath, await loadRun(saved.runPath)));
      else webviewPanel.dispose();
    } catch (err) {
      panel.showError(`Cannot restore this panel: ${(err as Error).message}`);
    }
  }
}

function formContent(runPath: string, run: AnalysisRun): SearchFormContent {
  const timesteps = run.plan.timesteps.filter((t) => t !== null).length;
  return {
    runPath,
    runName: path.basename(runPath),
    // Every setting of the run offered, as the CLI offers them without --settings.
    form: { ...DEFAULT_SEARCH_FORM, settings: [...run.plan.settings] },
    maxRanges: Math.max(1, timesteps),
    runSettings: [...run.plan.settings],
    units: run.plan.units.filter((unit) => unit !== ALL_UNIT),
  };
}

function formLimits(content: SearchFormContent): SearchFormLimits {
  return { maxRanges: content.maxRanges, settings: content.runSettings, units: content.units };
}

async function readReport(reportPath: string): Promise<SearchReport> {
  let value: unknown;
  try {
    value = JSON.parse(await fs.readFile(reportPath, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `${reportPath}: no search report here (the panel writes one beside each allocation it makes; allocations from the CLI have none)`
        : `${reportPath}: ${code ?? (err as Error).message}`,
    );
  }
  const problem = reportProblem(value);
  if (problem) throw new Error(`${reportPath}: not a QuantLens search report (${problem})`);
  return value as SearchReport;
}

function notifyProgress(name: string, controller: AbortController, done: Promise<unknown>): void {
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `QuantLens: searching bit allocations for ${name}`, cancellable: true },
    (_progress, token) => {
      token.onCancellationRequested(() => controller.abort());
      return done.then(
        () => undefined,
        () => undefined,
      );
    },
  );
}
