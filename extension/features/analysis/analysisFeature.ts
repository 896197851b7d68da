// The sensitivity-analysis feature: "QuantLens: Analyze Sensitivity" (palette, explorer, inspector title bar) opens a
// panel with the launch form; Start runs the engine's `analyze`, saving the record under `.quantlens/runs/` and
// streaming rows to the panel with a cancellable progress notification. "QuantLens: Open Analysis Run" reopens a saved
// record; a serializer restores panels when VS Code reopens.
import { promises as fs } from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { loadRun, runToCsv } from '../../engine/runs/records';
import type { AnalysisRun } from '../../protocol/analysis';
import type { AnalysisForm } from '../../protocol/analysisPanel';
import type { ModelSummary } from '../../protocol/records';
import type { AnalysisRunState } from '../../protocol/testApi';
import type { EngineHost } from '../engineHost';
import type { Inspection } from '../inspection';
import { INSPECTOR_VIEW_TYPE, isInspectorTab, type InspectorProvider } from '../inspector/inspectorProvider';
import { REVEAL_LAYER_COMMAND } from '../layersView/layersView';
import { freshPath } from '../freshPath';
import { requireTrust } from '../trust';
import { fromWalkthrough, reachedMilestone } from '../walkthrough';
import { OpenPanels } from '../webview/replayPanel';
import { AnalysisPanel, ANALYSIS_VIEW_TYPE, type AnalysisRendered, type PanelHost } from './analysisPanel';
import { RunSession } from './runSession';
import { analysisSettings, applyOverrides, formFromConfig, recordFileName, type AnalysisConfig } from './settings';

export const ANALYZE_SENSITIVITY_COMMAND = 'quantlens.analyzeSensitivity';
export const OPEN_RUN_COMMAND = 'quantlens.openRun';
/** Where runs are saved, relative to the workspace folder (or the model's folder outside a workspace). */
export const RUNS_FOLDER = path.join('.quantlens', 'runs');

export class AnalysisFeature implements PanelHost, vscode.Disposable {
  private readonly panels = new OpenPanels<AnalysisPanel, AnalysisRendered>();
  private lastSession: RunSession | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly engine: EngineHost,
    private readonly inspector: InspectorProvider,
    readonly log: vscode.LogOutputChannel,
  ) {}

  register(): vscode.Disposable[] {
    return [
      // Explorer: (clicked uri, selection); editor title: (uri, {groupId}); tests: (uri, form overrides).
      vscode.commands.registerCommand(ANALYZE_SENSITIVITY_COMMAND, (target?: unknown, options?: unknown) =>
        this.analyzeCommand(target, options),
      ),
      vscode.commands.registerCommand(OPEN_RUN_COMMAND, (target?: unknown) => this.openRunCommand(target)),
      vscode.window.registerWebviewPanelSerializer(ANALYSIS_VIEW_TYPE, {
        deserializeWebviewPanel: (panel, state: unknown) => this.restore(panel, state),
      }),
    ];
  }

  // ----- test API -----
  /** The last draw a panel reported, while that panel is visible. */
  analysisRendered(): AnalysisRendered | undefined {
    return this.panels.lastRendered;
  }

  lastRunPath(): string | undefined {
    return this.lastSession?.recordPath;
  }

  lastRunState(): AnalysisRunState | undefined {
    const session = this.lastSession;
    if (!session) return undefined;
    return {
      recordPath: session.recordPath,
      status: session.status,
      rows: session.run?.rows.length ?? 0,
      total: session.run?.plan.total,
      ...(session.message ? { message: session.message } : {}),
    };
  }

  // ----- commands -----

  /**
   * Opens the launch form for a model; with `options` (AnalysisForm fields) it starts right away with the form's
   * defaults overridden by them and resolves to the record's path.
   */
  private async analyzeCommand(target: unknown, options: unknown): Promise<string | undefined> {
    if (!(await requireTrust('Sensitivity analysis'))) return undefined;
    const uri = target instanceof vscode.Uri ? target : await this.modelToAnalyze();
    if (!uri) return undefined;
    const beside = fromWalkthrough(target);
    if (uri.scheme !== 'file' || !/\.onnx$/i.test(uri.fsPath)) {
      void vscode.window.showErrorMessage(
        `QuantLens: ${path.basename(uri.fsPath || uri.path)}: sensitivity analysis runs ONNX models (a safetensors checkpoint has weights but no graph to run).`,
      );
      return undefined;
    }
    // Explorer passes the selection (an array) second; only a plain object is a set of form overrides.
    const overrides = options && typeof options === 'object' && !Array.isArray(options) && !('groupId' in options) ? options : undefined;
    const panel = this.createPanel(undefined, beside);
    const prefilled = await this.prefill(panel, uri.fsPath);
    if (!prefilled || overrides === undefined) return undefined;
    let form: AnalysisForm;
    try {
      form = applyOverrides(prefilled.form, overrides);
    } catch (err) {
      panel.showError((err as Error).message);
      throw err;
    }
    return this.start(panel, form);
  }

  private async openRunCommand(target: unknown): Promise<void> {
    let uri = target instanceof vscode.Uri ? target : undefined;
    if (!uri) {
      const folder = vscode.workspace.workspaceFolders?.[0];
      const picked = await vscode.window.showOpenDialog({
        title: 'QuantLens: Open Analysis Run',
        canSelectMany: false,
        filters: { 'Analysis runs': ['json'] },
        openLabel: 'Open Run',
        ...(folder ? { defaultUri: vscode.Uri.joinPath(folder.uri, ...RUNS_FOLDER.split(path.sep)) } : {}),
      });
      uri = picked?.[0];
    }
    if (!uri) return;
    const recordPath = uri.fsPath;
    const open = [...this.panels].find((p) => p.recordPath === recordPath);
    if (open) {
      open.panel.reveal();
      return;
    }
    let run: AnalysisRun;
    try {
      run = await loadRun(recordPath);
    } catch (err) {
      void vscode.window.showErrorMessage(`QuantLens: ${(err as Error).message}`);
      return;
    }
    this.createPanel().showRecord(run, recordPath);
  }

  // ----- PanelHost -----

  /** Starts a run for the panel's model; resolves to the record's path once the engine has it. */
  start(panel: AnalysisPanel, form: AnalysisForm): Promise<string | undefined> {
    return this.startRun(panel, form).catch((err: Error) => {
      panel.showError(err.message);
      void vscode.window.showErrorMessage(`QuantLens: ${err.message}`);
      return undefined;
    });
  }

  newAnalysis(panel: AnalysisPanel): void {
    const model = panel.modelPath;
    if (!model) return;
    void this.prefill(panel, model);
  }

  exportCsv(panel: AnalysisPanel): void {
    const run = panel.run;
    const recordPath = panel.recordPath;
    if (!run || !recordPath) return;
    const csvPath = recordPath.replace(/\.json$/i, '') + '.csv';
    fs.writeFile(csvPath, runToCsv(run)).then(
      async () => {
        this.log.info(`Wrote ${csvPath} (${run.rows.length} rows)`);
        const choice = await vscode.window.showInformationMessage(`QuantLens: wrote ${path.basename(csvPath)} (${run.rows.length} rows).`, 'Open');
        if (choice) await vscode.window.showTextDocument(vscode.Uri.file(csvPath));
      },
      (err: NodeJS.ErrnoException) => {
        void vscode.window.showErrorMessage(`QuantLens: cannot write ${csvPath}: ${err.code ?? err.message}`);
      },
    );
  }

  /** Shows the layer in the model's inspector, beside the panel, then gives the panel its focus back. */
  revealLayer(panel: AnalysisPanel, name: string): void {
    const model = panel.modelPath;
    if (!model) return;
    void (async () => {
      const uri = vscode.Uri.file(model);
      try {
        await fs.access(model);
      } catch {
        void vscode.window.showWarningMessage(`QuantLens: ${model} is not there any more; cannot show ${name} in the inspector.`);
        return;
      }
      const column = inspectorColumn(uri, panel.panel.viewColumn);
      await vscode.commands.executeCommand('vscode.openWith', uri, INSPECTOR_VIEW_TYPE, { viewColumn: column, preserveFocus: false });
      await vscode.commands.executeCommand(REVEAL_LAYER_COMMAND, name);
      panel.panel.reveal(panel.panel.viewColumn, false);
    })().catch((err) => this.log.error(`Revealing ${name} of ${model}: ${String(err)}`));
  }

  rendered(panel: AnalysisPanel, rendered: AnalysisRendered): void {
    this.panels.rendered(panel, rendered);
  }

  dispose(): void {
    for (const panel of [...this.panels]) panel.session?.cancel();
  }

  // ----- internals -----

  /** `beside`: next to the active editor whatever it is (the walkthrough's links). */
  private createPanel(panel?: vscode.WebviewPanel, beside = false): AnalysisPanel {
    // Next to an inspector the user is looking at, so clicking a cell can show the layer there.
    const besideInspector = beside || activeInspectorTab() !== undefined;
    const webviewPanel =
      panel ??
      vscode.window.createWebviewPanel(
        ANALYSIS_VIEW_TYPE,
        'Sensitivity',
        { viewColumn: besideInspector ? vscode.ViewColumn.Beside : vscode.ViewColumn.Active, preserveFocus: false },
        { enableScripts: true, retainContextWhenHidden: false },
      );
    const analysisPanel = new AnalysisPanel(webviewPanel, this.extensionUri, this);
    this.panels.add(analysisPanel);
    analysisPanel.onDidDispose(() => {
      // Closing the panel of a running analysis stops it; the finished rows stay in the record.
      if (analysisPanel.session?.running) analysisPanel.session.cancel();
    });
    return analysisPanel;
  }

  /** The form prefilled from the settings and the model's inputs (from its inspection's summary). */
  private async prefill(panel: AnalysisPanel, modelPath: string): Promise<{ form: AnalysisForm; timestepInputs: string[] } | undefined> {
    const summary = await summaryOf(await this.engine.inspect(modelPath));
    if (typeof summary === 'string') {
      panel.showError(summary);
      void vscode.window.showErrorMessage(`QuantLens: ${summary}`);
      return undefined;
    }
    const prefilled = formFromConfig(analysisConfig(vscode.Uri.file(modelPath)), summary.inputs);
    // The user may have closed the panel meanwhile.
    if (!panel.disposed) panel.showForm({ modelPath, ...prefilled });
    return prefilled;
  }

  private async startRun(panel: AnalysisPanel, form: AnalysisForm): Promise<string> {
    const model = panel.modelPath;
    if (!model) throw new Error('this panel has no model to analyze');
    const baseDir = outputBase(model);
    const config = analysisConfig(vscode.Uri.file(model));
    // Refuses a form that formProblem refuses, before anything is written.
    const settings = analysisSettings(form, { model, baseDir, executionProvider: config.executionProvider, groups: config.groups });
    const runsDir = path.join(baseDir, RUNS_FOLDER);
    await fs.mkdir(runsDir, { recursive: true });
    const recordPath = await freshPath(path.join(runsDir, recordFileName(model, new Date())));
    const fileName = path.basename(model);
    this.log.info(`Analyzing ${model}: ${settings.settings.map((s) => s.id).join(', ')}; record ${recordPath}`);

    const started = Date.now();
    const session = new RunSession(recordPath, fileName, (onEvent, signal) =>
      this.engine.analyze({ settings, recordPath }, onEvent, signal),
    );
    this.lastSession = session;
    panel.showSession(session, model);
    notifyProgress(session);
    void session.finished.then(() => this.ended(session, Date.now() - started));
    return recordPath;
  }

  private ended(session: RunSession, elapsedMs: number): void {
    const rows = session.run?.rows.length ?? 0;
    const seconds = (elapsedMs / 1000).toFixed(1);
    switch (session.status) {
      case 'complete':
        this.log.info(`Analysis of ${session.fileName} complete: ${rows} cells in ${seconds} s, saved at ${session.recordPath}`);
        reachedMilestone('analyzed');
        break;
      case 'cancelled':
        this.log.info(`Analysis of ${session.fileName} cancelled after ${seconds} s: ${session.message ?? ''}`);
        break;
      default: {
        const message = session.message ?? 'the run failed';
        this.log.error(`Analysis of ${session.fileName} failed after ${seconds} s: ${message}`);
        void vscode.window.showErrorMessage(`QuantLens: analysis of ${session.fileName} failed: ${message}`, 'Show Log').then((choice) => {
          if (choice) this.log.show();
        });
      }
    }
  }

  /** Reopens a panel VS Code saved: a run's record, or the form for a model. */
  private async restore(webviewPanel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const panel = this.createPanel(webviewPanel);
    const saved = (state ?? {}) as { recordPath?: unknown; modelPath?: unknown };
    if (typeof saved.recordPath === 'string') {
      try {
        panel.showRecord(await loadRun(saved.recordPath), saved.recordPath);
      } catch (err) {
        panel.showError(`Cannot restore this panel: ${(err as Error).message}`);
      }
    } else if (typeof saved.modelPath === 'string') {
      await this.prefill(panel, saved.modelPath);
    } else {
      webviewPanel.dispose();
    }
  }

  /** The model in the active inspector, else one the user picks from the workspace. */
  private async modelToAnalyze(): Promise<vscode.Uri | undefined> {
    const active = activeInspectorTab() ?? onlyVisibleInspectorTab();
    if (active) return active.uri;
    const fromInspector = this.inspector.activeModel?.document.uri;
    const files = await vscode.workspace.findFiles('**/*.onnx', '**/node_modules/**', 1000);
    // The inspected model may live outside the workspace (the walkthrough's sample does).
    if (fromInspector && /\.onnx$/i.test(fromInspector.fsPath) && !files.some((uri) => uri.fsPath === fromInspector.fsPath)) files.push(fromInspector);
    const items = files
      .map((uri) => ({ label: path.basename(uri.fsPath), description: vscode.workspace.asRelativePath(uri), uri }))
      .sort((a, b) => a.description.localeCompare(b.description));
    // The model last shown in an inspector first.
    if (fromInspector) items.sort((a, b) => Number(b.uri.fsPath === fromInspector.fsPath) - Number(a.uri.fsPath === fromInspector.fsPath));
    const browse = { label: '$(folder-opened) Browse…', description: '', alwaysShow: true, uri: undefined };
    const choice = await vscode.window.showQuickPick([...items, browse], {
      title: 'QuantLens: Analyze Sensitivity',
      placeHolder: 'Choose an ONNX model',
      matchOnDescription: true,
      // Opened from the walkthrough, whose page can take focus back as the step expands: keep the picker up.
      ignoreFocusOut: true,
    });
    if (!choice) return undefined;
    if (choice.uri) return choice.uri;
    const picked = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'ONNX models': ['onnx'] }, openLabel: 'Analyze' });
    return picked?.[0];
  }
}

/** The workspace folder holding `file`, else the first one, else the file's folder: runs and searches are saved under it. */
export function outputBase(file: string): string {
  const folder = vscode.workspace.getWorkspaceFolder(vscode.Uri.file(file)) ?? vscode.workspace.workspaceFolders?.[0];
  return folder?.uri.fsPath ?? path.dirname(file);
}

function analysisConfig(scope: vscode.Uri): AnalysisConfig {
  const config = vscode.workspace.getConfiguration('quantlens.analysis', scope);
  const keys: (keyof AnalysisConfig)[] = [
    'weightBits', 'activationBits', 'activationMode', 'combine', 'groupSize', 'weightSymmetric', 'unit', 'samples', 'dims', 'timesteps', 'calibrationSource',
    'executionProvider', 'groups', 'extraActivationTensors',
  ];
  return Object.fromEntries(keys.map((key) => [key, config.get<unknown>(key)]));
}

/** The model summary of an inspection as soon as it is known, or the sentence saying why there is none. */
function summaryOf(inspection: Inspection): Promise<ModelSummary | string> {
  return new Promise((resolve) => {
    if (inspection.summary) return resolve(inspection.summary);
    const subscription = inspection.subscribe((update) => {
      if (update.kind === 'summary') resolve(update.summary);
      else if (update.kind === 'done') resolve(update.result.summary);
      else if (update.kind === 'failed') resolve(update.failure.message);
      else return;
      queueMicrotask(() => subscription.dispose());
    });
  });
}

/** The active tab when it is an inspector. */
function activeInspectorTab(): vscode.TabInputCustom | undefined {
  const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
  return isInspectorTab(input) ? input : undefined;
}

/** The inspector shown in some editor group when it is the only one (e.g. beside the walkthrough). */
function onlyVisibleInspectorTab(): vscode.TabInputCustom | undefined {
  const shown = vscode.window.tabGroups.all.map((group) => group.activeTab?.input).filter(isInspectorTab);
  return shown.length === 1 ? shown[0] : undefined;
}

/** The column of an inspector already showing `uri` outside the panel's column, else the one beside the panel. */
function inspectorColumn(uri: vscode.Uri, panelColumn: vscode.ViewColumn | undefined): vscode.ViewColumn {
  for (const group of vscode.window.tabGroups.all) {
    if (group.viewColumn === panelColumn) continue;
    const shows = group.tabs.some((tab) => isInspectorTab(tab.input) && tab.input.uri.fsPath === uri.fsPath);
    if (shows) return group.viewColumn;
  }
  return vscode.ViewColumn.Beside;
}

/** A cancellable notification following the run's progress, with the engine's estimate of the time left. */
function notifyProgress(session: RunSession): void {
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `QuantLens: analyzing ${session.fileName}`, cancellable: true },
    (progress, token) =>
      new Promise<void>((resolve) => {
        token.onCancellationRequested(() => session.cancel());
        let reported = 0;
        const subscription = session.subscribe((update) => {
          if (update.kind !== 'progress' || update.total <= 0) return;
          const percent = (100 * update.done) / update.total;
          const eta = update.etaMs === null ? '' : `, about ${formatEta(update.etaMs)} left`;
          progress.report({ increment: percent - reported, message: `${update.done} of ${update.total} cells${eta}` });
          reported = percent;
        }, false);
        void session.finished.then(() => {
          subscription.dispose();
          resolve();
        });
      }),
  );
}

function formatEta(ms: number): string {
  const s = Math.max(1, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
