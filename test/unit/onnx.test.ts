import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { ModelError } from '../../extension/engine/errors';
import { openOnnx, loadOnnxModel } from '../../extension/engine/model/onnx';
import { openModel } from '../../extension/engine/model/open';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const ocrAssets = path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets');
const REC = path.join(ocrAssets, 'ch_PP-OCRv4_rec_infer.onnx');
const DET = path.join(ocrAssets, 'ch_PP-OCRv4_det_infer.onnx');
const CLS = path.join(ocrAssets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-onnx-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function expectModelError(...fragments: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof ModelError, `expected ModelError, got ${err instanceof Error ? err.stack : String(err)}`);
    for (const fragment of fragments) assert.ok(err.message.includes(fragment), `"${err.message}" should mention ${fragment}`);
    return true;
  };
}

const num = (v: number | { toNumber(): number } | null | undefined) => (typeof v === 'number' ? v : v ? v.toNumber() : 0);

/** Float32 values of little-endian raw bytes, read one by one (independent of the engine's decoder). */
function floatsOf(raw: Uint8Array): Float32Array {
  const buffer = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(raw.byteLength / 4);
  for (let i = 0; i < out.length; i++) out[i] = buffer.readFloatLE(i * 4);
  return out;
}

/** What the layer index should find in a PaddleOCR graph, computed by walking its nodes directly. */
function expectedOcrLayers(file: string) {
  const model = onnx.ModelProto.decode(fs.readFileSync(file));
  const graph = model.graph as onnx.GraphProto;
  const nodes = graph.node as onnx.NodeProto[];
  const constants = new Map<string, onnx.ITensorProto>();
  for (const node of nodes) {
    const value = node.opType === 'Constant' ? node.attribute.find((a) => a.name === 'value')?.t : undefined;
    if (value) constants.set(node.output[0], value);
  }
  const isWeight = (name: string) => {
    const t = constants.get(name);
    return !!t && t.dataType === 1 && (t.dims?.length ?? 0) >= 2;
  };
  const layerNodes = (op: string) =>
    nodes.filter((n) => n.opType === op && (isWeight(n.input[1]) || (op === 'MatMul' && isWeight(n.input[0]))));
  const histogram: Record<string, number> = {};
  for (const node of nodes) histogram[node.opType] = (histogram[node.opType] ?? 0) + 1;
  return { model, graph, constants, layerNodes, histogram };
}

describe('PP-OCRv4 rec (weights in Constant nodes)', () => {
  const expected = expectedOcrLayers(REC);

  it('finds its Conv and MatMul layers', async () => {
    const model = await openModel(REC);
    try {
      for (const op of ['Conv', 'MatMul']) {
        const nodes = expected.layerNodes(op);
        assert.ok(nodes.length > 0);
        assert.deepEqual(
          model.layers.filter((l) => l.opType === op).map((l) => [l.name, l.weight]),
          nodes.map((n) => [n.name, n.input[1]]),
        );
      }
      assert.equal(model.layers.length, expected.layerNodes('Conv').length + expected.layerNodes('MatMul').length);
      for (const layer of model.layers) {
        const dims = (expected.constants.get(layer.weight)?.dims ?? []).map(num);
        assert.deepEqual(layer.shape, dims);
        assert.equal(layer.params, dims.reduce((a, b) => a * b, 1));
        // Conv weights are [out, in, kh, kw]; PaddlePaddle linear weights are [in, out] (Y = X·W).
        assert.equal(layer.channelAxis, layer.opType === 'Conv' ? 0 : 1);
      }
    } finally {
      await model.close();
    }
  });

  it('reads each Constant weight exactly as stored', async () => {
    const model = await openModel(REC);
    try {
      for (const layer of model.layers) {
        const raw = expected.constants.get(layer.weight)?.rawData as Uint8Array;
        const values = await model.readTensorF32(layer.weight);
        assert.deepEqual(values, floatsOf(raw), layer.weight);
      }
      // The caller owns what it gets: changing it does not change the next read.
      const first = model.layers[0].weight;
      const values = await model.readTensorF32(first);
      values.fill(12345);
      assert.notEqual((await model.readTensorF32(first))[0], 12345);
    } finally {
      await model.close();
    }
  });

  it('summarizes the graph', async () => {
    const model = await openModel(REC);
    try {
      const s = model.summary;
      assert.equal(s.format, 'onnx');
      assert.equal(s.fileName, 'ch_PP-OCRv4_rec_infer.onnx');
      assert.equal(s.irVersion, num(expected.model.irVersion));
      assert.deepEqual(s.opsets, [{ domain: 'ai.onnx', version: 9 }]);
      assert.deepEqual(s.inputs, [{ name: 'x', dtype: 'F32', shape: ['p2o.DynamicDimension.0', 3, 48, 'p2o.DynamicDimension.1'] }]);
      assert.deepEqual(s.outputs, [
        { name: 'softmax_11.tmp_0', dtype: 'F32', shape: ['p2o.DynamicDimension.2', 'p2o.DynamicDimension.3', 6625] },
      ]);
      assert.equal(s.nodeCount, expected.graph.node.length);
      assert.deepEqual(s.opHistogram, expected.histogram);
      assert.equal(s.tensorCount, expected.constants.size);
      let params = 0;
      let bytes = 0;
      for (const t of expected.constants.values()) {
        params += (t.dims ?? []).map(num).reduce((a, b) => a * b, 1);
        bytes += t.rawData?.length ?? 0;
      }
      assert.equal(s.parameterCount, params);
      assert.equal(s.parameterBytes, bytes);
      assert.equal(s.layerCount, model.layers.length);
      assert.equal(s.layerParameterCount, model.layers.reduce((a, l) => a + l.params, 0));
      assert.deepEqual(s.externalDataFiles, []);
      assert.deepEqual(s.warnings, []);
    } finally {
      await model.close();
    }
  });
});

describe('PP-OCRv4 det and mobile cls', () => {
  for (const file of [DET, CLS]) {
    it(`${path.basename(file)} loads with its Conv and ConvTranspose layers`, async () => {
      const expected = expectedOcrLayers(file);
      const model = await openModel(file);
      try {
        for (const op of ['Conv', 'ConvTranspose', 'MatMul']) {
          assert.deepEqual(
            model.layers.filter((l) => l.opType === op).map((l) => l.weight),
            expected.layerNodes(op).map((n) => n.input[1]),
          );
        }
        assert.equal(model.layers.length, ['Conv', 'ConvTranspose', 'MatMul'].reduce((n, op) => n + expected.layerNodes(op).length, 0));
        assert.ok(model.layers.length > 0);
        // Conv [out, in, k...]; ConvTranspose [in, out, k...]; PaddlePaddle linear [in, out].
        for (const layer of model.layers) assert.equal(layer.channelAxis, layer.opType === 'Conv' ? 0 : 1, layer.name);
        const last = model.layers[model.layers.length - 1];
        const values = await model.readTensorF32(last.weight);
        assert.equal(values.length, last.params);
        assert.deepEqual(values, floatsOf(expected.constants.get(last.weight)?.rawData as Uint8Array), last.weight);
      } finally {
        await model.close();
      }
    });
  }
});

describe('broken ONNX files', () => {
  it('a truncated copy of a real model is refused', async () => {
    const bytes = fs.readFileSync(CLS);
    for (const length of [1, 100, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const file = path.join(dir, `truncated-${length}.onnx`);
      fs.writeFileSync(file, bytes.subarray(0, length));
      await assert.rejects(openModel(file), expectModelError(`truncated-${length}.onnx`, 'not a valid ONNX model'));
    }
  });

  it('garbage, text and empty files are refused', async () => {
    let seed = 7;
    const garbage = Buffer.alloc(4096);
    for (let i = 0; i < garbage.length; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      garbage[i] = seed >> 16;
    }
    const files: Record<string, Uint8Array> = {
      'garbage.onnx': garbage,
      'text.onnx': Buffer.from('this is not a model\n'),
      'empty.onnx': new Uint8Array(0),
    };
    for (const [name, content] of Object.entries(files)) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, content);
      await assert.rejects(openModel(file), expectModelError(name, 'not a valid ONNX model'));
      await assert.rejects(loadOnnxModel(file), expectModelError(name, 'not a valid ONNX model'));
    }
  });
});

function writeModel(file: string, graph: onnx.IGraphProto): string {
  const model: onnx.IModelProto = {
    irVersion: 8,
    producerName: 'quantlens-test',
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [{ key: 'purpose', value: 'unit test' }],
    graph,
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, onnx.ModelProto.encode(model).finish());
  return file;
}

/** A float tensor value; a dimension is a size, a symbolic name, or null for unknown. */
const floatInput = (name: string, dims: (number | string | null)[]): onnx.IValueInfoProto => ({
  name,
  type: {
    tensorType: {
      elemType: 1,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : d === null ? {} : { dimParam: d })) },
    },
  },
});

function externalTensor(name: string, dims: number[], location: string, offset?: number, length?: number, dataType = 1): onnx.ITensorProto {
  const entries = [{ key: 'location', value: location }];
  if (offset !== undefined) entries.push({ key: 'offset', value: String(offset) });
  if (length !== undefined) entries.push({ key: 'length', value: String(length) });
  return { name, dims, dataType, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: entries };
}

function f32Bytes(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

describe('ONNX tensors in the proto', () => {
  it('reads raw_data and every typed field, initializers and Constant values alike', async () => {
    const half = (bits: number[]) => ({ int32Data: bits });
    const file = writeModel(path.join(dir, 'typed', 'typed.onnx'), {
      name: 'typed',
      input: [floatInput('x', ['batch', 4]), floatInput('w_float_data', [4, 2])],
      output: [floatInput('y', ['batch', null])],
      initializer: [
        { name: 'w_float_data', dims: [4, 2], dataType: 1, floatData: [1, -2, 0.5, 4, 5, 6, 7, -8] },
        { name: 'w_f16', dims: [2, 2], dataType: 10, ...half([0x3c00, 0xc000, 0x3800, 0x7bff]) },
        { name: 'w_bf16', dims: [2, 2], dataType: 16, ...half([0x3f80, 0xc040, 0x4049, 0x3e20]) },
        { name: 'w_f64', dims: [2, 2], dataType: 11, doubleData: [0.25, -1e-3, 2, 3] },
        { name: 'shape_i64', dims: [2], dataType: 7, int64Data: [-1, 4096] },
        { name: 'w_u8', dims: [2, 2], dataType: 2, int32Data: [0, 1, 254, 255] },
        { name: 'w_raw_f16', dims: [2, 1], dataType: 10, rawData: Buffer.from([0x00, 0x3c, 0x00, 0xc0]) },
        { name: 'short_raw', dims: [3, 3], dataType: 1, rawData: f32Bytes([1, 2]) },
        { name: 'labels', dims: [2], dataType: 8, stringData: [Buffer.from('a'), Buffer.from('b')] },
      ],
      node: [
        {
          opType: 'Constant',
          output: ['w_const'],
          attribute: [{ name: 'value', type: 4, t: { dims: [2, 3], dataType: 1, rawData: f32Bytes([1, 2, 3, 4, 5, 6]) } }],
        },
        { opType: 'MatMul', name: 'first', input: ['x', 'w_float_data'], output: ['h'] },
        { opType: 'MatMul', name: 'second', input: ['h', 'w_f16'], output: ['h2'] },
        { opType: 'Gemm', name: 'third', input: ['h2', 'w_bf16'], output: ['h3'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
        { opType: 'MatMul', name: 'fourth', input: ['h3', 'w_const'], output: ['h4'] },
        { opType: 'MatMul', name: 'broken', input: ['h4', 'short_raw'], output: ['y'] },
      ],
    });
    const model = await openOnnx(file);
    try {
      const s = model.summary;
      // A graph input that is also an initializer is a weight, not an input.
      assert.deepEqual(s.inputs, [{ name: 'x', dtype: 'F32', shape: ['batch', 4] }]);
      assert.deepEqual(s.outputs, [{ name: 'y', dtype: 'F32', shape: ['batch', null] }]);
      assert.deepEqual(s.metadata, { purpose: 'unit test' });
      assert.equal(s.producer, 'quantlens-test');
      assert.equal(s.tensorCount, 10);
      assert.equal(s.parameterCount, 8 + 4 + 4 + 4 + 2 + 4 + 2 + 9 + 2 + 6);
      assert.equal(s.warnings.length, 1);
      assert.match(s.warnings[0], /"short_raw" stores 8 bytes, expected 36/);
      assert.deepEqual(
        model.layers.map((l) => [l.name, l.weight, l.dtype, l.channelAxis]),
        [
          ['first', 'w_float_data', 'F32', 1],
          ['second', 'w_f16', 'F16', 1],
          ['third', 'w_bf16', 'BF16', 0],
          ['fourth', 'w_const', 'F32', 1],
        ],
      );
      const read = async (name: string) => [...(await model.readTensorF32(name))];
      assert.deepEqual(await read('w_float_data'), [1, -2, 0.5, 4, 5, 6, 7, -8]);
      assert.deepEqual(await read('w_f16'), [1, -2, 0.5, 65504]);
      assert.deepEqual(await read('w_bf16'), [1, -3, 3.140625, 0.15625]);
      assert.deepEqual(await read('w_f64'), [0.25, Math.fround(-1e-3), 2, 3]);
      assert.deepEqual(await read('shape_i64'), [-1, 4096]);
      assert.deepEqual(await read('w_u8'), [0, 1, 254, 255]);
      assert.deepEqual(await read('w_raw_f16'), [1, -2]);
      assert.deepEqual(await read('w_const'), [1, 2, 3, 4, 5, 6]);
      await assert.rejects(model.readTensorF32('short_raw'), expectModelError('typed.onnx', '"short_raw"', 'expected 36'));
      await assert.rejects(model.readTensorF32('labels'), expectModelError('typed.onnx', '"labels"', 'STRING'));
      await assert.rejects(model.readTensorF32('nothing'), expectModelError('typed.onnx', '"nothing"'));
    } finally {
      await model.close();
    }
  });
});

describe('ONNX external data', () => {
  const W = Array.from({ length: 12 }, (_, i) => (i - 6) * 0.25);
  const FAR = [3.5, -0.125, 42, 1e-4];
  const FAR_OFFSET = 2 ** 31 + 4096;
  let folder: string;
  let outside: string;

  before(() => {
    folder = path.join(dir, 'external', 'model');
    fs.mkdirSync(path.join(folder, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(folder, 'weights.bin'), Buffer.concat([f32Bytes(W), Buffer.from([0x00, 0x3c, 0x00, 0x40])]));
    // A sparse file: only the last block holds data, so offsets past 2^31 cost nothing on disk.
    const big = path.join(folder, 'sub', 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(0));
    fs.truncateSync(big, FAR_OFFSET + 8192);
    const handle = fs.openSync(big, 'r+');
    fs.writeSync(handle, f32Bytes(FAR), 0, 16, FAR_OFFSET);
    fs.closeSync(handle);
    outside = path.join(dir, 'external', 'outside.bin');
    fs.writeFileSync(outside, f32Bytes(W));
    fs.symlinkSync('../outside.bin', path.join(folder, 'escape.bin'));
    fs.symlinkSync('weights.bin', path.join(folder, 'alias.bin'));
  });

  const graphWith = (initializer: onnx.ITensorProto[]): onnx.IGraphProto => ({
    name: 'external',
    input: [floatInput('x', ['n', 4])],
    output: [floatInput('y', ['n', 3])],
    initializer,
    node: initializer
      .filter((t) => (t.dims?.length ?? 0) >= 2)
      .map((t, i) => ({ opType: 'MatMul', name: i === 0 ? 'proj' : '', input: ['x', t.name as string], output: [`y${i}`] })),
  });

  it('reads tensors by byte range, including offsets past 2^31', async () => {
    const file = writeModel(
      path.join(folder, 'ext.onnx'),
      graphWith([
        externalTensor('w', [4, 3], 'weights.bin', 0, 48),
        externalTensor('far', [2, 2], 'sub/big.bin', FAR_OFFSET, 16),
        externalTensor('w16', [2], 'weights.bin', 48, 4, 10),
        externalTensor('through_alias', [4, 3], 'alias.bin'),
      ]),
    );
    const model = await openModel(file);
    try {
      assert.deepEqual(model.summary.externalDataFiles, ['weights.bin', 'sub/big.bin', 'alias.bin']);
      assert.deepEqual(model.layers.map((l) => [l.name, l.weight, l.channelAxis]), [
        ['proj', 'w', 1],
        ['far', 'far', 1],
        ['through_alias', 'through_alias', 1],
      ]);
      assert.equal(model.summary.parameterBytes, 48 + 16 + 4 + 48);
      assert.deepEqual([...(await model.readTensorF32('w'))], W);
      assert.deepEqual([...(await model.readTensorF32('far'))], FAR.map(Math.fround));
      assert.deepEqual([...(await model.readTensorF32('w16'))], [1, 2]);
      assert.deepEqual([...(await model.readTensorF32('through_alias'))], W);
    } finally {
      await model.close();
    }
  });

  const refusals: { location: () => string; fragments: (location: string) => string[] }[] = [
    { location: () => '../outside.bin', fragments: (l) => [JSON.stringify(l), 'refused', 'outside'] },
    { location: () => 'sub/../../outside.bin', fragments: (l) => [JSON.stringify(l), 'refused', 'outside'] },
    { location: () => outside, fragments: (l) => [JSON.stringify(l), 'refused', 'absolute'] },
    { location: () => 'escape.bin', fragments: (l) => [JSON.stringify(l), 'refused', 'symbolic link'] },
    { location: () => 'missing.bin', fragments: (l) => [JSON.stringify(l), 'not found'] },
    { location: () => 'sub', fragments: (l) => [JSON.stringify(l), 'refused', 'not a regular file'] },
  ];
  refusals.forEach((c, i) => {
    it(`refuses location ${i}: ${['../x', 'sub/../../x', 'absolute', 'escaping symlink', 'missing file', 'a folder'][i]}`, async () => {
      const location = c.location();
      const file = writeModel(path.join(folder, `refused-${i}.onnx`), graphWith([externalTensor('w', [4, 3], location)]));
      await assert.rejects(openModel(file), expectModelError(`refused-${i}.onnx`, ...c.fragments(location)));
    });
  });

  it('refuses a byte range past the end of the data file', async () => {
    const file = writeModel(path.join(folder, 'past-end.onnx'), graphWith([externalTensor('w', [4, 3], 'weights.bin', 40, 48)]));
    await assert.rejects(openModel(file), expectModelError('past-end.onnx', '"w"', 'past the end', '"weights.bin"'));
  });

  it('refuses an offset that is not a number', async () => {
    const tensor = externalTensor('w', [4, 3], 'weights.bin');
    tensor.externalData?.push({ key: 'offset', value: '-4' });
    const file = writeModel(path.join(folder, 'bad-offset.onnx'), graphWith([tensor]));
    await assert.rejects(openModel(file), expectModelError('bad-offset.onnx', '"w"', 'offset "-4"'));
  });
});

describe('openModel: format detection', () => {
  it('refuses pickle checkpoints without reading them', async () => {
    for (const name of ['model.pt', 'model.PTH', 'pytorch_model.bin', 'last.ckpt']) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, Buffer.from([0x80, 0x02, 0x7d, 0x71]));
      await assert.rejects(openModel(file), expectModelError(name, 'never unpickled', 'safetensors'));
    }
  });

  it('recognises formats by content when the extension says nothing', async () => {
    const onnxCopy = path.join(dir, 'classifier.model');
    fs.copyFileSync(CLS, onnxCopy);
    const model = await openModel(onnxCopy);
    assert.equal(model.summary.format, 'onnx');
    await model.close();

    const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1, 1], data_offsets: [0, 4] } }));
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    const checkpoint = path.join(dir, 'weights.data');
    fs.writeFileSync(checkpoint, Buffer.concat([length, header, f32Bytes([2.5])]));
    const st = await openModel(checkpoint);
    assert.equal(st.summary.format, 'safetensors');
    assert.deepEqual([...(await st.readTensorF32('w'))], [2.5]);
    await st.close();

    const text = path.join(dir, 'notes.txt');
    fs.writeFileSync(text, '(not a model)');
    await assert.rejects(openModel(text), expectModelError('notes.txt', 'unsupported file type'));
  });

  it('names a missing file or a folder', async () => {
    await assert.rejects(openModel(path.join(dir, 'nowhere.onnx')), expectModelError('nowhere.onnx', 'not found'));
    const folder = path.join(dir, 'folder.onnx');
    fs.mkdirSync(folder);
    await assert.rejects(openModel(folder), expectModelError('folder.onnx', 'directory'));
    await assert.rejects(openOnnx(folder), expectModelError('folder.onnx', 'directory'));
  });
});
