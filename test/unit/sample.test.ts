// The bundled DiT-shaped sample: it runs in onnxruntime, reacts to its conditioning, matches its generator byte for
// byte, and its pieces compute what the generator's comments say (checked against plain float64 loops).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { onnx } from 'onnx-proto';
import { DEFAULT_SAMPLE_PATH, SAMPLE_CONFIG, plantedOutliers, writeSampleModel } from '../../scripts/build-sample';

const SAMPLE_PATH = path.resolve(__dirname, '..', '..', '..', 'resources', 'sample', 'dit-sample.onnx');
const { inChannels, imageSize, patchSize, hidden, depth, frequencyDim } = SAMPLE_CONFIG;
const GRID = imageSize / patchSize;
const TOKENS = GRID * GRID;

/** Seeded standard normals (mulberry32 + Box–Muller), independent of the generator's own streams. */
function seededNormals(seed: number, count: number): Float32Array {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length: count }, () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()));
}

function feeds(x: Float32Array, t: number[], y: number[]): Record<string, ort.Tensor> {
  const batch = t.length;
  return {
    x: new ort.Tensor('float32', x, [batch, inChannels, imageSize, imageSize]),
    t: new ort.Tensor('float32', Float32Array.from(t), [batch]),
    y: new ort.Tensor('int64', BigInt64Array.from(y, BigInt), [batch]),
  };
}

function floats(tensor: ort.Tensor): Float32Array {
  return tensor.data as Float32Array;
}

function absMax(values: Float32Array): number {
  let max = 0;
  for (const v of values) max = Math.max(max, Math.abs(v));
  return max;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

interface Sample {
  model: onnx.ModelProto;
  graph: onnx.GraphProto;
  nodes: onnx.NodeProto[];
  initializers: onnx.TensorProto[];
}

function loadSample(): Sample {
  const model = onnx.ModelProto.decode(fs.readFileSync(SAMPLE_PATH));
  assert.ok(model.graph, 'sample has no graph');
  // decode() builds class instances, whose scalar and repeated fields are always present.
  const graph = model.graph as onnx.GraphProto;
  return { model, graph, nodes: graph.node as onnx.NodeProto[], initializers: graph.initializer as onnx.TensorProto[] };
}

/** An initializer's float32 values, read from its little-endian raw bytes. */
function initializerValues(sample: Sample, name: string): { dims: number[]; values: Float64Array } {
  const tensor = sample.initializers.find((t) => t.name === name);
  assert.ok(tensor, `initializer ${name} missing`);
  const raw = tensor.rawData;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const values = Float64Array.from({ length: raw.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
  return { dims: tensor.dims.map(Number), values };
}

/** The sample with some intermediate tensors added as graph outputs, so onnxruntime hands them back. */
async function sessionWithOutputs(names: string[]): Promise<ort.InferenceSession> {
  const sample = loadSample();
  for (const name of names) sample.graph.output.push({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } });
  return ort.InferenceSession.create(onnx.ModelProto.encode(sample.model).finish(), { logSeverityLevel: 3 });
}

test('the sample file is where the generator writes it, with the promised header and signature', () => {
  assert.equal(path.resolve(DEFAULT_SAMPLE_PATH), SAMPLE_PATH);
  const { model, graph } = loadSample();
  assert.equal(Number(model.irVersion), 8);
  assert.deepEqual(
    model.opsetImport.map((o) => [o.domain, Number(o.version)]),
    [['', 17]],
  );
  assert.equal(model.producerName, 'quantlens-sample');
  const shapeOf = (info: onnx.IValueInfoProto) => info.type?.tensorType?.shape?.dim?.map((d) => d.dimParam || Number(d.dimValue));
  assert.deepEqual(
    graph.input.map((i) => [i.name, i.type?.tensorType?.elemType, shapeOf(i)]),
    [
      ['x', onnx.TensorProto.DataType.FLOAT, ['batch', 4, 16, 16]],
      ['t', onnx.TensorProto.DataType.FLOAT, ['batch']],
      ['y', onnx.TensorProto.DataType.INT64, ['batch']],
    ],
  );
  assert.deepEqual(graph.output.map((o) => [o.name, shapeOf(o)]), [['out', ['batch', 4, 16, 16]]]);
  assert.ok(fs.statSync(SAMPLE_PATH).size < 6 * 1024 * 1024);
});

test('layers carry their module names, as MatMul [in, out] + Add, Gemm transB=1 and Conv', () => {
  const sample = loadSample();
  const nodes = new Map(sample.nodes.map((n) => [n.name, n]));
  const weightDims = (name: string) => initializerValues(sample, name).dims;
  assert.equal(nodes.get('x_embedder.proj')?.opType, 'Conv');
  assert.deepEqual(weightDims('x_embedder.proj.weight'), [hidden, inChannels, patchSize, patchSize]);
  for (const name of ['t_embedder.mlp.0', 't_embedder.mlp.2']) {
    const gemm = nodes.get(name);
    assert.equal(gemm?.opType, 'Gemm');
    assert.deepEqual(gemm.attribute?.map((a) => [a.name, Number(a.i)]), [['transB', 1]]);
  }
  assert.deepEqual(weightDims('t_embedder.mlp.0.weight'), [hidden, frequencyDim]);
  for (let block = 0; block < depth; block++) {
    const expected: Array<[string, number, number]> = [
      ['adaLN_modulation.1', hidden, 6 * hidden],
      ['attn.qkv', hidden, 3 * hidden],
      ['attn.proj', hidden, hidden],
      ['mlp.fc1', hidden, 4 * hidden],
      ['mlp.fc2', 4 * hidden, hidden],
    ];
    for (const [layer, inFeatures, outFeatures] of expected) {
      const name = `blocks.${block}.${layer}`;
      assert.equal(nodes.get(name)?.opType, 'MatMul', name);
      assert.deepEqual(nodes.get(name)?.input[1], `${name}.weight`);
      assert.deepEqual(weightDims(`${name}.weight`), [inFeatures, outFeatures]);
      assert.deepEqual(weightDims(`${name}.bias`), [outFeatures]);
    }
  }
  assert.equal(nodes.get('final_layer.linear')?.opType, 'MatMul');
});

test('the planted outlier channels stand out in the stored weights', () => {
  const sample = loadSample();
  // Root-mean-square of each input row (for qkv, fc1) or output column (for fc2) of a [in, out] weight.
  const lineRms = (name: string, byRow: boolean): number[] => {
    const { dims, values } = initializerValues(sample, name);
    const [rows, cols] = dims;
    const count = byRow ? rows : cols;
    return Array.from({ length: count }, (_, k) => {
      let sum = 0;
      const length = byRow ? cols : rows;
      for (let j = 0; j < length; j++) sum += (byRow ? values[k * cols + j] : values[j * cols + k]) ** 2;
      return Math.sqrt(sum / length);
    });
  };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  for (let block = 0; block < depth; block++) {
    const planted = plantedOutliers(block);
    const checks: Array<[string, boolean, number[]]> = [
      [`blocks.${block}.attn.qkv.weight`, true, planted.qkvInputs],
      [`blocks.${block}.mlp.fc1.weight`, true, planted.fc1Inputs],
      [`blocks.${block}.mlp.fc2.weight`, false, [planted.fc2Output]],
    ];
    for (const [name, byRow, channels] of checks) {
      const rms = lineRms(name, byRow);
      const typical = median(rms);
      for (const channel of channels) assert.ok(rms[channel] > 6 * typical, `${name} channel ${channel}: ${rms[channel]} vs ${typical}`);
      const others = rms.filter((_, k) => !channels.includes(k));
      assert.ok(Math.max(...others) < 2 * typical, `${name} has an unplanted outlier`);
    }
  }
});

test('onnxruntime runs the sample on batch 2: right shape, finite, unit-scale output', async () => {
  const session = await ort.InferenceSession.create(SAMPLE_PATH, { logSeverityLevel: 3 });
  const x = seededNormals(1, 2 * inChannels * imageSize * imageSize);
  const result = await session.run(feeds(x, [10, 900], [3, 7]));
  assert.deepEqual(result.out.dims, [2, inChannels, imageSize, imageSize]);
  const out = floats(result.out);
  assert.ok(out.every(Number.isFinite));
  const rms = Math.sqrt(out.reduce((s, v) => s + v * v, 0) / out.length);
  console.log(`sample output: rms ${rms.toFixed(3)}, absmax ${absMax(out).toFixed(3)}`);
  assert.ok(rms > 0.2 && rms < 5, `output rms ${rms}`);
});

test('the output depends on t and on y, and only within its own batch row', async () => {
  const session = await ort.InferenceSession.create(SAMPLE_PATH, { logSeverityLevel: 3 });
  const x = seededNormals(2, 2 * inChannels * imageSize * imageSize);
  const half = x.length / 2;
  const run = async (t: number[], y: number[]) => floats((await session.run(feeds(x, t, y))).out);
  const base = await run([100, 500], [1, 2]);
  const otherT = await run([800, 500], [1, 2]);
  const otherY = await run([100, 500], [4, 2]);
  for (const [label, changed] of [['t', otherT], ['y', otherY]] as const) {
    const rowDiff = maxAbsDiff(base.subarray(0, half), changed.subarray(0, half));
    assert.ok(rowDiff > 0.05, `changing ${label} of row 0 moved it by only ${rowDiff}`);
    assert.equal(maxAbsDiff(base.subarray(half), changed.subarray(half)), 0, `changing ${label} of row 0 moved row 1`);
  }
});

test('re-running the generator reproduces the committed file byte for byte', () => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-sample-'));
  try {
    const regenerated = path.join(folder, 'dit-sample.onnx');
    writeSampleModel(regenerated);
    assert.ok(fs.readFileSync(regenerated).equals(fs.readFileSync(SAMPLE_PATH)), 'run `npm run sample` and commit the result');
  } finally {
    fs.rmSync(folder, { recursive: true, force: true });
  }
});

test('patch embedding, timestep features and unpatchify match float64 loops', async () => {
  const sample = loadSample();
  const session = await sessionWithOutputs([
    'x_embedder.proj_output',
    'pos_embed/Add_output',
    't_embedder.frequency_embedding_output',
    'final_layer.linear/Add_output',
  ]);
  const batch = 2;
  const x = seededNormals(3, batch * inChannels * imageSize * imageSize);
  const t = [0, 737];
  const result = await session.run(feeds(x, t, [0, 9]));

  // Conv, kernel = stride = patch: out[b,o,i,j] = bias[o] + Σ W[o,c,ki,kj]·x[b,c,p·i+ki,p·j+kj]
  const weight = initializerValues(sample, 'x_embedder.proj.weight').values;
  const bias = initializerValues(sample, 'x_embedder.proj.bias').values;
  const conv = new Float64Array(batch * hidden * TOKENS);
  for (let b = 0; b < batch; b++)
    for (let o = 0; o < hidden; o++)
      for (let i = 0; i < GRID; i++)
        for (let j = 0; j < GRID; j++) {
          let sum = bias[o];
          for (let c = 0; c < inChannels; c++)
            for (let ki = 0; ki < patchSize; ki++)
              for (let kj = 0; kj < patchSize; kj++) {
                const pixel = x[((b * inChannels + c) * imageSize + patchSize * i + ki) * imageSize + patchSize * j + kj];
                sum += weight[((o * inChannels + c) * patchSize + ki) * patchSize + kj] * pixel;
              }
          conv[((b * hidden + o) * GRID + i) * GRID + j] = sum;
        }
  assert.deepEqual(result['x_embedder.proj_output'].dims, [batch, hidden, GRID, GRID]);
  assert.ok(maxAbsDiff(floats(result['x_embedder.proj_output']), conv) < 1e-4);

  // Tokens in row-major patch order, plus the positional table: tokens[b,n,d] = conv[b,d,n] + pos[n,d]
  const pos = initializerValues(sample, 'pos_embed').values;
  const tokens = new Float64Array(batch * TOKENS * hidden);
  for (let b = 0; b < batch; b++)
    for (let n = 0; n < TOKENS; n++)
      for (let d = 0; d < hidden; d++) tokens[(b * TOKENS + n) * hidden + d] = conv[(b * hidden + d) * TOKENS + n] + pos[n * hidden + d];
  assert.ok(maxAbsDiff(floats(result['pos_embed/Add_output']), tokens) < 1e-4);

  // DiT's timestep_embedding: [cos(t·f_k), sin(t·f_k)], f_k = 10000^(−k/half)
  const halfDim = frequencyDim / 2;
  const features = new Float64Array(batch * frequencyDim);
  for (let b = 0; b < batch; b++)
    for (let k = 0; k < halfDim; k++) {
      const phase = t[b] * Math.pow(10000, -k / halfDim);
      features[b * frequencyDim + k] = Math.cos(phase);
      features[b * frequencyDim + halfDim + k] = Math.sin(phase);
    }
  // float32 phases near t·f ≈ 737 carry ~5e-5 rounding; float64 here has none.
  assert.ok(maxAbsDiff(floats(result['t_embedder.frequency_embedding_output']), features) < 3e-4);

  // Unpatchify: out[b,c,p·h+pi,p·w+pj] = linear[b, h·grid+w, (pi·p+pj)·C+c]
  const patches = floats(result['final_layer.linear/Add_output']);
  const out = floats(result.out);
  let worst = 0;
  for (let b = 0; b < batch; b++)
    for (let c = 0; c < inChannels; c++)
      for (let row = 0; row < imageSize; row++)
        for (let col = 0; col < imageSize; col++) {
          const [h, pi, w, pj] = [Math.floor(row / patchSize), row % patchSize, Math.floor(col / patchSize), col % patchSize];
          const source = patches[(b * TOKENS + h * GRID + w) * patchSize * patchSize * inChannels + (pi * patchSize + pj) * inChannels + c];
          worst = Math.max(worst, Math.abs(out[((b * inChannels + c) * imageSize + row) * imageSize + col] - source));
        }
  assert.equal(worst, 0);
});

test('activation ranges change with the timestep (what per-timestep analysis needs)', async () => {
  const probes = [0, 1, 2, 3].flatMap((b) => [`blocks.${b}.attn.qkv/Add_output`, `blocks.${b}.mlp.fc1/Add_output`]);
  const session = await sessionWithOutputs(probes);
  const batch = 4;
  const x = seededNormals(4, batch * inChannels * imageSize * imageSize);
  const labels = [0, 3, 7, 10];
  const timesteps = [0, 250, 500, 750, 999];
  const ranges = new Map<string, number[]>(probes.map((p) => [p, []]));
  for (const t of timesteps) {
    const result = await session.run(feeds(x, new Array(batch).fill(t), labels), probes);
    for (const probe of probes) {
      const values = floats(result[probe]);
      assert.ok(values.every(Number.isFinite), `${probe} at t=${t}`);
      ranges.get(probe)!.push(absMax(values));
    }
  }
  console.log(`absmax at t = ${timesteps.join(', ')}`);
  let spreadOver1_5 = 0;
  for (const [probe, values] of ranges) {
    const spread = Math.max(...values) / Math.min(...values);
    if (spread > 1.5) spreadOver1_5++;
    console.log(`  ${probe.replace('/Add_output', '').padEnd(18)} ${values.map((v) => v.toFixed(1).padStart(6)).join(' ')}  (max/min ${spread.toFixed(2)})`);
  }
  // Most probed layers see their range move by half or more across the schedule.
  assert.ok(spreadOver1_5 >= probes.length / 2, `${spreadOver1_5} of ${probes.length} layers vary by more than 1.5×`);
});
