import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ModelError } from '../../extension/engine/errors';
import { openModel } from '../../extension/engine/model/open';
import { openSafetensors } from '../../extension/engine/model/safetensors';
import { decodeToF32 } from '../../extension/engine/model/tensor';
import type { DType } from '../../extension/protocol/records';

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-safetensors-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Writes u64 LE header length, the header text, then the data bytes. */
function writeSafetensors(name: string, header: string | Uint8Array, data: Uint8Array, declaredLength?: bigint): string {
  const headerBytes = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(declaredLength ?? BigInt(headerBytes.length));
  const file = path.join(dir, name);
  fs.writeFileSync(file, Buffer.concat([length, headerBytes, data]));
  return file;
}

interface TensorSpec {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

function buildFile(name: string, tensors: Record<string, TensorSpec>, metadata?: Record<string, string>): string {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [key, t] of Object.entries(tensors)) {
    header[key] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    chunks.push(t.bytes);
    offset += t.bytes.length;
  }
  return writeSafetensors(name, JSON.stringify(header), Buffer.concat(chunks));
}

function u16le(words: number[]): Uint8Array {
  const b = Buffer.alloc(words.length * 2);
  words.forEach((w, i) => b.writeUInt16LE(w, i * 2));
  return b;
}

// IEEE half-precision bit patterns and their exact values.
const F16_CASES: [number, number][] = [
  [0x3c00, 1],
  [0xc000, -2],
  [0x3800, 0.5],
  [0x3555, 0.333251953125],
  [0x7bff, 65504],
  [0x0001, 2 ** -24], // smallest subnormal
  [0x0400, 2 ** -14], // smallest normal
  [0x8000, -0],
  [0x7c00, Infinity],
  [0xfc00, -Infinity],
];
// bfloat16 bit patterns (top half of float32) and their exact values.
const BF16_CASES: [number, number][] = [
  [0x3f80, 1],
  [0xc040, -3],
  [0x4049, 3.140625],
  [0x3e20, 0.15625],
  [0x4780, 65536],
  [0x0080, 2 ** -126],
];
const F32_VALUES = [1.5, -2.25, 0, 1024.125, -0.0078125, 3e38];
const I8_VALUES = [-128, -1, 0, 1, 64, 127];
const I64_VALUES = [-5n, 2n ** 40n, 0n];

function expectModelError(...fragments: string[]) {
  return (err: unknown) => {
    assert.ok(err instanceof ModelError, `expected ModelError, got ${String(err)}`);
    for (const fragment of fragments) assert.ok(err.message.includes(fragment), `"${err.message}" should mention ${fragment}`);
    return true;
  };
}

describe('safetensors: a file with every common dtype', () => {
  let file: string;
  before(() => {
    const f32 = Buffer.alloc(F32_VALUES.length * 4);
    F32_VALUES.forEach((v, i) => f32.writeFloatLE(v, i * 4));
    const i64 = Buffer.alloc(I64_VALUES.length * 8);
    I64_VALUES.forEach((v, i) => i64.writeBigInt64LE(v, i * 8));
    file = buildFile(
      'mixed.safetensors',
      {
        'blocks.0.attn.qkv.weight': { dtype: 'F32', shape: [2, 3], bytes: f32 },
        'blocks.0.attn.qkv.bias': { dtype: 'F32', shape: [2], bytes: f32.subarray(0, 8) },
        'blocks.1.mlp.fc1.weight': { dtype: 'F16', shape: [2, 5], bytes: u16le(F16_CASES.map(([bits]) => bits)) },
        'blocks.1.mlp.fc2.weight': { dtype: 'BF16', shape: [3, 2], bytes: u16le(BF16_CASES.map(([bits]) => bits)) },
        'quantized.weight': { dtype: 'I8', shape: [3, 2], bytes: Buffer.from(Int8Array.from(I8_VALUES).buffer) },
        'positions': { dtype: 'I64', shape: [3], bytes: i64 },
        'fp8.weight': { dtype: 'F8_E4M3', shape: [2, 2], bytes: Buffer.from([1, 2, 3, 4]) },
        'empty.weight': { dtype: 'F32', shape: [0, 4], bytes: Buffer.alloc(0) },
      },
      { format: 'pt', note: 'written by the test' },
    );
  });

  it('summarizes the header', async () => {
    const model = await openSafetensors(file);
    try {
      const s = model.summary;
      assert.equal(s.format, 'safetensors');
      assert.equal(s.fileName, 'mixed.safetensors');
      assert.equal(s.fileBytes, fs.statSync(file).size);
      assert.equal(s.tensorCount, 8);
      assert.equal(s.parameterCount, 6 + 2 + 10 + 6 + 6 + 3 + 4 + 0);
      assert.equal(s.parameterBytes, 24 + 8 + 20 + 12 + 6 + 24 + 4);
      assert.deepEqual(s.metadata, { format: 'pt', note: 'written by the test' });
      assert.equal(s.warnings.length, 1);
      assert.match(s.warnings[0], /F8_E4M3/);
    } finally {
      await model.close();
    }
  });

  it('lists floating tensors of rank ≥ 2 as layers, in file order', async () => {
    const model = await openSafetensors(file);
    try {
      assert.deepEqual(
        model.layers.map((l) => [l.name, l.dtype, l.shape, l.channelAxis, l.group]),
        [
          ['blocks.0.attn.qkv.weight', 'F32', [2, 3], 0, ['block 0', 'attn']],
          ['blocks.1.mlp.fc1.weight', 'F16', [2, 5], 0, ['block 1', 'mlp']],
          ['blocks.1.mlp.fc2.weight', 'BF16', [3, 2], 0, ['block 1', 'mlp']],
          ['empty.weight', 'F32', [0, 4], 0, []],
        ],
      );
      assert.equal(model.summary.layerCount, 4);
      assert.equal(model.summary.layerParameterCount, 6 + 10 + 6);
    } finally {
      await model.close();
    }
  });

  it('decodes F32, F16, BF16, I8 and I64 exactly', async () => {
    const model = await openModel(file);
    try {
      assert.deepEqual([...(await model.readTensorF32('blocks.0.attn.qkv.weight'))], F32_VALUES.map(Math.fround));
      assert.deepEqual([...(await model.readTensorF32('blocks.0.attn.qkv.bias'))], F32_VALUES.slice(0, 2));
      const f16 = await model.readTensorF32('blocks.1.mlp.fc1.weight');
      assert.deepEqual([...f16], F16_CASES.map(([, v]) => v));
      assert.ok(Object.is(f16[7], -0), 'negative zero keeps its sign');
      assert.deepEqual([...(await model.readTensorF32('blocks.1.mlp.fc2.weight'))], BF16_CASES.map(([, v]) => v));
      assert.deepEqual([...(await model.readTensorF32('quantized.weight'))], I8_VALUES);
      assert.deepEqual([...(await model.readTensorF32('positions'))], I64_VALUES.map(Number));
      assert.equal((await model.readTensorF32('empty.weight')).length, 0);
    } finally {
      await model.close();
    }
  });

  it('refuses unknown tensors and dtypes it does not decode, naming them', async () => {
    const model = await openSafetensors(file);
    try {
      await assert.rejects(model.readTensorF32('nope'), expectModelError('mixed.safetensors', '"nope"'));
      await assert.rejects(model.readTensorF32('fp8.weight'), expectModelError('mixed.safetensors', '"fp8.weight"', 'F8_E4M3'));
    } finally {
      await model.close();
    }
  });
});

describe('safetensors: large files are read by byte range', () => {
  it('opens a 3 GiB sparse file and reads a tensor stored past 2^31', async () => {
    const bigBytes = 3 * 2 ** 30;
    const header = JSON.stringify({
      'huge.weight': { dtype: 'F32', shape: [786432, 1024], data_offsets: [0, bigBytes] },
      'tail.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [bigBytes, bigBytes + 16] },
    });
    const file = writeSafetensors('sparse.safetensors', header, new Uint8Array(0));
    const tail = Buffer.alloc(16);
    [0.5, -1, 7, 1e-3].forEach((v, i) => tail.writeFloatLE(v, i * 4));
    const handle = fs.openSync(file, 'r+');
    try {
      fs.writeSync(handle, tail, 0, 16, 8 + Buffer.byteLength(header) + bigBytes);
    } finally {
      fs.closeSync(handle);
    }
    const model = await openModel(file);
    try {
      assert.equal(model.summary.parameterCount, 786432 * 1024 + 4);
      assert.deepEqual(model.layers.map((l) => l.name), ['huge.weight', 'tail.weight']);
      assert.deepEqual([...(await model.readTensorF32('tail.weight'))], [0.5, -1, 7, Math.fround(1e-3)]);
    } finally {
      await model.close();
      fs.rmSync(file);
    }
  });
});

describe('safetensors: malformed headers', () => {
  const goodData = Buffer.alloc(16);
  const entry = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });
  const cases: { name: string; make: () => string; fragments: string[] }[] = [
    {
      name: 'shorter than the length prefix',
      make: () => {
        const file = path.join(dir, 'tiny.safetensors');
        fs.writeFileSync(file, Buffer.from([1, 2, 3]));
        return file;
      },
      fragments: ['tiny.safetensors', 'too short'],
    },
    {
      name: 'header length past the end of the file',
      make: () => writeSafetensors('past-eof.safetensors', '{}', goodData, 1_000_000n),
      fragments: ['past-eof.safetensors', 'header length 1000000'],
    },
    {
      name: 'absurd header length',
      make: () => writeSafetensors('absurd.safetensors', '{}', goodData, 2n ** 63n),
      fragments: ['absurd.safetensors', 'header length'],
    },
    {
      name: 'header not UTF-8',
      make: () => writeSafetensors('latin1.safetensors', Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]), goodData),
      fragments: ['latin1.safetensors', 'UTF-8'],
    },
    {
      name: 'header not JSON',
      make: () => writeSafetensors('badjson.safetensors', '{"a": {"dtype": ', goodData),
      fragments: ['badjson.safetensors', 'not valid JSON'],
    },
    {
      name: 'header not an object',
      make: () => writeSafetensors('array.safetensors', '[1, 2]', goodData),
      fragments: ['array.safetensors', 'not a JSON object'],
    },
    {
      name: 'bytes do not match shape × dtype',
      make: () => writeSafetensors('mismatch.safetensors', JSON.stringify({ w: entry('F32', [3], [0, 8]) }), goodData),
      fragments: ['mismatch.safetensors', 'tensor "w"', 'needs 12 bytes', 'span 8'],
    },
    {
      name: 'offsets past the data region',
      make: () => writeSafetensors('outside.safetensors', JSON.stringify({ w: entry('F32', [4], [8, 24]) }), goodData),
      fragments: ['outside.safetensors', 'tensor "w"', 'past the data region'],
    },
    {
      name: 'offsets reversed',
      make: () => writeSafetensors('reversed.safetensors', JSON.stringify({ w: entry('U8', [0], [8, 4]) }), goodData),
      fragments: ['reversed.safetensors', 'tensor "w"', 'end before'],
    },
    {
      name: 'overlapping tensors',
      make: () =>
        writeSafetensors(
          'overlap.safetensors',
          JSON.stringify({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }),
          goodData,
        ),
      fragments: ['overlap.safetensors', 'tensor "b" overlaps tensor "a"'],
    },
    {
      name: 'unknown dtype',
      make: () => writeSafetensors('dtype.safetensors', JSON.stringify({ w: entry('F7', [2], [0, 2]) }), goodData),
      fragments: ['dtype.safetensors', 'tensor "w"', 'unknown dtype "F7"'],
    },
    {
      name: 'negative dimension',
      make: () => writeSafetensors('negative.safetensors', JSON.stringify({ w: entry('F32', [-1, 4], [0, 16]) }), goodData),
      fragments: ['negative.safetensors', 'tensor "w"', 'shape'],
    },
    {
      name: 'fractional offset',
      make: () => writeSafetensors('fraction.safetensors', JSON.stringify({ w: entry('U8', [1], [0.5, 1.5]) }), goodData),
      fragments: ['fraction.safetensors', 'tensor "w"', 'data_offsets'],
    },
    {
      name: 'missing data_offsets',
      make: () => writeSafetensors('nooffsets.safetensors', JSON.stringify({ w: { dtype: 'F32', shape: [1] } }), goodData),
      fragments: ['nooffsets.safetensors', 'tensor "w"', 'data_offsets'],
    },
    {
      name: 'metadata that is not string → string',
      make: () => writeSafetensors('meta.safetensors', JSON.stringify({ __metadata__: { epoch: 3 } }), goodData),
      fragments: ['meta.safetensors', '__metadata__'],
    },
  ];
  for (const c of cases) {
    it(`${c.name} → ModelError`, async () => {
      await assert.rejects(openModel(c.make()), expectModelError(...c.fragments));
    });
  }

  it('a hostile key such as __proto__ is just a tensor name', async () => {
    const file = writeSafetensors(
      'proto.safetensors',
      '{"__proto__": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}',
      goodData,
    );
    const model = await openModel(file);
    try {
      assert.deepEqual(model.layers.map((l) => l.name), ['__proto__']);
      assert.deepEqual([...(await model.readTensorF32('__proto__'))], [0, 0, 0, 0]);
    } finally {
      await model.close();
    }
  });
});

describe('decodeToF32', () => {
  // Each dtype: element size and an independent reader of one little-endian element.
  const readers: [DType, number, (b: Buffer, offset: number) => number][] = [
    ['F64', 8, (b, o) => b.readDoubleLE(o)],
    ['F32', 4, (b, o) => b.readFloatLE(o)],
    ['I64', 8, (b, o) => Number(b.readBigInt64LE(o))],
    ['U64', 8, (b, o) => Number(b.readBigUInt64LE(o))],
    ['I32', 4, (b, o) => b.readInt32LE(o)],
    ['U32', 4, (b, o) => b.readUInt32LE(o)],
    ['I16', 2, (b, o) => b.readInt16LE(o)],
    ['U16', 2, (b, o) => b.readUInt16LE(o)],
    ['I8', 1, (b, o) => b.readInt8(o)],
    ['U8', 1, (b, o) => b.readUInt8(o)],
    ['BOOL', 1, (b, o) => (b[o] ? 1 : 0)],
  ];
  // Deterministic bytes; NaN patterns are avoided so that equality is meaningful.
  const source = Buffer.alloc(1 + 8 * 64);
  for (let i = 0; i < source.length; i++) source[i] = (i * 37 + 11) & 0x3f;

  for (const [dtype, size, read] of readers) {
    it(`${dtype}: aligned and unaligned bytes decode the same, element by element`, () => {
      for (const start of [0, 1]) {
        const bytes = source.subarray(start, start + 64 * size);
        const expected = Array.from({ length: 64 }, (_, i) => Math.fround(read(bytes, i * size)));
        assert.deepEqual([...decodeToF32(bytes, dtype)], expected);
      }
    });
  }

  it('F16 and BF16 follow their bit layouts for every pattern', () => {
    const words = new Uint16Array(65536).map((_, i) => i);
    const bytes = new Uint8Array(words.buffer);
    const f16 = decodeToF32(bytes, 'F16');
    const bf16 = decodeToF32(bytes, 'BF16');
    const word = Buffer.alloc(4);
    for (let bits = 0; bits < 65536; bits++) {
      const exponent = (bits >> 10) & 0x1f;
      const fraction = bits & 0x3ff;
      const sign = bits & 0x8000 ? -1 : 1;
      const half =
        exponent === 0 ? sign * fraction * 2 ** -24
        : exponent === 31 ? (fraction ? NaN : sign * Infinity)
        : sign * (1024 + fraction) * 2 ** (exponent - 25);
      assert.ok(Object.is(f16[bits], half), `F16 0x${bits.toString(16)}: ${f16[bits]} vs ${half}`);
      word.writeUInt32LE(bits * 65536);
      assert.ok(Object.is(bf16[bits], word.readFloatLE(0)), `BF16 0x${bits.toString(16)}`);
    }
  });

  it('refuses byte counts that are not whole elements', () => {
    assert.throws(() => decodeToF32(new Uint8Array(6), 'F32'), RangeError);
    assert.throws(() => decodeToF32(new Uint8Array(4), 'STRING'), RangeError);
  });
});
