// Inspect a model: its summary first, then every layer's weight statistics, streamed in batches so a viewer fills in
// while the rest is measured. One weight tensor is in memory at a time; a cancel is noticed between layers.
// Layers with NaN or infinite weights are only known once measured: the summary is sent again at the end with a
// warning that names them, and the result carries that summary.
import { setImmediate as yieldToEventLoop } from 'timers/promises';
import type { InspectEvent, InspectResult } from '../protocol/engine';
import type { InspectOptions, LayerInfo, LayerRecord, WeightStats } from '../protocol/records';
import { ModelError, quote, throwIfAborted } from './errors';
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
/** Layers with non-finite weights named in the summary's warning; the table flags every one. */
const NAMED_NON_FINITE_LAYERS = 5;

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
    const { layers } = model;
    let summary = model.summary;
    const file = summary.path;
    onEvent({ kind: 'summary', summary });
    const total = layers.length;
    onEvent({ kind: 'progress', done: 0, total });

    // A weight several layers share (tied embeddings, a reused Constant) is measured once and kept until its last use.
    const usesLeft = new Map<string, number>();
    for (const layer of layers) usesLeft.set(statsKey(layer), (usesLeft.get(statsKey(layer)) ?? 0) + 1);
    const shared = new Map<string, WeightStats>();

    const nonFiniteLayers: LayerRecord[] = [];
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
      const record = { ...layer, stats };
      batch.push(record);
      if (stats.nonFinite > 0) nonFiniteLayers.push(record);
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
    if (nonFiniteLayers.length > 0) {
      summary = { ...summary, warnings: [...summary.warnings, nonFiniteWarning(nonFiniteLayers)] };
      onEvent({ kind: 'summary', summary });
    }
    return { summary, layerCount: total, elapsedMs: performance.now() - started };
  } finally {
    await model.close();
  }
}

function nonFiniteWarning(layers: LayerRecord[]): string {
  const named = layers
    .slice(0, NAMED_NON_FINITE_LAYERS)
    .map((l) => `${quote(l.name)} (${l.stats.nonFinite} of ${l.stats.count})`);
  const more = layers.length > NAMED_NON_FINITE_LAYERS ? `, and ${layers.length - NAMED_NON_FINITE_LAYERS} more` : '';
  const subject = layers.length === 1 ? '1 layer has' : `${layers.length} layers have`;
  return `${subject} NaN or infinite weights: ${named.join(', ')}${more}; their statistics and SQNR cover the finite weights only`;
}

function statsKey(layer: LayerInfo): string {
  return `${layer.channelAxis}:${layer.weight}`;
}

async function readAndMeasure(model: OpenedModel, file: string, layer: LayerInfo, options: InspectOptions): Promise<WeightStats> {
  const data = await model.readTensorF32(layer.weight);
  try {
    channelLayout(layer.shape, layer.channelAxis, data.length);
  } catch (err) {
    throw new ModelError(file, `weight ${quote(layer.weight)} does not fit its layer: ${(err as Error).message}`);
  }
  return computeWeightStats(data, layer.shape, layer.channelAxis, options);
}
