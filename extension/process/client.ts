// Host side of the engine process: forks it on first use, sends typed requests, routes events and answers back,
// and starts a fresh process after a crash. No `vscode` import: the extension host and the tests both use it.
import { fork, type ChildProcess } from 'child_process';
import type { EngineErrorInfo, EngineMethod, EngineMethods, EngineToHost, ErrorCode, HostToEngine } from '../protocol/engine';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export class EngineError extends Error {
  readonly code: ErrorCode;
  /** The file the problem is about, when there is one. */
  readonly file?: string;

  constructor(info: EngineErrorInfo) {
    super(info.message);
    this.name = 'EngineError';
    this.code = info.code;
    if (info.file !== undefined) this.file = info.file;
  }
}

export interface EngineClientOptions {
  /** The engine entry script: dist/engine.js in the extension, out/extension/process/main.js in tests. */
  enginePath: string;
  log?: (level: LogLevel, message: string) => void;
  /** Node options for the engine process (e.g. `--inspect`); none by default, whatever the host runs with. */
  execArgv?: string[];
}

export interface RequestOptions<M extends EngineMethod> {
  onEvent?: (event: EngineMethods[M]['event']) => void;
  signal?: AbortSignal;
}

/** Why an engine process stopped without being asked to. */
export interface EngineCrash {
  pid: number | undefined;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  message: string;
}

export interface Disposable {
  dispose(): void;
}

interface Pending {
  method: EngineMethod;
  onEvent?: (event: unknown) => void;
  resolve(result: unknown): void;
  reject(err: EngineError): void;
}

/** One forked engine process and the requests it owes an answer. */
interface Engine {
  child: ChildProcess;
  /** Resolves when the process sent 'ready'; never rejects (a process that dies first rejects its pending instead). */
  ready: Promise<void>;
  pending: Map<number, Pending>;
  stopped: boolean;
}

export class EngineClient {
  private engine: Engine | undefined;
  private nextId = 1;
  private disposed = false;
  private readonly crashListeners = new Set<(crash: EngineCrash) => void>();

  constructor(private readonly options: EngineClientOptions) {}

  /** Process id of the running engine, or undefined when none runs. */
  get pid(): number | undefined {
    return this.engine?.child.pid;
  }

  /** Called when the engine process stops without dispose() having asked it to. */
  onDidCrash(listener: (crash: EngineCrash) => void): Disposable {
    this.crashListeners.add(listener);
    return { dispose: () => this.crashListeners.delete(listener) };
  }

  request<M extends EngineMethod>(
    method: M,
    params: EngineMethods[M]['params'],
    opts: RequestOptions<M> = {},
  ): Promise<EngineMethods[M]['result']> {
    return new Promise((resolve, reject) => {
      const { signal, onEvent } = opts;
      if (this.disposed) return reject(new EngineError({ code: 'cancelled', message: 'the engine client was disposed' }));
      if (signal?.aborted) return reject(cancelled());

      const engine = this.engine ?? this.start();
      const id = this.nextId++;
      const onAbort = () => {
        if (!engine.pending.delete(id)) return;
        // Answer the caller now; whatever the engine still sends for this id is dropped.
        reject(cancelled());
        engine.ready.then(() => this.post(engine, { type: 'cancel', id }));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      engine.pending.set(id, {
        method,
        ...(onEvent ? { onEvent: onEvent as (event: unknown) => void } : {}),
        resolve: (result) => {
          done();
          resolve(result as EngineMethods[M]['result']);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      });
      engine.ready.then(() => {
        if (engine.pending.has(id)) this.post(engine, { type: 'request', id, method, params });
      });
    });
  }

  /** Stops the engine process; requests in flight reject with 'cancelled'. */
  dispose(): void {
    this.disposed = true;
    const engine = this.engine;
    if (!engine) return;
    this.retire(engine, { code: 'cancelled', message: 'the engine was shut down' });
    engine.child.kill();
  }

  private start(): Engine {
    const child = fork(this.options.enginePath, [], {
      execPath: process.execPath,
      execArgv: this.options.execArgv ?? [],
      // Under the VS Code extension host process.execPath is Electron; this makes it behave as plain Node.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let markReady!: () => void;
    const engine: Engine = {
      child,
      ready: new Promise<void>((resolve) => (markReady = resolve)),
      pending: new Map(),
      stopped: false,
    };
    this.engine = engine;
    this.pipeToLog(child.stdout, 'info');
    this.pipeToLog(child.stderr, 'warn');

    child.on('message', (message: EngineToHost) => {
      if (message?.type === 'ready') {
        this.log('info', `engine process ${child.pid} ready`);
        markReady();
      } else {
        this.route(engine, message);
      }
    });
    child.on('error', (err) => this.crashed(engine, null, null, `could not run the engine process: ${err.message}`));
    child.on('exit', (exitCode, signal) => this.crashed(engine, exitCode, signal));
    return engine;
  }

  private route(engine: Engine, message: EngineToHost): void {
    if (message?.type !== 'response' && message?.type !== 'error' && message?.type !== 'event') return;
    const pending = engine.pending.get(message.id);
    if (!pending) return; // cancelled or already answered
    if (message.type === 'event') {
      try {
        pending.onEvent?.(message.event);
      } catch (err) {
        this.log('error', `a listener for '${pending.method}' events threw: ${err instanceof Error ? err.message : String(err)}`);
      }
      return;
    }
    engine.pending.delete(message.id);
    if (message.type === 'response') pending.resolve(message.result);
    else pending.reject(new EngineError(message.error));
  }

  private post(engine: Engine, message: HostToEngine): void {
    if (engine.stopped || !engine.child.connected) return;
    engine.child.send(message, (err) => {
      if (err) this.log('warn', `could not send '${message.type}' to the engine: ${err.message}`);
    });
  }

  private crashed(engine: Engine, exitCode: number | null, signal: NodeJS.Signals | null, reason?: string): void {
    if (engine.stopped) return;
    const how = reason ?? (signal ? `signal ${signal}` : `exit code ${exitCode}`);
    const message = `The QuantLens engine process stopped (${how}).`;
    this.log('error', message);
    this.retire(engine, { code: 'engine-crashed', message: `${message} The next request starts a new one.` });
    const crash: EngineCrash = { pid: engine.child.pid, exitCode, signal, message };
    for (const listener of [...this.crashListeners]) listener(crash);
  }

  /** Forgets a process that stopped and rejects everything it still owed. */
  private retire(engine: Engine, info: EngineErrorInfo): void {
    engine.stopped = true;
    if (this.engine === engine) this.engine = undefined;
    const pending = [...engine.pending.values()];
    engine.pending.clear();
    for (const request of pending) request.reject(new EngineError(info));
  }

  private pipeToLog(stream: NodeJS.ReadableStream | null, level: LogLevel): void {
    if (!stream) return;
    stream.setEncoding('utf8');
    let partial = '';
    stream.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) this.log(level, `[engine] ${line}`);
    });
    stream.on('end', () => {
      if (partial.trim()) this.log(level, `[engine] ${partial}`);
    });
  }

  private log(level: LogLevel, message: string): void {
    this.options.log?.(level, message);
  }
}

function cancelled(): EngineError {
  return new EngineError({ code: 'cancelled', message: 'cancelled' });
}
