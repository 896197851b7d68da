// Generates resources/sample/dit-sample.onnx: a small class-conditional diffusion transformer shaped like DiT
// (Peebles & Xie), with deterministic pseudo-random weights. Run with `npm run sample`; an optional argument names
// another output path. The same seed always gives the same bytes, and a unit test holds the committed file to that.
import * as fs from 'fs';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { fnv1a, mulberry32 } from '../extension/engine/random';

export const SAMPLE_CONFIG = {
  inChannels: 4,
  imageSize: 16,
  patchSize: 2,
  hidden: 128,
  depth: 4,
  heads: 4,
  mlpRatio: 4,
  numClasses: 10,
  /** Width of the sinusoidal timestep features fed to t_embedder.mlp.0 (DiT: 256). */
  frequencyDim: 256,
  seed: 20240602,
  opset: 17,
  irVersion: 8,
} as const;

/** Where `npm run sample` writes; the compiled script lives in out/scripts/, two levels below the repo root. */
export const DEFAULT_SAMPLE_PATH = path.resolve(__dirname, '..', '..', 'resources', 'sample', 'dit-sample.onnx');

// ---------------------------------------------------------------------------------------------------------------
// Deterministic random numbers. Each tensor gets its own stream seeded from its name, so adding or reordering a
// layer never changes the weights of the others.

/** Standard normal samples by Box–Muller, one stream per tensor name. */
function normalStream(name: string): () => number {
  const uniform = mulberry32(fnv1a(name) ^ SAMPLE_CONFIG.seed);
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    const u1 = 1 - uniform(); // (0, 1]: keeps log() finite
    const u2 = uniform();
    const radius = Math.sqrt(-2 * Math.log(u1));
    spare = radius * Math.sin(2 * Math.PI * u2);
    return radius * Math.cos(2 * Math.PI * u2);
  };
}

function randomNormal(name: string, count: number, std: number): Float32Array {
  const next = normalStream(name);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = next() * std;
  return values;
}

/** `count` distinct indices below `limit`, sorted, drawn from `uniform`. */
export function pickDistinct(uniform: () => number, count: number, limit: number): number[] {
  const chosen: number[] = [];
  while (chosen.length < count) {
    const index = Math.floor(uniform() * limit);
    if (!chosen.includes(index)) chosen.push(index);
  }
  return chosen.sort((a, b) => a - b);
}

/** Picks `count` distinct indices below `limit`, reproducibly from `name`. */
function pickChannels(name: string, count: number, limit: number): number[] {
  return pickDistinct(mulberry32(fnv1a(name) ^ SAMPLE_CONFIG.seed), count, limit);
}

// ---------------------------------------------------------------------------------------------------------------
// A tiny graph builder: just enough to write the graph the way torch.onnx would export it.

type Attribute = onnx.IAttributeProto;
export const attr = {
  int: (name: string, i: number): Attribute => ({ name, type: onnx.AttributeProto.AttributeType.INT, i }),
  ints: (name: string, ints: number[]): Attribute => ({ name, type: onnx.AttributeProto.AttributeType.INTS, ints }),
  float: (name: string, f: number): Attribute => ({ name, type: onnx.AttributeProto.AttributeType.FLOAT, f }),
};

export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private readonly names = new Set<string>();

  /** Float32 initializer stored as raw little-endian bytes, as exporters write them. */
  addInitializer(name: string, dims: number[], values: Float32Array): string {
    this.checkShape(name, dims, values.length);
    this.initializers.push({
      name,
      dims,
      dataType: onnx.TensorProto.DataType.FLOAT,
      rawData: littleEndianBytes(values),
    });
    return name;
  }

  addInt64Initializer(name: string, dims: number[], values: number[]): string {
    this.checkShape(name, dims, values.length);
    this.initializers.push({
      name,
      dims,
      dataType: onnx.TensorProto.DataType.INT64,
      rawData: littleEndianBytes(BigInt64Array.from(values, BigInt)),
    });
    return name;
  }

  /** A float scalar constant (rank 0), e.g. the 0.5 in GELU. */
  scalar(name: string, value: number): string {
    return this.addInitializer(name, [], Float32Array.of(value));
  }

  /**
   * Adds one node and returns its outputs: the names given, or for a count `<node>_output` / `<node>_output_<i>`.
   */
  addNode(opType: string, name: string, inputs: string[], attributes: Attribute[] = [], outputsOrCount: string[] | number = 1): string[] {
    if (this.names.has(name)) throw new Error(`duplicate node name ${name}`);
    this.names.add(name);
    const outputs = Array.isArray(outputsOrCount)
      ? outputsOrCount
      : outputsOrCount === 1
        ? [`${name}_output`]
        : Array.from({ length: outputsOrCount }, (_, i) => `${name}_output_${i}`);
    this.nodes.push({ name, opType, input: inputs, output: outputs, attribute: attributes });
    return outputs;
  }

  /** Single-output shorthand for addNode. */
  op(opType: string, name: string, inputs: string[], attributes: Attribute[] = []): string {
    return this.addNode(opType, name, inputs, attributes)[0];
  }

  private checkShape(name: string, dims: number[], length: number): void {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (expected !== length) throw new Error(`${name}: shape [${dims}] needs ${expected} values, got ${length}`);
  }
}

function littleEndianBytes(values: Float32Array | BigInt64Array): Uint8Array {
  const bytes = new Uint8Array(values.byteLength);
  const view = new DataView(bytes.buffer);
  values.forEach((value: number | bigint, i: number) => {
    if (typeof value === 'bigint') view.setBigInt64(i * 8, value, true);
    else view.setFloat32(i * 4, value, true);
  });
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Layer helpers. Weights follow the usual fan-in scaling, N(0, 1/sqrt(fan_in)), so activations keep unit scale.

interface LinearOptions {
  /** Multiply the weight by this after sampling (conditioning paths that must be strong). */
  gain?: number;
  /** Per-input-channel multiplier (rows of the [in, out] weight). */
  inputGain?: (row: number) => number;
  /** Input channels (rows of the [in, out] weight) scaled up: the outlier channels quantizers struggle with. */
  outlierInputs?: { channels: number[]; factor: number };
  /** Output channels (columns) scaled up: one hot channel in the residual stream, as trained transformers grow. */
  outlierOutputs?: { channels: number[]; factor: number };
}

function linearWeight(name: string, inFeatures: number, outFeatures: number, options: LinearOptions): Float32Array {
  const weight = randomNormal(`${name}.weight`, inFeatures * outFeatures, (options.gain ?? 1) / Math.sqrt(inFeatures));
  const rowGain = (row: number) =>
    (options.inputGain?.(row) ?? 1) * (options.outlierInputs?.channels.includes(row) ? options.outlierInputs.factor : 1);
  const colGain = (col: number) => (options.outlierOutputs?.channels.includes(col) ? options.outlierOutputs.factor : 1);
  for (let row = 0; row < inFeatures; row++) {
    for (let col = 0; col < outFeatures; col++) weight[row * outFeatures + col] *= rowGain(row) * colGain(col);
  }
  return weight;
}

function linearBias(name: string, outFeatures: number): Float32Array {
  return randomNormal(`${name}.bias`, outFeatures, 0.02);
}

/** nn.Linear the way torch.onnx exports it: MatMul by a [in, out] weight, then Add of the bias. */
function linear(g: GraphBuilder, name: string, x: string, inFeatures: number, outFeatures: number, options: LinearOptions = {}): string {
  const weight = g.addInitializer(`${name}.weight`, [inFeatures, outFeatures], linearWeight(name, inFeatures, outFeatures, options));
  const bias = g.addInitializer(`${name}.bias`, [outFeatures], linearBias(name, outFeatures));
  return g.op('Add', `${name}/Add`, [g.op('MatMul', name, [x, weight]), bias]);
}

/** nn.Linear as a Gemm with the torch layout [out, in] and transB=1, the other form exporters produce for 2-D input. */
function gemm(g: GraphBuilder, name: string, x: string, inFeatures: number, outFeatures: number, options: LinearOptions = {}): string {
  const inOut = linearWeight(name, inFeatures, outFeatures, options);
  const outIn = new Float32Array(inOut.length);
  for (let i = 0; i < inFeatures; i++) for (let o = 0; o < outFeatures; o++) outIn[o * inFeatures + i] = inOut[i * outFeatures + o];
  const weight = g.addInitializer(`${name}.weight`, [outFeatures, inFeatures], outIn);
  const bias = g.addInitializer(`${name}.bias`, [outFeatures], linearBias(name, outFeatures));
  return g.op('Gemm', name, [x, weight, bias], [attr.int('transB', 1)]);
}

/** SiLU(x) = x·sigmoid(x); opset 17 has no SiLU op. */
function silu(g: GraphBuilder, name: string, x: string): string {
  return g.op('Mul', `${name}/Mul`, [x, g.op('Sigmoid', `${name}/Sigmoid`, [x])]);
}

/** GELU, tanh approximation as in DiT's MLP: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
function gelu(g: GraphBuilder, name: string, x: string, constants: Constants): string {
  const cube = g.op('Pow', `${name}/Pow`, [x, constants.three]);
  const inner = g.op('Add', `${name}/Add`, [x, g.op('Mul', `${name}/Mul_cubic`, [cube, constants.geluCubic])]);
  const tanh = g.op('Tanh', `${name}/Tanh`, [g.op('Mul', `${name}/Mul_scale`, [inner, constants.geluScale])]);
  const onePlus = g.op('Add', `${name}/Add_one`, [tanh, constants.one]);
  return g.op('Mul', `${name}/Mul_half`, [g.op('Mul', `${name}/Mul`, [x, onePlus]), constants.half]);
}

/** LayerNorm without learned affine (DiT's elementwise_affine=False): ONNX requires a scale, so a shared ones vector. */
function layerNorm(g: GraphBuilder, name: string, x: string, constants: Constants): string {
  return g.op('LayerNormalization', name, [x, constants.layerNormOnes], [attr.int('axis', -1), attr.float('epsilon', 1e-6)]);
}

/** DiT's modulate(): x·(1 + scale) + shift, with shift and scale [batch, 1, hidden] broadcast over tokens. */
function modulate(g: GraphBuilder, name: string, x: string, shift: string, scale: string, constants: Constants): string {
  const onePlusScale = g.op('Add', `${name}/Add_one`, [scale, constants.one]);
  return g.op('Add', `${name}/Add_shift`, [g.op('Mul', `${name}/Mul_scale`, [x, onePlusScale]), shift]);
}

/** adaLN_modulation = Sequential(SiLU, Linear); its output [batch, chunks·hidden] split into [batch, 1, hidden] pieces. */
function adaLNModulation(g: GraphBuilder, prefix: string, c: string, chunks: number, constants: Constants, options: LinearOptions): string[] {
  const { hidden } = SAMPLE_CONFIG;
  const projected = linear(g, `${prefix}.adaLN_modulation.1`, silu(g, `${prefix}.adaLN_modulation.0`, c), hidden, chunks * hidden, options);
  const perToken = g.op('Unsqueeze', `${prefix}.adaLN_modulation/Unsqueeze`, [projected, constants.axis1]);
  return g.addNode('Split', `${prefix}.adaLN_modulation/Split`, [perToken], [attr.int('axis', 2)], chunks);
}

interface Constants {
  one: string;
  half: string;
  three: string;
  geluCubic: string;
  geluScale: string;
  attentionScale: string;
  layerNormOnes: string;
  axis1: string;
  qkvIndex: [string, string, string];
  qkvShape: string;
  tokensShape: string;
  patchTokensShape: string;
  unpatchShape: string;
  imageShape: string;
}

function addConstants(g: GraphBuilder): Constants {
  const { hidden, heads, imageSize, patchSize, inChannels } = SAMPLE_CONFIG;
  const grid = imageSize / patchSize;
  // In Reshape shapes, 0 copies the input's dimension: that keeps the batch dimension symbolic.
  return {
    one: g.scalar('const.one', 1),
    half: g.scalar('const.half', 0.5),
    three: g.scalar('const.three', 3),
    geluCubic: g.scalar('const.gelu_cubic', 0.044715),
    geluScale: g.scalar('const.gelu_sqrt_2_over_pi', Math.sqrt(2 / Math.PI)),
    attentionScale: g.scalar('const.attention_scale', 1 / Math.sqrt(hidden / heads)),
    layerNormOnes: g.addInitializer('const.layernorm_ones', [hidden], new Float32Array(hidden).fill(1)),
    axis1: g.addInt64Initializer('const.axes_1', [1], [1]),
    qkvIndex: [0, 1, 2].map((i) => g.addInt64Initializer(`const.index_${i}`, [], [i])) as [string, string, string],
    qkvShape: g.addInt64Initializer('const.qkv_shape', [5], [0, -1, 3, heads, hidden / heads]),
    tokensShape: g.addInt64Initializer('const.tokens_shape', [3], [0, -1, hidden]),
    patchTokensShape: g.addInt64Initializer('const.patch_tokens_shape', [3], [0, hidden, grid * grid]),
    unpatchShape: g.addInt64Initializer('const.unpatchify_shape', [6], [0, grid, grid, patchSize, patchSize, inChannels]),
    imageShape: g.addInt64Initializer('const.image_shape', [4], [0, inChannels, imageSize, imageSize]),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Fixed (non-learned) embeddings, computed here in float64 as DiT computes them in numpy.

/** DiT's 2-D sin-cos positional embedding: half the channels encode the row, half the column. */
function sinCosPositionalEmbedding(grid: number, dim: number): Float32Array {
  const quarter = dim / 4;
  const table = new Float32Array(grid * grid * dim);
  for (let row = 0; row < grid; row++) {
    for (let col = 0; col < grid; col++) {
      const base = (row * grid + col) * dim;
      for (let k = 0; k < quarter; k++) {
        const omega = 1 / Math.pow(10000, k / quarter);
        table[base + k] = Math.sin(row * omega);
        table[base + quarter + k] = Math.cos(row * omega);
        table[base + 2 * quarter + k] = Math.sin(col * omega);
        table[base + 3 * quarter + k] = Math.cos(col * omega);
      }
    }
  }
  return table;
}

/** Frequencies of the sinusoidal timestep embedding: exp(−ln(10000)·k/half), k = 0..half−1 (DiT's max_period). */
function timestepFrequencies(): Float32Array {
  const half = SAMPLE_CONFIG.frequencyDim / 2;
  return Float32Array.from({ length: half }, (_, k) => Math.exp((-Math.log(10000) * k) / half));
}

// ---------------------------------------------------------------------------------------------------------------
// The model.

/**
 * Row gain for t_embedder.mlp.0. Feature k (cos and sin alike) turns at frequency 10000^(−k/half): small k alias to
 * noise over t = 0..999 and large k hardly move, so the gain peaks (×4) where one slow period spans the timestep
 * range (k ≈ 90 of 128) and stays small elsewhere. The conditioning then drifts smoothly with t, as a trained
 * timestep embedder's does, and activation ranges change steadily from t=0 to t=999 rather than at random.
 */
function smoothTimestepGain(row: number): number {
  const half = SAMPLE_CONFIG.frequencyDim / 2;
  const k = row % half;
  return 0.05 + 4 * Math.exp(-(((k - 90) / 10) ** 2));
}

/** Planted outliers per block, chosen reproducibly; the README lists them. */
export function plantedOutliers(block: number): { qkvInputs: number[]; fc1Inputs: number[]; fc2Output: number } {
  const { hidden } = SAMPLE_CONFIG;
  return {
    qkvInputs: pickChannels(`blocks.${block}.attn.qkv.outliers`, 3, hidden),
    fc1Inputs: pickChannels(`blocks.${block}.mlp.fc1.outliers`, 2, hidden),
    fc2Output: pickChannels(`blocks.${block}.mlp.fc2.outliers`, 1, hidden)[0],
  };
}

/** adaLN weights are 1.5× the fan-in scale: strong per-timestep shift/scale, so activation ranges differ with t. */
const MODULATION_GAIN = 1.5;

/** Outlier strength grows with depth (×8 in block 0 up to ×20 in the last), so layers differ in sensitivity. */
function outlierFactor(block: number): number {
  return 8 + (12 * block) / Math.max(1, SAMPLE_CONFIG.depth - 1);
}

function ditBlock(g: GraphBuilder, block: number, x: string, c: string, constants: Constants): string {
  const { hidden, mlpRatio } = SAMPLE_CONFIG;
  const prefix = `blocks.${block}`;
  const outliers = plantedOutliers(block);
  const factor = outlierFactor(block);

  const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = adaLNModulation(g, prefix, c, 6, constants, { gain: MODULATION_GAIN });

  // Self-attention on the modulated, normalized tokens.
  const attnIn = modulate(g, `${prefix}.modulate1`, layerNorm(g, `${prefix}.norm1`, x, constants), shiftMsa, scaleMsa, constants);
  const qkv = linear(g, `${prefix}.attn.qkv`, attnIn, hidden, 3 * hidden, {
    outlierInputs: { channels: outliers.qkvInputs, factor },
  });
  // [batch, tokens, 3·hidden] → [3, batch, heads, tokens, head_dim]
  const qkvHeads = g.op('Transpose', `${prefix}.attn/Transpose_qkv`, [g.op('Reshape', `${prefix}.attn/Reshape_qkv`, [qkv, constants.qkvShape])], [
    attr.ints('perm', [2, 0, 3, 1, 4]),
  ]);
  const [q, k, v] = (['q', 'k', 'v'] as const).map((part, i) =>
    g.op('Gather', `${prefix}.attn/Gather_${part}`, [qkvHeads, constants.qkvIndex[i]], [attr.int('axis', 0)]),
  );
  const kT = g.op('Transpose', `${prefix}.attn/Transpose_k`, [k], [attr.ints('perm', [0, 1, 3, 2])]);
  const scores = g.op('Mul', `${prefix}.attn/Mul_scale`, [g.op('MatMul', `${prefix}.attn/MatMul_qk`, [q, kT]), constants.attentionScale]);
  const weights = g.op('Softmax', `${prefix}.attn/Softmax`, [scores], [attr.int('axis', -1)]);
  const context = g.op('MatMul', `${prefix}.attn/MatMul_v`, [weights, v]);
  const merged = g.op('Reshape', `${prefix}.attn/Reshape_out`, [
    g.op('Transpose', `${prefix}.attn/Transpose_out`, [context], [attr.ints('perm', [0, 2, 1, 3])]),
    constants.tokensShape,
  ]);
  const attnOut = linear(g, `${prefix}.attn.proj`, merged, hidden, hidden);
  const afterAttn = g.op('Add', `${prefix}/Add_attn`, [x, g.op('Mul', `${prefix}/Mul_gate_msa`, [gateMsa, attnOut])]);

  // MLP with its own modulation and gate.
  const mlpIn = modulate(g, `${prefix}.modulate2`, layerNorm(g, `${prefix}.norm2`, afterAttn, constants), shiftMlp, scaleMlp, constants);
  const fc1 = linear(g, `${prefix}.mlp.fc1`, mlpIn, hidden, mlpRatio * hidden, {
    outlierInputs: { channels: outliers.fc1Inputs, factor },
  });
  const fc2 = linear(g, `${prefix}.mlp.fc2`, gelu(g, `${prefix}.mlp.act`, fc1, constants), mlpRatio * hidden, hidden, {
    outlierOutputs: { channels: [outliers.fc2Output], factor },
  });
  return g.op('Add', `${prefix}/Add_mlp`, [afterAttn, g.op('Mul', `${prefix}/Mul_gate_mlp`, [gateMlp, fc2])]);
}

function buildGraph(): onnx.IGraphProto {
  const { inChannels, imageSize, patchSize, hidden, depth, numClasses, frequencyDim } = SAMPLE_CONFIG;
  const grid = imageSize / patchSize;
  const g = new GraphBuilder();
  const constants = addConstants(g);

  // Patch embedding: Conv with kernel = stride = patch, then [batch, hidden, grid²] → [batch, grid², hidden] tokens.
  const convWeight = g.addInitializer(
    'x_embedder.proj.weight',
    [hidden, inChannels, patchSize, patchSize],
    randomNormal('x_embedder.proj.weight', hidden * inChannels * patchSize * patchSize, 1 / Math.sqrt(inChannels * patchSize * patchSize)),
  );
  const convBias = g.addInitializer('x_embedder.proj.bias', [hidden], linearBias('x_embedder.proj', hidden));
  const patches = g.op('Conv', 'x_embedder.proj', ['x', convWeight, convBias], [
    attr.ints('kernel_shape', [patchSize, patchSize]),
    attr.ints('strides', [patchSize, patchSize]),
  ]);
  const tokens = g.op('Transpose', 'x_embedder/Transpose', [g.op('Reshape', 'x_embedder/Reshape', [patches, constants.patchTokensShape])], [
    attr.ints('perm', [0, 2, 1]),
  ]);
  const posEmbed = g.addInitializer('pos_embed', [1, grid * grid, hidden], sinCosPositionalEmbedding(grid, hidden));
  let x = g.op('Add', 'pos_embed/Add', [tokens, posEmbed]);

  // Timestep embedding: [cos(t·f), sin(t·f)] computed in the graph, then MLP (Gemm → SiLU → Gemm).
  const frequencies = g.addInitializer('t_embedder.frequencies', [frequencyDim / 2], timestepFrequencies());
  const phases = g.op('Mul', 't_embedder/Mul_freq', [g.op('Unsqueeze', 't_embedder/Unsqueeze', ['t', constants.axis1]), frequencies]);
  const features = g.op('Concat', 't_embedder.frequency_embedding', [g.op('Cos', 't_embedder/Cos', [phases]), g.op('Sin', 't_embedder/Sin', [phases])], [
    attr.int('axis', -1),
  ]);
  const tHidden = silu(g, 't_embedder.mlp.1', gemm(g, 't_embedder.mlp.0', features, frequencyDim, hidden, { gain: 2, inputGain: smoothTimestepGain }));
  const tEmb = gemm(g, 't_embedder.mlp.2', tHidden, hidden, hidden);

  // Class embedding: DiT keeps one extra row for the "no class" label used by classifier-free guidance.
  const table = g.addInitializer('y_embedder.embedding_table', [numClasses + 1, hidden], randomNormal('y_embedder.embedding_table', (numClasses + 1) * hidden, 0.5));
  const yEmb = g.op('Gather', 'y_embedder', [table, 'y'], [attr.int('axis', 0)]);
  const c = g.op('Add', 'c/Add', [tEmb, yEmb]);

  for (let block = 0; block < depth; block++) x = ditBlock(g, block, x, c, constants);

  // Final layer: adaLN (shift, scale), linear to patch²·channels, then unpatchify back to the latent's layout.
  const [shift, scale] = adaLNModulation(g, 'final_layer', c, 2, constants, { gain: MODULATION_GAIN });
  const finalIn = modulate(g, 'final_layer.modulate', layerNorm(g, 'final_layer.norm_final', x, constants), shift, scale, constants);
  // Gain 0.3 keeps the prediction near unit scale, like the noise it stands for, despite the strong modulation.
  const patchOut = linear(g, 'final_layer.linear', finalIn, hidden, patchSize * patchSize * inChannels, { gain: 0.3 });
  // [batch, grid², p·p·C] → [batch, grid, grid, p, p, C] → [batch, C, grid, p, grid, p] → [batch, C, H, W]
  const unpatched = g.op('Transpose', 'unpatchify/Transpose', [g.op('Reshape', 'unpatchify/Reshape', [patchOut, constants.unpatchShape])], [
    attr.ints('perm', [0, 5, 1, 3, 2, 4]),
  ]);
  g.addNode('Reshape', 'unpatchify/Reshape_out', [unpatched, constants.imageShape], [], ['out']);

  return {
    name: 'dit_sample',
    node: g.nodes,
    initializer: g.initializers,
    input: [
      tensorInfo('x', onnx.TensorProto.DataType.FLOAT, ['batch', inChannels, imageSize, imageSize]),
      tensorInfo('t', onnx.TensorProto.DataType.FLOAT, ['batch']),
      tensorInfo('y', onnx.TensorProto.DataType.INT64, ['batch']),
    ],
    output: [tensorInfo('out', onnx.TensorProto.DataType.FLOAT, ['batch', inChannels, imageSize, imageSize])],
  };
}

export function tensorInfo(name: string, elemType: number, dims: Array<number | string>): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

/** The sample model's bytes; identical on every call. */
export function buildSampleModel(): Uint8Array {
  const { hidden, depth, heads } = SAMPLE_CONFIG;
  const model: onnx.IModelProto = {
    irVersion: SAMPLE_CONFIG.irVersion,
    opsetImport: [{ domain: '', version: SAMPLE_CONFIG.opset }],
    producerName: 'quantlens-sample',
    producerVersion: '1',
    docString:
      `DiT-shaped class-conditional diffusion transformer (hidden ${hidden}, depth ${depth}, heads ${heads}) ` +
      'with deterministic random weights and planted outlier channels; written by scripts/build-sample.ts.',
    graph: buildGraph(),
  };
  return onnx.ModelProto.encode(model).finish();
}

/** Writes a generated model to `outputPath` (folders created as needed) and returns its size in bytes. */
export function writeModelFile(outputPath: string, bytes: Uint8Array): number {
  fs.mkdirSync(path.dirname(outputPath), { recursive: true });
  fs.writeFileSync(outputPath, bytes);
  return bytes.length;
}

/** Writes the sample model to `outputPath` and returns its size in bytes. */
export function writeSampleModel(outputPath: string = DEFAULT_SAMPLE_PATH): number {
  return writeModelFile(outputPath, buildSampleModel());
}

if (require.main === module) {
  const outputPath = path.resolve(process.argv[2] ?? DEFAULT_SAMPLE_PATH);
  const size = writeSampleModel(outputPath);
  console.log(`wrote ${outputPath} (${size} bytes)`);
}
