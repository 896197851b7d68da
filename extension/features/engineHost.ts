// The extension's one engine client, plus a cache of inspections so every view of a file shares one run.
import { promises as fs } from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { EngineClient, type EngineCrash } from '../process/client';
import type { AnalysisRun } from '../protocol/analysis';
import type { AnalysisEvent, AnalyzeParams } from '../protocol/engine';
import type { ExportParams, ExportReport, SearchEvent, SearchParams, SearchReport } from '../protocol/searchPanel';
import { DEFAULT_HISTOGRAM_BINS, DEFAULT_OUTLIER_SIGMA, type InspectOptions } from '../protocol/records';
import { Inspection } from './inspection';

/** Finished inspections kept for reopening; a model's records can be several MB, so keep few. */
const CACHE_LIMIT = 8;

export class EngineHost implements vscode.Disposable {
  private client: EngineClient | undefined;
  private readonly cache = new Map<string, Inspection>();

  constructor(
    private readonly enginePath: string,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  get pid(): number | undefined {
    return this.client?.pid;
  }

  /**
   * The inspection of `fsPath` with the configured options: a cached one while the file's mtime and size are
   * unchanged and it did not fail, else a new one. Never throws; problems end up in the inspection's failure.
   */
  async inspect(fsPath: string): Promise<Inspection> {
    const options = inspectOptions();
    let key: string;
    try {
      const stat = await fs.stat(fsPath);
      if (!stat.isFile()) return failed(fsPath, `${path.basename(fsPath)}: not a file`);
      key = JSON.stringify([fsPath, stat.mtimeMs, stat.size, options.outlierSigma, options.histogramBins]);
    } catch (err) {
      return failed(fsPath, `${path.basename(fsPath)}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    }
    const cached = this.cache.get(key);
    if (cached && !cached.failure && !cached.cancelRequested) {
      // Most recently used last, so eviction drops the oldest.
      this.cache.delete(key);
      this.cache.set(key, cached);
      return cached;
    }
    const started = Date.now();
    this.log.info(`Inspecting ${fsPath}`);
    const inspection = new Inspection(fsPath, (onEvent, signal) =>
      this.engine().request('inspect', { path: fsPath, options }, { onEvent, signal }),
    );
    this.cache.set(key, inspection);
    while (this.cache.size > CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
    void inspection.finished.then(() => {
      if (inspection.failure) {
        // A failed or cancelled run is retried the next time the file is opened.
        if (this.cache.get(key) === inspection) this.cache.delete(key);
        const level = inspection.failure.code === 'internal' ? 'error' : 'warn';
        this.log[level](`Inspection of ${fsPath} ended: ${inspection.failure.code}: ${inspection.failure.message}`);
      } else {
        this.log.info(`Inspected ${fsPath}: ${inspection.layers.length} layers in ${Date.now() - started} ms`);
      }
    });
    return inspection;
  }

  /** A sensitivity analysis in the engine process; aborting `signal` cancels it (the engine keeps finished rows). */
  analyze(params: AnalyzeParams, onEvent: (event: AnalysisEvent) => void, signal: AbortSignal): Promise<AnalysisRun> {
    return this.engine().request('analyze', params, { onEvent, signal });
  }

  /** A mixed-precision search in the engine process; aborting `signal` cancels it. */
  search(params: SearchParams, onEvent: (event: SearchEvent) => void, signal: AbortSignal): Promise<SearchReport> {
    return this.engine().request('search', params, { onEvent, signal });
  }

  /** The QDQ export of an allocation's ranges next to the model. */
  exportQdq(params: ExportParams, signal: AbortSignal): Promise<ExportReport> {
    return this.engine().request('exportQdq', params, { signal });
  }

  dispose(): void {
    for (const inspection of this.cache.values()) inspection.cancel();
    this.cache.clear();
    this.client?.dispose();
    this.client = undefined;
  }

  private engine(): EngineClient {
    if (!this.client) {
      this.client = new EngineClient({
        enginePath: this.enginePath,
        // inspectModel frees each large tensor with gc() as soon as it is measured: peak memory ≈ the largest tensor.
        execArgv: ['--expose-gc'],
        log: (level, message) => this.log[level](message),
      });
      this.client.onDidCrash((crash) => this.onCrash(crash));
    }
    return this.client;
  }

  private onCrash(crash: EngineCrash): void {
    const how = crash.signal ? `signal ${crash.signal}` : crash.exitCode !== null ? `exit code ${crash.exitCode}` : crash.message;
    void vscode.window
      .showWarningMessage(`QuantLens engine stopped (${how}); it will restart on the next request.`, 'Show Log')
      .then((choice) => {
        if (choice) this.log.show();
      });
  }
}

function inspectOptions(): Required<InspectOptions> {
  const config = vscode.workspace.getConfiguration('quantlens.inspector');
  return {
    outlierSigma: config.get<number>('outlierSigma', DEFAULT_OUTLIER_SIGMA),
    histogramBins: config.get<number>('histogramBins', DEFAULT_HISTOGRAM_BINS),
  };
}

function failed(fsPath: string, message: string): Inspection {
  return Inspection.failed(fsPath, { code: 'bad-input', message });
}
