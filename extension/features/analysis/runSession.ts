// One sensitivity run as the host sees it: the engine's streamed events accumulated into a record, so a panel whose
// webview reloads (it does not keep its context when hidden) can be sent the whole state again, and how the run ended
// in words. No vscode import: unit-tested against the real engine process.
import * as fs from 'fs';
import type { ActivationRange, AnalysisRun, RunStatus, SensitivityRow } from '../../protocol/analysis';
import type { AnalysisEvent, ErrorCode } from '../../protocol/engine';
import { toFailure } from '../inspection';

export type RunUpdate =
  /** The record so far: sent when the plan is made, and again if the final record holds rows never streamed. */
  | { kind: 'run'; run: AnalysisRun }
  | { kind: 'rows'; rows: SensitivityRow[]; ranges: ActivationRange[] }
  | { kind: 'progress'; done: number; total: number; etaMs: number | null }
  | { kind: 'status'; status: RunStatus; message?: string };

export type StartAnalysis = (onEvent: (event: AnalysisEvent) => void, signal: AbortSignal) => Promise<AnalysisRun>;

export interface RunFailure {
  code: ErrorCode;
  message: string;
  file?: string;
}

export class RunSession {
  /** Undefined until the engine has made the plan. */
  run: AnalysisRun | undefined;
  progress: { done: number; total: number; etaMs: number | null } | undefined;
  status: RunStatus = 'running';
  /** How the run ended, in a sentence, when it did not complete (or completed with a note). */
  message: string | undefined;
  failure: RunFailure | undefined;
  /** Settles when the run ends, however it ends; never rejects. */
  readonly finished: Promise<void>;

  private readonly abort = new AbortController();
  private readonly listeners = new Set<(update: RunUpdate) => void>();
  private streamedRows = 0;
  /** layer and timestep of every range held: the engine sends the ranges with 'started' and again as rows. */
  private readonly rangeKeys = new Set<string>();

  constructor(
    readonly recordPath: string,
    readonly fileName: string,
    start: StartAnalysis,
  ) {
    this.finished = (async () => {
      try {
        const result = await start((event) => this.apply(event), this.abort.signal);
        const missed = result.rows.length !== this.streamedRows;
        this.run = result;
        if (missed) this.emit({ kind: 'run', run: result });
        this.end(result.status, result.message);
      } catch (err) {
        const failure = toFailure(err);
        const file = (err as { file?: unknown } | null)?.file;
        this.failure = { ...failure, ...(typeof file === 'string' ? { file } : {}) };
        this.end(failure.code === 'cancelled' ? 'cancelled' : 'failed', this.describeFailure(this.failure));
      }
    })();
  }

  get running(): boolean {
    return this.status === 'running';
  }

  /** Asks the engine to stop; it keeps the finished rows in the record. */
  cancel(): void {
    this.abort.abort();
  }

  /** Calls `listener` for every later update; with `replay`, first with the state so far. */
  subscribe(listener: (update: RunUpdate) => void, replay = true): { dispose(): void } {
    if (replay) {
      if (this.run) listener({ kind: 'run', run: this.run });
      if (this.progress && this.running) listener({ kind: 'progress', ...this.progress });
      listener({ kind: 'status', status: this.status, ...(this.message ? { message: this.message } : {}) });
    }
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private apply(event: AnalysisEvent): void {
    if (!this.running) return;
    switch (event.kind) {
      case 'started':
        this.run = { ...event.run, rows: [...event.run.rows], ranges: [] };
        this.addRanges(event.run.ranges);
        this.streamedRows = this.run.rows.length;
        this.emit({ kind: 'run', run: this.run });
        break;
      case 'rows': {
        if (!this.run) return;
        this.run.rows.push(...event.rows);
        const ranges = this.addRanges(event.ranges);
        this.streamedRows += event.rows.length;
        if (event.rows.length > 0 || ranges.length > 0) this.emit({ kind: 'rows', rows: event.rows, ranges });
        break;
      }
      case 'progress':
        this.progress = { done: event.done, total: event.total, etaMs: event.etaMs };
        this.emit({ kind: 'progress', ...this.progress });
        break;
    }
  }

  /** Adds the ranges not held yet and returns them. */
  private addRanges(ranges: readonly ActivationRange[]): ActivationRange[] {
    const added = ranges.filter((range) => {
      const key = `${range.layer}\u0000${String(range.timestep)}`;
      if (this.rangeKeys.has(key)) return false;
      this.rangeKeys.add(key);
      return true;
    });
    this.run?.ranges.push(...added);
    return added;
  }

  private end(status: RunStatus, message: string | undefined): void {
    this.status = status;
    this.message = message;
    if (this.run) {
      this.run.status = status;
      if (message) this.run.message = message;
    }
    this.emit({ kind: 'status', status, ...(message ? { message } : {}) });
  }

  private describeFailure(failure: RunFailure): string {
    const kept = this.run ? `${this.run.rows.length} of ${this.run.plan.total} cells` : 'no cells';
    const saved = fs.existsSync(this.recordPath);
    switch (failure.code) {
      case 'cancelled':
        return saved ? `Cancelled with ${kept} finished; they are saved in ${this.recordPath}.` : 'Cancelled before any cell finished.';
      case 'engine-crashed':
        return saved
          ? `The engine stopped; partial results (${kept}) saved at ${this.recordPath}.`
          : `The engine stopped before any result was saved. ${failure.message}`;
      case 'bad-input':
        return failure.file && !failure.message.includes(failure.file) ? `${failure.file}: ${failure.message}` : failure.message;
      case 'internal':
        return `Internal error: ${failure.message} (details in the QuantLens log).`;
    }
  }

  private emit(update: RunUpdate): void {
    for (const listener of [...this.listeners]) listener(update);
  }
}
