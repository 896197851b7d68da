// Host half of a QuantLens webview panel (sensitivity, search). Its webview does not keep its context when hidden:
// on every (re)load it says 'ready' and the host replays everything it shows.
import * as vscode from 'vscode';
import { setUpWebview } from './setup';

export abstract class ReplayPanel<ToHost extends { type: string }, ToWebview> {
  private ready = false;
  private isDisposed = false;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly disposedEmitter = new vscode.EventEmitter<void>();
  readonly onDidDispose = this.disposedEmitter.event;

  constructor(
    readonly panel: vscode.WebviewPanel,
    extensionUri: vscode.Uri,
    app: 'analysis' | 'search',
    title: string,
  ) {
    setUpWebview(panel.webview, extensionUri, app, title);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((message: ToHost) => {
        if (message?.type !== 'ready') return this.onMessage(message);
        this.ready = true;
        this.replay();
      }),
      // A hidden webview is destroyed; it says 'ready' again when shown.
      panel.onDidChangeViewState(() => {
        if (panel.visible) return;
        this.ready = false;
        this.onHidden();
      }),
      panel.onDidDispose(() => this.dispose()),
    );
  }

  get disposed(): boolean {
    return this.isDisposed;
  }

  dispose(): void {
    if (this.isDisposed) return;
    this.isDisposed = true;
    this.beforeDispose();
    this.disposables.forEach((d) => d.dispose());
    this.disposables.length = 0;
    this.disposedEmitter.fire();
    this.disposedEmitter.dispose();
  }

  /** Sends the webview everything it shows, from the start. */
  protected abstract replay(): void;

  /** Every message from the webview but 'ready'. */
  protected abstract onMessage(message: ToHost): void;

  protected onHidden(): void {}

  protected beforeDispose(): void {}

  /** For a change of what the panel shows: a webview that is not ready gets it on 'ready'. */
  protected replayIfReady(): void {
    if (this.ready) this.replay();
  }

  protected post(message: ToWebview): void {
    void this.panel.webview.postMessage(message);
  }
}

/** The open panels of one kind, and what the last of them to draw drew while it stays on screen (for the tests). */
export class OpenPanels<Panel extends ReplayPanel<{ type: string }, unknown>, Rendered> implements Iterable<Panel> {
  private readonly panels = new Set<Panel>();
  private last: { panel: Panel; rendered: Rendered } | undefined;

  add(panel: Panel): void {
    this.panels.add(panel);
    // A hidden panel's webview is destroyed: what it drew is no longer on screen.
    panel.panel.onDidChangeViewState(() => {
      if (!panel.panel.visible) this.forgetRendered(panel);
    });
    panel.onDidDispose(() => {
      this.panels.delete(panel);
      this.forgetRendered(panel);
    });
  }

  rendered(panel: Panel, rendered: Rendered): void {
    this.last = { panel, rendered };
  }

  get lastRendered(): Rendered | undefined {
    return this.last?.rendered;
  }

  get lastRenderedPanel(): Panel | undefined {
    return this.last?.panel;
  }

  [Symbol.iterator](): Iterator<Panel> {
    return this.panels[Symbol.iterator]();
  }

  private forgetRendered(panel: Panel): void {
    if (this.last?.panel === panel) this.last = undefined;
  }
}
