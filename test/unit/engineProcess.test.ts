// The real compiled engine process, driven through EngineClient (and once over raw IPC), on a real model.
import { fork, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { EngineClient, EngineError, type EngineCrash } from '../../extension/process/client';
import type { EngineToHost, HostToEngine, InspectEvent } from '../../extension/protocol/engine';
import type { LayerRecord, ModelSummary } from '../../extension/protocol/records';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const enginePath = path.join(repoRoot, 'out', 'extension', 'process', 'main.js');
const ppocrRec = path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');

async function rejection(promise: Promise<unknown>): Promise<EngineError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof EngineError, `expected an EngineError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the request to reject');
}

describe('engine process through EngineClient', () => {
  const logged: string[] = [];
  const client = new EngineClient({ enginePath, log: (level, message) => logged.push(`${level}: ${message}`) });
  const crashes: EngineCrash[] = [];
  client.onDidCrash((crash) => crashes.push(crash));
  after(() => client.dispose());

  it('starts lazily and answers ping from its own process', async () => {
    assert.equal(client.pid, undefined);
    const pong = await client.request('ping', {});
    assert.equal(pong.pid, client.pid);
    assert.notEqual(pong.pid, process.pid);
    assert.equal(pong.node, process.version);
    assert.match(pong.ort, /^\d+\.\d+\.\d+/);
  });

  it('streams the summary, then layers, of PP-OCRv4 rec', async () => {
    const kinds: InspectEvent['kind'][] = [];
    const layers: LayerRecord[] = [];
    let summary: ModelSummary | undefined;
    const result = await client.request('inspect', { path: ppocrRec }, {
      onEvent: (event) => {
        kinds.push(event.kind);
        if (event.kind === 'summary') summary = event.summary;
        if (event.kind === 'layers') layers.push(...event.layers);
      },
    });
    const firstLayers = kinds.indexOf('layers');
    assert.ok(firstLayers > kinds.indexOf('summary') && kinds.indexOf('summary') >= 0, `event order: ${kinds.join(',')}`);
    assert.deepEqual(summary, result.summary);
    assert.equal(result.summary.path, ppocrRec);
    assert.ok(result.layerCount > 0);
    assert.equal(layers.length, result.layerCount);
    assert.equal(result.summary.layerCount, result.layerCount);
    const ops = new Set(layers.map((l) => l.opType));
    assert.ok(ops.has('Conv') && ops.has('MatMul'), `ops: ${[...ops].join(',')}`);
    // Records crossed the process boundary whole: every layer has its statistics.
    for (const layer of layers) assert.equal(layer.stats.count, layer.params, layer.name);
  });

  it('rejects a garbage .onnx with bad-input naming the file', async () => {
    const garbage = path.join(os.tmpdir(), `quantlens-garbage-${process.pid}.onnx`);
    fs.writeFileSync(garbage, Buffer.from('this is not a protobuf \x00\xff\xfe model at all'.repeat(20), 'latin1'));
    try {
      const err = await rejection(client.request('inspect', { path: garbage }));
      assert.equal(err.code, 'bad-input');
      assert.equal(err.file, garbage);
      assert.ok(err.message.includes(path.basename(garbage)), err.message);
    } finally {
      fs.rmSync(garbage, { force: true });
    }
  });

  it('cancels an inspect mid-stream and stays usable', async () => {
    const pid = client.pid;
    const controller = new AbortController();
    let events = 0;
    const err = await rejection(
      client.request('inspect', { path: ppocrRec }, {
        signal: controller.signal,
        onEvent: (event) => {
          events++;
          if (event.kind === 'layers') controller.abort();
        },
      }),
    );
    assert.equal(err.code, 'cancelled');
    assert.ok(events > 0);
    const pong = await client.request('ping', {});
    assert.equal(pong.pid, pid, 'a cancel must not restart the engine');
  });

  it('reports a killed engine as crashed and starts a new one for the next request', async () => {
    const firstPid = client.pid;
    assert.ok(firstPid !== undefined);
    let killed = false;
    const err = await rejection(
      client.request('inspect', { path: ppocrRec }, {
        onEvent: () => {
          if (!killed) process.kill(firstPid, 'SIGKILL');
          killed = true;
        },
      }),
    );
    assert.equal(err.code, 'engine-crashed');
    assert.match(err.message, /engine process stopped \(signal SIGKILL\)/);
    assert.equal(crashes.length, 1);
    assert.equal(crashes[0]!.pid, firstPid);
    assert.equal(crashes[0]!.signal, 'SIGKILL');
    assert.equal(client.pid, undefined);

    const pong = await client.request('ping', {});
    assert.notEqual(pong.pid, firstPid);
    assert.equal(pong.pid, client.pid);
    assert.ok(logged.some((line) => line.startsWith('error: ') && line.includes('SIGKILL')), 'the crash is logged');
  });

  it('rejects pending requests when disposed', async () => {
    const disposable = new EngineClient({ enginePath });
    const crashed: EngineCrash[] = [];
    disposable.onDidCrash((crash) => crashed.push(crash));
    await disposable.request('ping', {});
    const pending = disposable.request('inspect', { path: ppocrRec });
    disposable.dispose();
    assert.equal((await rejection(pending)).code, 'cancelled');
    assert.equal((await rejection(disposable.request('ping', {}))).code, 'cancelled');
    assert.equal(crashed.length, 0, 'a requested shutdown is not a crash');
  });
});

describe('engine process over raw IPC', () => {
  /** Forks the engine and collects what it sends. */
  function startEngine(): { child: ChildProcess; next(predicate: (m: EngineToHost) => boolean): Promise<EngineToHost> } {
    const child = fork(enginePath, [], { serialization: 'advanced', execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const received: EngineToHost[] = [];
    const waiters: { predicate: (m: EngineToHost) => boolean; resolve(m: EngineToHost): void }[] = [];
    child.on('message', (message: EngineToHost) => {
      received.push(message);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(message)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(message);
        }
      }
    });
    return {
      child,
      next: (predicate) => {
        const seen = received.find(predicate);
        return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ predicate, resolve }));
      },
    };
  }
  const send = (child: ChildProcess, message: HostToEngine) => child.send(message);
  const answerTo = (id: number) => (m: EngineToHost) => (m.type === 'response' || m.type === 'error') && m.id === id;

  it('announces ready, honours cancel, reports unknown methods, and exits when its parent disconnects', async () => {
    const { child, next } = startEngine();
    const ready = await next((m) => m.type === 'ready');
    assert.equal(ready.type === 'ready' && ready.pid, child.pid);

    // The cancel lands while the engine is still reading the file, so the engine itself must stop the work.
    send(child, { type: 'request', id: 1, method: 'inspect', params: { path: ppocrRec } });
    send(child, { type: 'cancel', id: 1 });
    const cancelled = await next(answerTo(1));
    assert.deepEqual(cancelled, { type: 'error', id: 1, error: { code: 'cancelled', message: 'cancelled' } });

    send(child, { type: 'request', id: 2, method: 'nonsense' as never, params: {} });
    const unknown = await next(answerTo(2));
    assert.equal(unknown.type === 'error' && unknown.error.code, 'internal');

    send(child, { type: 'request', id: 3, method: 'ping', params: {} });
    const pong = await next(answerTo(3));
    assert.equal(pong.type === 'response' && (pong.result as { pid: number }).pid, child.pid);

    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.disconnect();
    assert.equal(await exited, 0);
  });
});
