// inspectModel end to end on files: a safetensors checkpoint the test writes byte by byte, and the sample ONNX model.
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { InspectEvent } from '../../extension/protocol/engine';
import type { LayerRecord } from '../../extension/protocol/records';
import { inspectModel } from '../../extension/engine/inspect';
import { CancelledError, ModelError } from '../../extension/engine/errors';
import * as openModelModule from '../../extension/engine/model/open';
const { openModel } = openModelModule;
import { computeWeightStats } from '../../extension/engine/quant/weightStats';
import { gaussian } from './naiveWeightStats';
import { writeSafetensors, type FileTensor } from './weightFiles';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-inspect-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function tensor(shape: number[], seed: number): FileTensor {
  return { dtype: 'F32', shape, values: gaussian(shape.reduce((a, b) => a * b, 1), seed, 0.05) };
}

const tensors: Record<string, FileTensor> = {
  'patch_embed.proj.weight': tensor([32, 4, 2, 2], 1),
  'patch_embed.proj.bias': tensor([32], 2),
  'blocks.0.attn.qkv.weight': tensor([96, 32], 3),
  'blocks.0.mlp.fc1.weight': tensor([128, 32], 4),
  'blocks.0.mlp.fc2.weight': tensor([32, 128], 5),
};
// Enough small layers for several batches, so cancellation has somewhere to stop.
for (let i = 0; i < 150; i++) tensors[`blocks.${i + 1}.proj.weight`] = tensor([8, 12], 100 + i);
const checkpoint = path.join(dir, 'model.safetensors');
writeSafetensors(checkpoint, tensors);
const layerNames = Object.entries(tensors).filter(([, t]) => t.shape.length >= 2).map(([name]) => name);

test('inspectModel streams the summary, then every layer exactly once with its statistics', async () => {
  const events: InspectEvent[] = [];
  const options = { outlierSigma: 3, histogramBins: 16 };
  const result = await inspectModel(checkpoint, options, (event) => events.push(event));

  assert.equal(events[0].kind, 'summary');
  assert.equal(events.filter((e) => e.kind === 'summary').length, 1);
  const batches = events.filter((e): e is Extract<InspectEvent, { kind: 'layers' }> => e.kind === 'layers');
  assert.ok(batches.length >= 3, `${batches.length} batches for ${layerNames.length} layers`);
  const records = batches.flatMap((b) => b.layers);
  assert.deepEqual(records.map((r) => r.weight).sort(), [...layerNames].sort());

  for (const record of records) {
    const { shape, values } = tensors[record.weight];
    assert.deepEqual(record.shape, shape);
    assert.deepEqual(record.stats, computeWeightStats(values, shape, record.channelAxis, options), record.weight);
    assert.equal(record.stats.histogram.counts.length, 16);
  }

  const progress = events.filter((e): e is Extract<InspectEvent, { kind: 'progress' }> => e.kind === 'progress');
  assert.deepEqual(progress.at(-1), { kind: 'progress', done: layerNames.length, total: layerNames.length });
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].done >= progress[i - 1].done);
  assert.equal(events.at(-1)?.kind, 'progress', 'nothing after the final progress');
  assert.equal(result.layerCount, layerNames.length);
  assert.equal(result.summary.format, 'safetensors');
  assert.ok(result.elapsedMs >= 0);
});

test('a cancel stops inspection between layers with CancelledError', async () => {
  const controller = new AbortController();
  const received: LayerRecord[] = [];
  await assert.rejects(
    inspectModel(
      checkpoint,
      {},
      (event) => {
        if (event.kind !== 'layers') return;
        received.push(...event.layers);
        controller.abort();
      },
      controller.signal,
    ),
    CancelledError,
  );
  assert.ok(received.length > 0 && received.length < layerNames.length, `${received.length} layers before the cancel`);

  const early = new AbortController();
  early.abort();
  const events: InspectEvent[] = [];
  await assert.rejects(inspectModel(checkpoint, {}, (e) => events.push(e), early.signal), CancelledError);
  assert.equal(events.length, 0);
});

test('a file that is not a model is refused with a ModelError before any event', async () => {
  const bogus = path.join(dir, 'notes.safetensors');
  fs.writeFileSync(bogus, 'not a checkpoint');
  const events: InspectEvent[] = [];
  await assert.rejects(inspectModel(bogus, {}, (e) => events.push(e)), ModelError);
  assert.equal(events.length, 0);
});

const sample = path.join(__dirname, '..', '..', '..', 'resources', 'sample', 'dit-sample.onnx');

test('the sample ONNX model: every layer once, statistics equal to those of its weights', async () => {
  const records: LayerRecord[] = [];
  const result = await inspectModel(sample, {}, (event) => {
    if (event.kind === 'layers') records.push(...event.layers);
  });
  const model = await openModel(sample);
  try {
    assert.equal(records.length, model.layers.length);
    assert.deepEqual(records.map((r) => r.name), model.layers.map((l) => l.name));
    assert.equal(result.layerCount, model.layers.length);
    for (const record of records) {
      const data = await model.readTensorF32(record.weight);
      assert.deepEqual(record.stats, computeWeightStats(data, record.shape, record.channelAxis), record.name);
    }
  } finally {
    await model.close();
  }
});

test('a weight shared by two layers is read and measured once', async (t) => {
  // The ONNX index lists a shared weight once; should any format list every consumer, it must not cost a second
  // read. Duplicate a layer of the real checkpoint as a second consumer and count the reads.
  const reads: string[] = [];
  const real = openModelModule.openModel;
  t.mock.method(openModelModule, 'openModel', async (file: string) => {
    const model = await real(file);
    const shared = model.layers[2];
    return {
      ...model,
      layers: [...model.layers.slice(0, 3), { ...shared, name: `${shared.name} (second use)` }],
      readTensorF32: (name: string) => {
        reads.push(name);
        return model.readTensorF32(name);
      },
      close: () => model.close(),
    };
  });
  const records: LayerRecord[] = [];
  await inspectModel(checkpoint, {}, (event) => {
    if (event.kind === 'layers') records.push(...event.layers);
  });
  assert.equal(records.length, 4);
  assert.equal(reads.length, 3);
  assert.deepEqual(records[3].stats, records[2].stats);
  assert.equal(records[3].weight, records[2].weight);
});

test('with node --expose-gc, each tensor of 16 MB or more is collected right after it is measured', async (t) => {
  const big = path.join(dir, 'big.safetensors');
  writeSafetensors(big, {
    'big.weight': { dtype: 'F32', shape: [2048, 2048], values: gaussian(2048 * 2048, 1) },
    'small.weight': tensor([64, 64], 2),
  });
  let collections = 0;
  const scope = globalThis as { gc?: () => void };
  const previous = scope.gc;
  scope.gc = () => collections++;
  t.after(() => {
    scope.gc = previous;
  });
  const result = await inspectModel(big, {}, () => undefined);
  assert.equal(result.layerCount, 2);
  assert.equal(collections, 1, 'one collection, for the 16 MB tensor only');
});
