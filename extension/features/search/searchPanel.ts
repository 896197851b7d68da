// Host half of one "QuantLens Search" panel: the launch form for a run, a search as it runs (progress, refinement
// steps, Cancel), then the report (front, predicted against measured, the allocation heatmap) with Export QDQ and
// Open allocation JSON. The saved webview state holds the run or report path for the serializer.
import * as path from 'path';
import * as vscode from 'vscode';
import type { ExportReport, HostToSearch, SearchForm, SearchReport, SearchReportStep, SearchToHost } from '../../protocol/searchPanel';
import type { SearchRendered } from '../../protocol/testApi';
import { ReplayPanel } from '../webview/replayPanel';

export const SEARCH_VIEW_TYPE = 'quantlens.search';
/** The panel's Export button runs this command, so the walkthrough's export step sees it. */
export const EXPORT_QDQ_COMMAND = 'quantlens.exportQdq';

export interface SearchFormContent {
  runPath: string;
  runName: string;
  form: SearchForm;
  maxRanges: number;
  /** The run's setting ids: the form's checkboxes. */
  runSettings: string[];
  /** The run's searchable units: what the pin pattern is matched against. */
  units: string[];
}

type Content =
  | { kind: 'empty'; error?: string }
  | ({ kind: 'form' } & SearchFormContent)
  | { kind: 'running'; progress?: { stage: string; done: number; total: number }; steps: SearchReportStep[] }
  | { kind: 'report'; report: SearchReport; reportPath?: string; exported?: ExportReport };

export interface SearchPanelHost {
  start(panel: SearchPanel, form: SearchForm): void;
  newSearch(panel: SearchPanel): void;
  openAllocation(panel: SearchPanel): void;
  rendered(panel: SearchPanel, rendered: SearchRendered): void;
}

export class SearchPanel extends ReplayPanel<SearchToHost, HostToSearch> {
  private content: Content = { kind: 'empty' };
  /** The run the form or search is for (kept while the search runs, for New search). */
  runPath: string | undefined;
  /** Aborts the search in flight. */
  controller: AbortController | undefined;
  private lastStatus: Extract<HostToSearch, { type: 'status' }> | undefined;

  constructor(
    panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    private readonly host: SearchPanelHost,
  ) {
    super(panel, extensionUri, 'search', 'QuantLens Search');
  }

  get report(): SearchReport | undefined {
    return this.content.kind === 'report' ? this.content.report : undefined;
  }

  get running(): boolean {
    return this.content.kind === 'running';
  }

  showError(error: string): void {
    this.setContent({ kind: 'empty', error });
  }

  showForm(content: SearchFormContent): void {
    this.panel.title = `Search: ${content.runName}`;
    this.runPath = content.runPath;
    this.lastStatus = undefined;
    this.setContent({ kind: 'form', ...content });
  }

  showRunning(): void {
    this.lastStatus = { type: 'status', status: 'running' };
    this.setContent({ kind: 'running', steps: [] });
  }

  progress(stage: string, done: number, total: number): void {
    if (this.content.kind !== 'running') return;
    this.content.progress = { stage, done, total };
    this.post({ type: 'progress', stage, done, total });
  }

  step(step: SearchReportStep): void {
    if (this.content.kind !== 'running') return;
    this.content.steps.push(step);
    this.post({ type: 'step', step });
  }

  showReport(report: SearchReport, reportPath?: string): void {
    this.panel.title = `Search: ${path.basename(report.modelPath)}`;
    if (report.runPath) this.runPath = report.runPath;
    this.lastStatus = { type: 'status', status: 'complete' };
    this.setContent({ kind: 'report', report, ...(reportPath ? { reportPath } : {}) });
  }

  showExported(exported: ExportReport): void {
    if (this.content.kind !== 'report') return;
    this.content.exported = exported;
    this.post({ type: 'exported', report: exported });
  }

  /** A search that ended without a report: back to the form when there is one, with the reason. */
  ended(status: 'cancelled' | 'failed', message: string, form?: SearchFormContent): void {
    if (form) this.setContent({ kind: 'form', ...form });
    else this.setContent({ kind: 'empty' });
    this.lastStatus = { type: 'status', status, message };
    this.post(this.lastStatus);
  }

  status(status: 'running' | 'complete' | 'failed', message?: string): void {
    this.post({ type: 'status', status, ...(message ? { message } : {}) });
  }

  protected override beforeDispose(): void {
    this.controller?.abort();
  }

  private setContent(content: Content): void {
    this.content = content;
    this.replayIfReady();
  }

  protected replay(): void {
    const content = this.content;
    switch (content.kind) {
      case 'empty':
        if (content.error) this.post({ type: 'status', status: 'failed', message: content.error });
        break;
      case 'form':
        this.post({
          type: 'form',
          runPath: content.runPath,
          runName: content.runName,
          form: content.form,
          maxRanges: content.maxRanges,
          runSettings: content.runSettings,
          units: content.units,
          modelMB: null,
        });
        break;
      case 'running':
        this.post({ type: 'status', status: 'running' });
        if (content.progress) this.post({ type: 'progress', ...content.progress });
        for (const step of content.steps) this.post({ type: 'step', step });
        return;
      case 'report':
        this.post({ type: 'report', report: content.report, ...(content.reportPath ? { reportPath: content.reportPath } : {}) });
        if (content.exported) this.post({ type: 'exported', report: content.exported });
        break;
    }
    if (this.lastStatus && this.lastStatus.status !== 'running') this.post(this.lastStatus);
  }

  protected onMessage(message: SearchToHost): void {
    switch (message?.type) {
      case 'start':
        if (this.content.kind === 'form') this.host.start(this, message.form);
        break;
      case 'cancel':
        this.controller?.abort();
        break;
      case 'newSearch':
        if (!this.running) this.host.newSearch(this);
        break;
      case 'exportQdq':
        void vscode.commands.executeCommand(EXPORT_QDQ_COMMAND, this);
        break;
      case 'openAllocation':
        this.host.openAllocation(this);
        break;
      case 'rendered':
        this.host.rendered(this, message);
        break;
    }
  }
}
