// One inspection of one model file: the engine's streamed events, accumulated so that any number of consumers
// (inspector editors, the Layers view) can join at any time and see the same data. No vscode import: unit-tested.
import type { ErrorCode, InspectEvent, InspectResult } from '../protocol/engine';
import type { LayerRecord, ModelSummary } from '../protocol/records';

export interface InspectionFailure {
  code: ErrorCode;
  message: string;
}

export type InspectionUpdate =
  | InspectEvent
  | { kind: 'done'; result: InspectResult }
  | { kind: 'failed'; failure: InspectionFailure };

export type RunInspection = (onEvent: (event: InspectEvent) => void, signal: AbortSignal) => Promise<InspectResult>;

const ERROR_CODES: readonly ErrorCode[] = ['bad-input', 'cancelled', 'engine-crashed', 'internal'];

/** Engine errors carry a code; anything else (a bug, a failed spawn) is internal. */
export function toFailure(err: unknown): InspectionFailure {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  return { code: ERROR_CODES.includes(code as ErrorCode) ? (code as ErrorCode) : 'internal', message };
}

export class Inspection {
  summary: ModelSummary | undefined;
  readonly layers: LayerRecord[] = [];
  progress: { done: number; total: number } | undefined;
  result: InspectResult | undefined;
  failure: InspectionFailure | undefined;
  /** Settles when the inspection ends, successfully or not; never rejects. */
  readonly finished: Promise<void>;

  private readonly listeners = new Set<(update: InspectionUpdate) => void>();
  private readonly abort = new AbortController();

  constructor(
    readonly path: string,
    run: RunInspection,
  ) {
    this.finished = (async () => {
      try {
        const result = await run((event) => this.apply(event), this.abort.signal);
        this.result = result;
        this.summary ??= result.summary;
        this.emit({ kind: 'done', result });
      } catch (err) {
        this.failure = toFailure(err);
        this.emit({ kind: 'failed', failure: this.failure });
      }
    })();
  }

  /** An inspection that has already failed, for problems found before the engine is asked. */
  static failed(path: string, failure: InspectionFailure): Inspection {
    return new Inspection(path, () => Promise.reject(Object.assign(new Error(failure.message), { code: failure.code })));
  }

  get running(): boolean {
    return !this.result && !this.failure;
  }

  /** True once cancel() was called, even before the engine has answered. */
  get cancelRequested(): boolean {
    return this.abort.signal.aborted;
  }

  cancel(): void {
    this.abort.abort();
  }

  /**
   * Calls `listener` for every later update. With `replay`, first delivers the state so far (summary, layers in
   * batches of `batchSize`, progress, and the outcome if there is one), so a late consumer sees what an early one saw.
   */
  subscribe(listener: (update: InspectionUpdate) => void, replay = true, batchSize = 1000): { dispose(): void } {
    if (replay) {
      if (this.summary) listener({ kind: 'summary', summary: this.summary });
      for (let i = 0; i < this.layers.length; i += batchSize) {
        listener({ kind: 'layers', layers: this.layers.slice(i, i + batchSize) });
      }
      if (this.progress) listener({ kind: 'progress', ...this.progress });
      if (this.result) listener({ kind: 'done', result: this.result });
      if (this.failure) listener({ kind: 'failed', failure: this.failure });
    }
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  private apply(event: InspectEvent): void {
    if (!this.running) return;
    switch (event.kind) {
      case 'summary':
        this.summary = event.summary;
        break;
      case 'layers':
        this.layers.push(...event.layers);
        break;
      case 'progress':
        this.progress = { done: event.done, total: event.total };
        break;
    }
    this.emit(event);
  }

  private emit(update: InspectionUpdate): void {
    for (const listener of [...this.listeners]) listener(update);
  }
}

/** The sentence the editor shows when an inspection did not finish. */
export function describeFailure(failure: InspectionFailure, fileName: string): string {
  switch (failure.code) {
    case 'bad-input':
      return failure.message;
    case 'cancelled':
      return `Inspection of ${fileName} was cancelled. Reopen the file to inspect it again.`;
    case 'engine-crashed':
      return `${fileName}: ${failure.message} Reopen the file to try again.`;
    case 'internal':
      return `${fileName}: internal error: ${failure.message} (details in the QuantLens log).`;
  }
}
