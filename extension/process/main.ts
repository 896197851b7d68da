// The engine process: serves EngineMethods requests from the extension host over Node IPC.
// Heavy work (model parsing, statistics, later onnxruntime sessions) runs here so the host stays responsive and a
// crash here costs one request, not the editor.
import { runAnalysis } from '../engine/analysis/runner';
import { CancelledError, ModelError } from '../engine/errors';
import { inspectModel } from '../engine/inspect';
import { runExport, runSearch } from '../engine/search/session';
import type { EngineErrorInfo, EngineMethod, EngineMethods, EngineToHost, HostToEngine } from '../protocol/engine';

type Handler<M extends EngineMethod> = (
  params: EngineMethods[M]['params'],
  emit: (event: EngineMethods[M]['event']) => void,
  signal: AbortSignal,
) => Promise<EngineMethods[M]['result']>;

const handlers: { [M in EngineMethod]: Handler<M> } = {
  ping: async () => ({ pid: process.pid, node: process.version, ort: onnxRuntimeVersion() }),
  inspect: async (params, emit, signal) => {
    if (typeof params?.path !== 'string') throw new Error("inspect needs a string 'path'");
    return inspectModel(params.path, params.options ?? {}, emit, signal);
  },
  analyze: async (params, emit, signal) => {
    if (typeof params?.recordPath !== 'string' || typeof params.settings !== 'object' || params.settings === null) {
      throw new Error("analyze needs 'settings' and a string 'recordPath'");
    }
    // A cancelled run resolves with its record (status 'cancelled'); serve() turns that into the 'cancelled' error.
    return runAnalysis(params.settings, { recordPath: params.recordPath, ...(params.shard ? { shard: params.shard } : {}), onEvent: emit, signal });
  },
  search: (params, emit, signal) => runSearch(params, emit, signal),
  exportQdq: (params, _emit, signal) => runExport(params, signal),
};

/** Version of the onnxruntime-node package beside the engine, without loading its native library. */
function onnxRuntimeVersion(): string {
  try {
    return (require('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

/** Abort controllers of the requests in flight, by request id. */
const running = new Map<number, AbortController>();

function send(message: EngineToHost): void {
  process.send?.(message);
}

function errorInfo(err: unknown, signal: AbortSignal): EngineErrorInfo {
  if (err instanceof CancelledError || signal.aborted) return { code: 'cancelled', message: 'cancelled' };
  if (err instanceof ModelError) return { code: 'bad-input', message: err.message, file: err.file };
  // Unexpected failures keep their stack in the host's log (stderr is piped there).
  process.stderr.write(`quantlens engine: request failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}

async function serve(id: number, method: EngineMethod, params: unknown): Promise<void> {
  const controller = new AbortController();
  running.set(id, controller);
  try {
    const handler = handlers[method] as Handler<EngineMethod> | undefined;
    if (!Object.prototype.hasOwnProperty.call(handlers, method) || !handler) {
      throw new Error(`unknown engine method '${String(method)}'`);
    }
    const emit = (event: unknown) => send({ type: 'event', id, event });
    const result = await handler(params as never, emit, controller.signal);
    // The protocol promises a cancelled request an error, even when the work finished before the cancel arrived.
    if (controller.signal.aborted) throw new CancelledError();
    send({ type: 'response', id, result });
  } catch (err) {
    send({ type: 'error', id, error: errorInfo(err, controller.signal) });
  } finally {
    running.delete(id);
  }
}

function onMessage(message: HostToEngine): void {
  switch (message?.type) {
    case 'request':
      void serve(message.id, message.method, message.params);
      break;
    case 'cancel':
      running.get(message.id)?.abort();
      break;
    default:
      process.stderr.write(`quantlens engine: ignoring a message of unknown type\n`);
  }
}

if (!process.send) {
  process.stderr.write('quantlens engine: must be started by the QuantLens extension (no IPC channel)\n');
  process.exit(2);
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`quantlens engine: uncaught exception: ${err?.stack ?? String(err)}\n`);
  process.exit(1);
});
// Without its host the engine has nobody to serve.
process.on('disconnect', () => process.exit(0));
process.on('message', onMessage);
send({ type: 'ready', pid: process.pid });
