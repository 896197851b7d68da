// Host half of the inspector: a read-only custom editor whose webview shows one model's summary and layer table.
// The document owns one inspection (shared through EngineHost's cache); each editor panel replays it to its webview
// whenever that webview (re)loads and says 'ready', so hidden panels need not keep their context. When the file
// changes on disk (a training script exporting again), the document starts a new inspection and every panel shows it.
import * as path from 'path';
import * as vscode from 'vscode';
import type { HostToInspector, InspectorToHost } from '../../protocol/inspector';
import type { InspectorRendered } from '../../protocol/testApi';
import type { EngineHost } from '../engineHost';
import { describeFailure, Inspection, type InspectionUpdate } from '../inspection';
import { setUpWebview } from '../webview/setup';

export const INSPECTOR_VIEW_TYPE = 'quantlens.inspector';

/** Whether a tab (its input) is an inspector, of any model. */
export function isInspectorTab(input: unknown): input is vscode.TabInputCustom {
  return input instanceof vscode.TabInputCustom && input.viewType === INSPECTOR_VIEW_TYPE;
}

/** A file being written changes several times in a row: inspect it again once it has been quiet this long. */
const RELOAD_QUIET_MS = 500;

export class InspectorDocument implements vscode.CustomDocument {
  /** Started by the first editor that shows this document; replaced when the file changes on disk. */
  inspection: Promise<Inspection> | undefined;
  private watcher: vscode.Disposable | undefined;
  private quietTimer: NodeJS.Timeout | undefined;

  constructor(readonly uri: vscode.Uri) {}

  get fileName(): string {
    return path.basename(this.uri.fsPath || this.uri.path);
  }

  /** Calls `onChanged` when the file was changed, replaced or deleted and then left alone for RELOAD_QUIET_MS. */
  watch(onChanged: () => void): void {
    const fsPath = this.uri.fsPath;
    const name = path.basename(fsPath);
    // The pattern is the file's own name, unless that name would be read as glob syntax: then the folder's files.
    const pattern = /[*?[\]{}!]/.test(name) ? '*' : name;
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(path.dirname(fsPath)), pattern));
    const changed = (uri: vscode.Uri) => {
      if (uri.fsPath !== fsPath) return;
      clearTimeout(this.quietTimer);
      this.quietTimer = setTimeout(onChanged, RELOAD_QUIET_MS);
    };
    this.watcher = vscode.Disposable.from(watcher, watcher.onDidChange(changed), watcher.onDidCreate(changed), watcher.onDidDelete(changed));
  }

  dispose(): void {
    this.watcher?.dispose();
    clearTimeout(this.quietTimer);
    // Nobody shows this file any more: stop work nobody will see.
    void this.inspection?.then((inspection) => {
      if (inspection.running) inspection.cancel();
    });
  }
}

/** The model the Layers view follows: the one in the most recently active inspector. */
export interface ActiveModel {
  document: InspectorDocument;
  inspection: Promise<Inspection>;
}

class InspectorEditor {
  /** The layer the webview last said it shows selected. */
  selected: string | null = null;
  private subscription: { dispose(): void } | undefined;
  private ready = false;
  private pendingSelect: string | undefined;

  constructor(
    readonly document: InspectorDocument,
    readonly panel: vscode.WebviewPanel,
    private inspection: Promise<Inspection>,
  ) {}

  /** The webview (re)loaded: send it everything from the start. */
  async onReady(): Promise<void> {
    this.subscription?.dispose();
    this.subscription = undefined;
    this.ready = true;
    this.post({ type: 'loading', fileName: this.document.fileName });
    const pending = this.inspection;
    const inspection = await pending;
    // The file changed while this inspection was being looked up: the newer one has taken over.
    if (pending !== this.inspection) return;
    this.subscription = inspection.subscribe((update) => this.post(toMessage(update, this.document.fileName)));
    if (this.pendingSelect !== undefined) {
      this.post({ type: 'select', name: this.pendingSelect });
      this.pendingSelect = undefined;
    }
  }

  /** The file changed on disk: a webview that has loaded starts over with the new inspection (and says why). */
  async restart(inspection: Promise<Inspection>): Promise<void> {
    this.inspection = inspection;
    if (this.ready) await this.onReady();
  }

  select(name: string): void {
    if (this.ready) this.post({ type: 'select', name });
    else this.pendingSelect = name;
  }

  dispose(): void {
    this.subscription?.dispose();
  }

  private post(message: HostToInspector): void {
    void this.panel.webview.postMessage(message);
  }
}

export class InspectorProvider implements vscode.CustomReadonlyEditorProvider<InspectorDocument>, vscode.Disposable {
  private readonly editors = new Set<InspectorEditor>();
  private active: InspectorEditor | undefined;
  /** What each file's webview last reported, keyed by fsPath (the test API reads these). */
  private readonly rendered = new Map<string, InspectorRendered>();
  private readonly shownErrors = new Map<string, string>();

  private readonly activeModelEmitter = new vscode.EventEmitter<ActiveModel | undefined>();
  readonly onDidChangeActiveModel = this.activeModelEmitter.event;
  private readonly selectedEmitter = new vscode.EventEmitter<{ document: InspectorDocument; name: string }>();
  /** An inspector's selected layer changed: a click in its table, quantlens.revealLayer, a restored view. */
  readonly onDidSelectLayer = this.selectedEmitter.event;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly host: EngineHost,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  get activeModel(): ActiveModel | undefined {
    const editor = this.active;
    return editor && { document: editor.document, inspection: this.inspectionOf(editor.document) };
  }

  /** The layer selected in the active inspector, if any. */
  get activeSelection(): { document: InspectorDocument; name: string } | undefined {
    const editor = this.active;
    return editor?.selected ? { document: editor.document, name: editor.selected } : undefined;
  }

  lastRendered(fsPath: string): InspectorRendered | undefined {
    return this.rendered.get(fsPath);
  }

  lastError(fsPath: string): string | undefined {
    return this.shownErrors.get(fsPath);
  }

  /** Selects a layer in the inspector the user is looking at; false when no inspector is open. */
  selectLayer(name: string): boolean {
    const editor = this.editorInActiveTab() ?? this.active;
    if (!editor) return false;
    editor.select(name);
    return true;
  }

  /** The active tab can be newer than the last view-state event (right after vscode.openWith, say). */
  private editorInActiveTab(): InspectorEditor | undefined {
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
    if (!isInspectorTab(input)) return undefined;
    const editors = [...this.editors].filter((e) => e.document.uri.toString() === input.uri.toString());
    return editors.find((e) => e.panel.active) ?? editors.find((e) => e === this.active) ?? editors[0];
  }

  openCustomDocument(uri: vscode.Uri): InspectorDocument {
    const document = new InspectorDocument(uri);
    if (uri.scheme === 'file') document.watch(() => this.reload(document));
    return document;
  }

  resolveCustomEditor(document: InspectorDocument, panel: vscode.WebviewPanel): void {
    const fsPath = document.uri.fsPath;
    this.rendered.delete(fsPath);
    this.shownErrors.delete(fsPath);

    const webview = panel.webview;
    setUpWebview(webview, this.extensionUri, 'inspector', 'QuantLens Inspector');

    const editor = new InspectorEditor(document, panel, this.inspectionOf(document));
    this.editors.add(editor);
    const subscriptions: vscode.Disposable[] = [
      webview.onDidReceiveMessage((message: InspectorToHost) => this.onMessage(editor, message)),
      panel.onDidChangeViewState(() => {
        if (panel.active) this.setActive(editor);
      }),
    ];
    panel.onDidDispose(() => {
      subscriptions.forEach((s) => s.dispose());
      editor.dispose();
      this.editors.delete(editor);
      if (this.active === editor) {
        const next = [...this.editors].find((e) => e.panel.visible) ?? [...this.editors].pop();
        this.setActive(next);
      }
    });
    // A newly opened editor is the one the user is looking at.
    this.setActive(editor);
  }

  dispose(): void {
    this.activeModelEmitter.dispose();
    this.selectedEmitter.dispose();
  }

  private onMessage(editor: InspectorEditor, message: InspectorToHost): void {
    const fsPath = editor.document.uri.fsPath;
    switch (message?.type) {
      case 'ready':
        editor.onReady().catch((err) => this.log.error(`Inspector for ${fsPath}: ${String(err)}`));
        break;
      case 'selected':
        // A click: tell the Layers tree at once rather than after the next render report.
        if (typeof message.name === 'string') this.noteSelection(editor, message.name);
        break;
      case 'rendered':
        this.rendered.set(fsPath, message);
        this.noteSelection(editor, typeof message.selected === 'string' ? message.selected : null);
        break;
      case 'shownError':
        this.shownErrors.set(fsPath, message.message);
        break;
    }
  }

  private noteSelection(editor: InspectorEditor, name: string | null): void {
    if (editor.selected === name) return;
    editor.selected = name;
    if (name !== null) this.selectedEmitter.fire({ document: editor.document, name });
  }

  private setActive(editor: InspectorEditor | undefined): void {
    if (this.active === editor) return;
    this.active = editor;
    this.activeModelEmitter.fire(this.activeModel);
  }

  /** The document's inspection, started on first use with a cancellable progress notification. */
  private inspectionOf(document: InspectorDocument): Promise<Inspection> {
    document.inspection ??= this.startInspection(document);
    return document.inspection;
  }

  private async startInspection(document: InspectorDocument): Promise<Inspection> {
    if (document.uri.scheme !== 'file') {
      return Inspection.failed(document.uri.toString(), {
        code: 'bad-input',
        message: `${document.fileName}: QuantLens reads models from local files, and this one is not (${document.uri.scheme}:).`,
      });
    }
    const inspection = await this.host.inspect(document.uri.fsPath);
    if (inspection.running) showProgress(document.fileName, inspection);
    return inspection;
  }

  /** The file changed on disk: stop the inspection in flight, inspect it again, and show that in every view of it. */
  private reload(document: InspectorDocument): void {
    const fsPath = document.uri.fsPath;
    this.log.info(`${fsPath} changed on disk; inspecting it again`);
    const previous = document.inspection;
    document.inspection = (async () => {
      // Cancelled first, so the engine host does not hand the same unfinished run back.
      const old = await previous;
      if (old?.running) old.cancel();
      return this.startInspection(document);
    })();
    // What the webviews showed of the old file is stale; they report again as the new inspection arrives.
    this.rendered.delete(fsPath);
    this.shownErrors.delete(fsPath);
    for (const editor of this.editors) {
      if (editor.document !== document) continue;
      editor.restart(document.inspection).catch((err) => this.log.error(`Inspector for ${fsPath}: ${String(err)}`));
    }
    if (this.active?.document === document) this.activeModelEmitter.fire(this.activeModel);
  }
}

/**
 * Inspections that end sooner need no notification (the editor has its own progress bar): VS Code keeps a progress
 * notification up for at least 800 ms, so a quick one would outlive the work it reports.
 */
const NOTIFY_AFTER_MS = 500;
/**
 * The extension host forwards progress reports at most every 100 ms and drops one still waiting when the task ends;
 * the notification waits this long after its last report, so it closes showing "N of N layers".
 */
const LAST_REPORT_MS = 120;

/** A cancellable notification that follows the engine's progress events while a long inspection runs. */
function showProgress(fileName: string, inspection: Inspection): void {
  const timer = setTimeout(() => {
    if (inspection.running) notifyProgress(fileName, inspection);
  }, NOTIFY_AFTER_MS);
  void inspection.finished.then(() => clearTimeout(timer));
}

function notifyProgress(fileName: string, inspection: Inspection): void {
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `QuantLens: inspecting ${fileName}`, cancellable: true },
    (progress, token) =>
      new Promise<void>((resolve) => {
        token.onCancellationRequested(() => inspection.cancel());
        let reported = 0;
        const subscription = inspection.subscribe((update) => {
          if (update.kind !== 'progress' || update.total <= 0) return;
          const percent = (100 * update.done) / update.total;
          progress.report({ increment: percent - reported, message: `${update.done} of ${update.total} layers` });
          reported = percent;
          // Every layer is measured: close now rather than when the engine's final answer arrives.
          if (update.done >= update.total) setTimeout(resolve, LAST_REPORT_MS);
        });
        void inspection.finished.then(() => {
          subscription.dispose();
          // A failed or cancelled run has nothing more to report.
          if (inspection.failure) resolve();
          else setTimeout(resolve, LAST_REPORT_MS);
        });
      }),
  );
}

function toMessage(update: InspectionUpdate, fileName: string): HostToInspector {
  switch (update.kind) {
    case 'summary':
      return { type: 'summary', summary: update.summary };
    case 'layers':
      return { type: 'layers', layers: update.layers };
    case 'progress':
      return { type: 'progress', done: update.done, total: update.total };
    case 'done':
      return { type: 'done', elapsedMs: update.result.elapsedMs };
    case 'failed':
      return { type: 'error', message: describeFailure(update.failure, fileName) };
  }
}
