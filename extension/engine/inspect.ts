// Inspect a model: its summary first, then every layer's weight statistics, streamed in batches so a viewer fills in
// while the rest is measured. One weight tensor is in memory at a time; a cancel is noticed between layers.
import { setImmediate as yieldToEventLoop } from 'timers/promises';
import type { InspectEvent, InspectResult } from '../protocol/engine';
import type { InspectOptions, LayerInfo, LayerRecord, WeightStats } from '../protocol/records';
import { ModelError, throwIfAborted } from './errors';
import { openModel } from './model/open';
import type { OpenedModel } from './model/types';
import { channelLayout } from './quant/weightQuant';
import { computeWeightStats } from './quant/weightStats';

/** A batch of layer records goes out when it has this many records or is this old. */
const BATCH_LAYERS = 64;
const BATCH_MS = 50;
/** Longest stretch of synchronous work before letting the event loop deliver messages (a cancel, for one). */
const YIELD_MS = 20;
/**
 * A measured tensor at least this large (as float32) is collected before the next one is read, when the process
 * allows it (node --expose-gc). Otherwise V8 frees tensor buffers only when its external-memory heuristics decide to,
 * and two or three dead tensors can pile up on top of the live one.
 */
const COLLECT_BYTES = 16 * 1024 * 1024;

export async function inspectModel(
  filePath: string,
  options: InspectOptions,
  onEvent: (event: InspectEvent) => void,
  signal?: AbortSignal,
): Promise<InspectResult> {
  const started = performance.now();
  throwIfAborted(signal);
  const model = await openModel(filePath);
  try {
    const { summary, layers } = model;
    const file = summary.path;
    onEvent({ kind: 'summary', summary });
    const total = layers.length;
    onEvent({ kind: 'progress', done: 0, total });

    // A weight several layers share (tied embeddings, a reused Constant) is measured once and kept until its last use.
    const usesLeft = new Map<string, number>();
    for (const layer of layers) usesLeft.set(statsKey(layer), (usesLeft.get(statsKey(layer)) ?? 0) + 1);
    const shared = new Map<string, WeightStats>();

    let batch: LayerRecord[] = [];
    let batchStarted = performance.now();
    let lastYield = performance.now();
    for (let done = 0; done < total; ) {
      throwIfAborted(signal);
      const layer = layers[done];
      const key = statsKey(layer);
      let stats = shared.get(key);
      if (!stats) {
        stats = await readAndMeasure(model, file, layer, options);
        if ((usesLeft.get(key) ?? 0) > 1) shared.set(key, stats);
        // The tensor is out of scope here: this is the moment to give its memory back.
        if (layer.params * 4 >= COLLECT_BYTES) (globalThis as { gc?: () => void }).gc?.();
      }
      const left = (usesLeft.get(key) ?? 1) - 1;
      usesLeft.set(key, left);
      if (left === 0) shared.delete(key);
      batch.push({ ...layer, stats });
      done++;

      const now = performance.now();
      if (batch.length >= BATCH_LAYERS || now - batchStarted >= BATCH_MS || done === total) {
        onEvent({ kind: 'layers', layers: batch });
        onEvent({ kind: 'progress', done, total });
        batch = [];
        batchStarted = now;
      }
      if (now - lastYield >= YIELD_MS) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
    }
    throwIfAborted(signal);
    return { summary, layerCount: total, elapsedMs: performance.now() - started };
  } finally {
    await model.close();
  }
}

function statsKey(layer: LayerInfo): string {
  return `${layer.channelAxis}:${layer.weight}`;
}

async function readAndMeasure(model: OpenedModel, file: string, layer: LayerInfo, options: InspectOptions): Promise<WeightStats> {
  const data = await model.readTensorF32(layer.weight);
  try {
    channelLayout(layer.shape, layer.channelAxis, data.length);
  } catch (err) {
    const name = JSON.stringify(layer.weight.length > 200 ? `${layer.weight.slice(0, 200)}…` : layer.weight);
    throw new ModelError(file, `weight ${name} does not fit its layer: ${(err as Error).message}`);
  }
  return computeWeightStats(data, layer.shape, layer.channelAxis, options);
}
