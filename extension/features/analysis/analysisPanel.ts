// Host half of one sensitivity panel: a webview panel that shows either the launch form for a model, a run as it
// streams, or a saved record. What it shows is also in its webview's saved state, so the serializer can restore it.
import * as path from 'path';
import * as vscode from 'vscode';
import type { AnalysisRun } from '../../protocol/analysis';
import type { AnalysisForm, AnalysisToHost, HostToAnalysis } from '../../protocol/analysisPanel';
import type { AnalysisRendered } from '../../protocol/testApi';
import { ReplayPanel } from '../webview/replayPanel';
import type { RunSession, RunUpdate } from './runSession';

export const ANALYSIS_VIEW_TYPE = 'quantlens.analysis';

export type { AnalysisRendered };

export interface FormContent {
  kind: 'form';
  modelPath: string;
  form: AnalysisForm;
  timestepInputs: string[];
}

type Content =
  | { kind: 'empty'; error?: string }
  | FormContent
  | { kind: 'session'; session: RunSession }
  | { kind: 'record'; run: AnalysisRun; recordPath: string };

/** What the panel asks of the feature that owns it. */
export interface PanelHost {
  start(panel: AnalysisPanel, form: AnalysisForm): void;
  newAnalysis(panel: AnalysisPanel): void;
  exportCsv(panel: AnalysisPanel): void;
  revealLayer(panel: AnalysisPanel, name: string): void;
  rendered(panel: AnalysisPanel, rendered: AnalysisRendered): void;
  log: vscode.LogOutputChannel;
}

export class AnalysisPanel extends ReplayPanel<AnalysisToHost, HostToAnalysis> {
  private content: Content = { kind: 'empty' };
  /** The model of the form, run or record shown. */
  private model: string | undefined;
  /** The last form shown: a run that fails before its plan is made goes back to it. */
  private lastForm: FormContent | undefined;
  /** The live session's updates, forwarded to the webview while it is shown. */
  private subscription: { dispose(): void } | undefined;

  constructor(
    panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly host: PanelHost,
  ) {
    super(panel, extensionUri, 'analysis', 'QuantLens Sensitivity');
  }

  /** The run this panel shows (live or saved), if any. */
  get run(): AnalysisRun | undefined {
    if (this.content.kind === 'session') return this.content.session.run;
    if (this.content.kind === 'record') return this.content.run;
    return undefined;
  }

  get recordPath(): string | undefined {
    if (this.content.kind === 'session') return this.content.session.recordPath;
    if (this.content.kind === 'record') return this.content.recordPath;
    return undefined;
  }

  get session(): RunSession | undefined {
    return this.content.kind === 'session' ? this.content.session : undefined;
  }

  /** The model this panel is about. */
  get modelPath(): string | undefined {
    return this.model;
  }

  /** Shows a problem instead of a form or a run (e.g. the model could not be read). */
  showError(error: string): void {
    this.setContent({ kind: 'empty', error });
  }

  showForm(content: Omit<FormContent, 'kind'>): void {
    this.panel.title = `Sensitivity: ${path.basename(content.modelPath)}`;
    this.model = content.modelPath;
    this.lastForm = { kind: 'form', ...content };
    this.setContent(this.lastForm);
  }

  showSession(session: RunSession, modelPath: string): void {
    this.panel.title = `Sensitivity: ${session.fileName}`;
    this.model = modelPath;
    this.setContent({ kind: 'session', session });
  }

  showRecord(run: AnalysisRun, recordPath: string): void {
    this.panel.title = `Sensitivity: ${run.model.fileName}`;
    this.model = run.settings.model;
    this.setContent({ kind: 'record', run, recordPath });
  }

  protected override onHidden(): void {
    this.unsubscribe();
  }

  protected override beforeDispose(): void {
    this.unsubscribe();
  }

  private unsubscribe(): void {
    this.subscription?.dispose();
    this.subscription = undefined;
  }

  private setContent(content: Content): void {
    this.unsubscribe();
    this.content = content;
    this.replayIfReady();
  }

  protected replay(): void {
    this.unsubscribe();
    const content = this.content;
    switch (content.kind) {
      case 'empty':
        if (content.error) this.post({ type: 'status', status: 'failed', message: content.error });
        break;
      case 'form':
        this.postForm(content);
        break;
      case 'session': {
        const { session } = content;
        if (!session.run && !session.running && this.lastForm) this.postForm(this.lastForm);
        this.subscription = session.subscribe((update) => this.post(toMessage(update, session.recordPath)));
        break;
      }
      case 'record': {
        const { run, recordPath } = content;
        this.post({ type: 'run', run, recordPath });
        const interrupted = run.status === 'running';
        // A record still marked running was left by a run whose engine (or VS Code) stopped before it ended.
        this.post({
          type: 'status',
          status: interrupted ? 'failed' : run.status,
          ...(interrupted
            ? { message: `This run stopped before it finished (its engine or VS Code exited); the record holds ${run.rows.length} of ${run.plan.total} cells.` }
            : run.message ? { message: run.message } : {}),
        });
        break;
      }
    }
  }

  protected onMessage(message: AnalysisToHost): void {
    switch (message?.type) {
      case 'start': {
        // From the form, also again after a run that ended before its plan was made (a bad calibration file, say).
        const session = this.session;
        if (this.content.kind === 'form' || (session && !session.running && !session.run)) this.host.start(this, message.form);
        break;
      }
      case 'newAnalysis':
        if (!this.session?.running) this.host.newAnalysis(this);
        break;
      case 'cancel':
        this.session?.cancel();
        break;
      case 'exportCsv':
        this.host.exportCsv(this);
        break;
      case 'searchAllocation':
        if (this.recordPath) void vscode.commands.executeCommand('quantlens.searchMixedPrecision', vscode.Uri.file(this.recordPath));
        break;
      case 'revealLayer':
        if (typeof message.name === 'string') this.host.revealLayer(this, message.name);
        break;
      case 'rendered':
        this.host.rendered(this, message);
        break;
    }
  }

  private postForm(content: FormContent): void {
    this.post({
      type: 'form',
      fileName: path.basename(content.modelPath),
      form: content.form,
      timestepInputs: content.timestepInputs,
      modelPath: content.modelPath,
    });
  }
}

function toMessage(update: RunUpdate, recordPath: string): HostToAnalysis {
  switch (update.kind) {
    case 'run':
      return { type: 'run', run: update.run, recordPath };
    case 'rows':
      return { type: 'rows', rows: update.rows, ranges: update.ranges };
    case 'progress':
      return { type: 'progress', done: update.done, total: update.total, etaMs: update.etaMs };
    case 'status':
      return { type: 'status', status: update.status, ...(update.message ? { message: update.message } : {}) };
  }
}
