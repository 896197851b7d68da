// Synthetic integer inputs drawn from the rows of the tables they index: graphIntRanges on the two samples (checked
// against the tables found here in the decoded files) and on a graph written here (a Cast on the indices, a Constant
// table, a negative axis, two tables, a dtype cap, what is not followed); loadCalibration's draws, notes and
// refusals; and the analysis runner, search verification and QDQ export drawing the same feeds for the LLM sample.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { runAnalysis } from '../../extension/engine/analysis/runner';
import { graphIntRanges, loadCalibration, type CalibrationSpec } from '../../extension/engine/calib';
import { ModelError } from '../../extension/engine/errors';
import { exportQdq } from '../../extension/engine/export/qdq';
import { openModel } from '../../extension/engine/model/open';
import { measureSettingsFromRun } from '../../extension/engine/search/refine';
import { AllocationMeter } from '../../extension/engine/search/verify';
import { ALLOCATION_SCHEMA, type AllocationFile } from '../../extension/protocol/allocation';
import type { AnalysisRun } from '../../extension/protocol/analysis';
import type { ValueInfo } from '../../extension/protocol/records';
import { bytesOf, npy } from './npyFiles';

const SAMPLES = path.resolve(__dirname, '..', '..', '..', 'resources', 'sample');
const LLM = path.join(SAMPLES, 'llm-sample.onnx');
const DIT = path.join(SAMPLES, 'dit-sample.onnx');
const DataType = onnx.TensorProto.DataType;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-int-ranges-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function graphOf(file: string): onnx.IGraphProto {
  return onnx.ModelProto.decode(fs.readFileSync(file)).graph as onnx.IGraphProto;
}

async function inputsOf(file: string): Promise<ValueInfo[]> {
  const opened = await openModel(file);
  await opened.close();
  return opened.summary.inputs;
}

/** Independently: the initializers that Gather nodes read with `input` as their indices, and their row counts. */
function gatheredTables(graph: onnx.IGraphProto, input: string): { table: string; rows: number }[] {
  return (graph.node ?? [])
    .filter((node) => node.opType === 'Gather' && node.input?.[1] === input)
    .map((node) => {
      const table = (graph.initializer ?? []).find((t) => t.name === node.input?.[0]);
      assert.ok(table, `Gather ${node.name} reads a stored table`);
      return { table: table.name as string, rows: Number(table.dims?.[0]) };
    });
}

function ids(spec: { data: unknown }): number[] {
  return Array.from(spec.data as BigInt64Array, Number);
}

async function rejectsWith(promise: Promise<unknown>, fragments: string[]): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ModelError, String(err));
    for (const fragment of fragments) assert.ok(err.message.includes(fragment), `"${err.message}" lacks "${fragment}"`);
    return true;
  });
}

let llmInputs: ValueInfo[];
let ditInputs: ValueInfo[];
before(async () => {
  llmInputs = await inputsOf(LLM);
  ditInputs = await inputsOf(DIT);
});

describe('graphIntRanges', () => {
  it("the LLM sample's input_ids draw from the 512 rows of model.embed_tokens.weight", () => {
    const graph = graphOf(LLM);
    const tables = gatheredTables(graph, 'input_ids');
    assert.deepEqual(tables, [{ table: 'model.embed_tokens.weight', rows: 512 }]);
    assert.deepEqual(graphIntRanges(graph, llmInputs), { input_ids: { range: [0, 512], table: 'model.embed_tokens.weight' } });
  });

  it("the DiT sample's class label y draws from the rows of the class embedding it gathers; x and t keep theirs", () => {
    const graph = graphOf(DIT);
    const tables = gatheredTables(graph, 'y');
    assert.equal(tables.length, 1);
    const [{ table, rows }] = tables;
    // 10 classes and DiT's "no class" row for classifier-free guidance.
    assert.equal(rows, 11);
    assert.deepEqual(graphIntRanges(graph, ditInputs), { y: { range: [0, rows], table } });
  });

  it('follows one Cast and a negative axis, reads Constant tables, takes the smallest table, caps at the dtype', () => {
    const initializer = (name: string, dims: number[]) =>
      onnx.TensorProto.create({ name, dataType: DataType.FLOAT, dims, rawData: new Uint8Array(4 * dims.reduce((a, b) => a * b, 1)) });
    const input = (name: string, elemType: number) => onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType, shape: { dim: [{ dimValue: 3 }] } } } });
    const node = (opType: string, inputs: string[], output: string, attribute: onnx.IAttributeProto[] = []) =>
      onnx.NodeProto.create({ opType, input: inputs, output: [output], name: output, attribute });
    const castTo = (to: number): onnx.IAttributeProto => ({ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: to });
    const graph: onnx.IGraphProto = {
      input: [
        input('ids', DataType.INT64),
        input('pos', DataType.INT64),
        input('tok', DataType.INT32),
        input('label', DataType.UINT8),
        input('__proto__', DataType.INT64),
        input('twice', DataType.INT64),
        input('computed', DataType.INT64),
        input('empty', DataType.INT64),
        input('f', DataType.FLOAT),
      ],
      initializer: [
        initializer('pos_table', [3, 9, 2]),
        initializer('big', [100, 8]),
        initializer('small', [50, 8]),
        initializer('huge', [1000, 2]),
        initializer('none', [0, 4]),
      ],
      node: [
        onnx.NodeProto.create({ opType: 'Constant', output: ['const_table'], attribute: [{ name: 'value', type: onnx.AttributeProto.AttributeType.TENSOR, t: initializer('', [7, 4]) }] }),
        node('Cast', ['ids'], 'ids32', [castTo(DataType.INT32)]),
        node('Gather', ['const_table', 'ids32'], 'e_ids'),
        node('Gather', ['pos_table', 'pos'], 'e_pos', [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: -2 }]),
        node('Gather', ['big', 'tok'], 'e_big'),
        node('Gather', ['small', 'tok'], 'e_small'),
        node('Cast', ['label'], 'label64', [castTo(DataType.INT64)]),
        node('Gather', ['huge', 'label64'], 'e_label'),
        node('Gather', ['const_table', '__proto__'], 'e_proto'),
        // Not followed: two Casts, a table computed in the graph, an empty table, a float input.
        node('Cast', ['twice'], 'twice32', [castTo(DataType.INT32)]),
        node('Cast', ['twice32'], 'twice64', [castTo(DataType.INT64)]),
        node('Gather', ['big', 'twice64'], 'e_twice'),
        node('Relu', ['big'], 'relu_big'),
        node('Gather', ['relu_big', 'computed'], 'e_computed'),
        node('Gather', ['none', 'empty'], 'e_empty'),
        node('Gather', ['big', 'f'], 'e_f'),
      ],
    };
    const inputs: ValueInfo[] = [
      { name: 'ids', dtype: 'I64', shape: [3] },
      { name: 'pos', dtype: 'I64', shape: [3] },
      { name: 'tok', dtype: 'I32', shape: [3] },
      { name: 'label', dtype: 'U8', shape: [3] },
      { name: '__proto__', dtype: 'I64', shape: [3] },
      { name: 'twice', dtype: 'I64', shape: [3] },
      { name: 'computed', dtype: 'I64', shape: [3] },
      { name: 'empty', dtype: 'I64', shape: [3] },
      { name: 'f', dtype: 'F32', shape: [3] },
    ];
    const ranges = graphIntRanges(graph, inputs);
    assert.deepEqual(Object.keys(ranges), ['ids', 'pos', 'tok', 'label', '__proto__']);
    assert.deepEqual(ranges.ids, { range: [0, 7], table: 'const_table' });
    assert.deepEqual(ranges.pos, { range: [0, 9], table: 'pos_table' });
    assert.deepEqual(ranges.tok, { range: [0, 50], table: 'small' });
    assert.deepEqual(ranges.label, { range: [0, 256], table: 'huge' }, 'a uint8 input holds 0…255 of the 1000 rows');
    assert.ok(Object.hasOwn(ranges, '__proto__'), 'an input named __proto__ is an own key');
    assert.equal(Object.getPrototypeOf(ranges), Object.prototype);
  });
});

describe('loadCalibration with per-input ranges', () => {
  it('LLM token ids cover [0, 512) and none is past it; the description and warnings say where the range came from', async () => {
    const intRanges = graphIntRanges(graphOf(LLM), llmInputs);
    const set = await loadCalibration(LLM, llmInputs, { samples: 8, batch: 2, dims: { seq: 64 }, intRanges });
    const drawn = set.samples.flatMap((sample) => ids(sample.input_ids));
    assert.equal(drawn.length, 8 * 2 * 64);
    assert.ok(drawn.every((id) => Number.isInteger(id) && id >= 0 && id < 512), 'every id is a row of the embedding');
    // 1,024 uniform draws from 512: the chance that none reaches 500 is (500/512)^1024 ≈ e^−24.
    assert.equal(Math.min(...drawn), 0);
    assert.ok(Math.max(...drawn) >= 500, `max ${Math.max(...drawn)}`);
    assert.ok(new Set(drawn).size > 400, `${new Set(drawn).size} distinct ids`);
    const note = 'input "input_ids": synthetic ids in [0, 512), the rows of "model.embed_tokens.weight" that it indexes';
    assert.deepEqual(set.warnings, [note]);
    assert.equal(set.description, `synthetic seed 0; ${note}`);

    const plain = await loadCalibration(LLM, llmInputs, { samples: 8, batch: 2, dims: { seq: 64 } });
    assert.ok(plain.samples.flatMap((sample) => ids(sample.input_ids)).every((id) => id < 10), 'without intRanges: the default [0, 10)');
    assert.deepEqual(plain.warnings, []);
  });

  it("the DiT sample's y covers every row of its class table", async () => {
    const intRanges = graphIntRanges(graphOf(DIT), ditInputs);
    const rows = intRanges.y.range[1];
    const set = await loadCalibration(DIT, ditInputs, { samples: 64, batch: 4, intRanges });
    assert.deepEqual([...new Set(set.samples.flatMap((sample) => ids(sample.y)))].sort((a, b) => a - b), Array.from({ length: rows }, (_, i) => i));
    assert.equal(set.warnings.length, 1);
    assert.match(set.warnings[0], /^input "y": synthetic ids in \[0, 11\), the rows of "y_embedder\.embedding_table"/);
  });

  it('an explicit intRange wins over the per-input ranges, and then nothing is noted', async () => {
    const intRanges = graphIntRanges(graphOf(LLM), llmInputs);
    const set = await loadCalibration(LLM, llmInputs, { samples: 2, dims: { seq: 32 }, intRange: [3, 5], intRanges });
    assert.deepEqual([...new Set(set.samples.flatMap((sample) => ids(sample.input_ids)))].sort(), [3, 4]);
    assert.deepEqual(set.warnings, []);
    assert.equal(set.description, 'synthetic seed 0');
  });

  it('a calibration file leaves the ranges unused and unnoted', async () => {
    const file = path.join(dir, 'ids.npy');
    fs.writeFileSync(file, npy('<i8', [1, 4], bytesOf(BigInt64Array.from([1n, 7n, 300n, 511n]))));
    const set = await loadCalibration(LLM, llmInputs, { source: file, intRanges: graphIntRanges(graphOf(LLM), llmInputs) });
    assert.deepEqual(ids(set.samples[0].input_ids), [1, 7, 300, 511]);
    assert.deepEqual(set.warnings, []);
  });

  it('ranges that name no integer input, are empty or do not fit the dtype are refused naming the model', async () => {
    const load = (intRanges: CalibrationSpec['intRanges'], inputs = ditInputs) => loadCalibration(DIT, inputs, { intRanges });
    await rejectsWith(load({ z: { range: [0, 4], table: 't' } }), ['dit-sample.onnx', 'intRanges names "z"', 'not an integer input']);
    await rejectsWith(load({ x: { range: [0, 4], table: 't' } }), ['intRanges names "x"']);
    await rejectsWith(load({ y: { range: [4, 4], table: 't' } }), ['intRanges "y" must be two integers']);
    await rejectsWith(load({ u: { range: [0, 300], table: 't' } }, [{ name: 'u', dtype: 'U8', shape: [1] }]), ['intRanges "u" [0, 300) does not fit', 'U8']);
  });
});

describe('the analysis runner, search verification and QDQ export draw the same feeds', () => {
  const layer = 'model.layers.0.self_attn.q_proj';
  let run: AnalysisRun;
  before(async () => {
    run = await runAnalysis(
      {
        model: LLM,
        settings: [{ id: 'W8', weight: { bits: 8, granularity: { kind: 'channel' } } }],
        unit: 'layer',
        groups: [],
        // Layer 0's attention only: enough to compare, quick to run.
        exclude: ['^lm_head$', 'mlp', '^model\\.layers\\.[1-3]\\.'],
        calibration: { samples: 1, batch: 1, seed: 0, dims: { seq: 8 } },
        extraActivationTensors: [],
        executionProvider: 'cpu',
      },
      { recordPath: path.join(dir, 'run.json'), threads: 1 },
    );
    assert.equal(run.status, 'complete', run.message);
  });

  const note = 'input "input_ids": synthetic ids in [0, 512), the rows of "model.embed_tokens.weight" that it indexes';

  it('the runner notes the range; the export calibrates the same activation range from its first sample', async () => {
    assert.deepEqual(run.warnings, [note]);
    const ranOn = run.ranges.find((r) => r.layer === layer);
    assert.ok(ranOn);
    const allocation: AllocationFile = {
      schema: ALLOCATION_SCHEMA,
      model: { fileName: 'llm-sample.onnx' },
      ranges: [{ timesteps: null, label: 'all', layers: { [layer]: { weightBits: 16, activationBits: 8 } } }],
      weight: { granularity: 'channel' },
      activation: { mode: 'static-minmax', symmetric: false },
    };
    const calibration = measureSettingsFromRun(run).calibration;
    const exported = await exportQdq(LLM, allocation, { outPath: path.join(dir, 'a8.onnx'), calibration, threads: 1 });
    assert.ok(exported.notes.includes(note), exported.notes.join('\n'));
    const [activation] = exported.activations;
    assert.equal(activation.layer, layer);
    const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b));
    assert.ok(close(activation.min, ranOn.min) && close(activation.max, ranOn.max), `export [${activation.min}, ${activation.max}] vs run [${ranOn.min}, ${ranOn.max}]`);

    // The check can tell: ids from the old default [0, 10) give another range.
    const classLabels = await exportQdq(LLM, allocation, { outPath: path.join(dir, 'a8-default.onnx'), calibration: { ...calibration, intRange: [0, 10] }, threads: 1 });
    const other = classLabels.activations[0];
    assert.ok(!close(other.min, ranOn.min) || !close(other.max, ranOn.max), `[0, 10) gives [${other.min}, ${other.max}] too`);
    assert.ok(!classLabels.notes.includes(note));
  });

  it('search verification notes the same range and measures the run\'s "*" row', async () => {
    const meter = await AllocationMeter.open(LLM, measureSettingsFromRun(run, 1), { activations: false });
    try {
      assert.ok(meter.warnings.includes(note), meter.warnings.join('\n'));
      const units = run.plan.units.filter((unit) => unit !== '*');
      assert.equal(units.length, 4);
      const measured = await meter.measure([{ timesteps: null, layers: Object.fromEntries(units.map((unit) => [unit, { weightBits: 8, activationBits: null }])) }]);
      const row = run.rows.find((r) => r.unit === '*' && r.setting === 'W8');
      assert.ok(row);
      const expected = 10 ** (-row.primary.sqnrDb / 10);
      assert.ok(Math.abs(measured.error - expected) <= 1e-6 * expected, `measured ${measured.error} vs the run's ${expected}`);
    } finally {
      await meter.close();
    }
  });
});
