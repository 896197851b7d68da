// Generates resources/sample/llm-sample.onnx: a tiny decoder-only language model shaped like LLaMA (RMSNorm, rotary
// embeddings, causal self-attention, SwiGLU MLP, Hugging Face module names), with deterministic pseudo-random weights
// and planted massive activations at the BOS token. Run with `node out/scripts/build-llm-sample.js [OUT.onnx]` after
// `tsc -p .`; the same seed always gives the same bytes, and a unit test holds the committed file to that.
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { fnv1a, mulberry32 } from '../extension/engine/random';
import { GraphBuilder, attr, pickDistinct, tensorInfo, writeModelFile } from './build-sample';

export const LLM_SAMPLE_CONFIG = {
  vocabSize: 512,
  hidden: 128,
  layers: 4,
  heads: 4,
  intermediate: 352,
  /** Rows of the rotary cos/sin tables: the longest sequence the model accepts. */
  maxPositions: 256,
  ropeTheta: 10000,
  rmsNormEps: 1e-5,
  /** LLaMA's BOS id; every sequence starts with it, and it carries the massive activations. */
  bosTokenId: 1,
  seed: 20240228,
  opset: 17,
  irVersion: 8,
} as const;

/** Where the generator writes by default; the compiled script lives in out/scripts/, two levels below the repo root. */
export const DEFAULT_LLM_SAMPLE_PATH = path.resolve(__dirname, '..', '..', 'resources', 'sample', 'llm-sample.onnx');

// ---------------------------------------------------------------------------------------------------------------
// Deterministic random numbers: each tensor draws from its own stream seeded from its name (and this sample's seed).

function uniformStream(name: string): () => number {
  return mulberry32(fnv1a(name) ^ LLM_SAMPLE_CONFIG.seed);
}

/** N(0, std²) samples by Box–Muller. */
function randomNormal(name: string, count: number, std: number): Float32Array {
  const uniform = uniformStream(name);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const radius = Math.sqrt(-2 * Math.log(1 - uniform())) * std; // 1 − u ∈ (0, 1]: the logarithm stays finite
    const angle = 2 * Math.PI * uniform();
    values[i] = radius * Math.cos(angle);
    if (i + 1 < count) values[i + 1] = radius * Math.sin(angle);
  }
  return values;
}

/** `count` distinct indices below `limit`, sorted, reproducibly from `name`. */
function pickIndices(name: string, count: number, limit: number): number[] {
  return pickDistinct(uniformStream(name), count, limit);
}

// ---------------------------------------------------------------------------------------------------------------
// Planted structure. Trained LLMs carry "massive activations" (Sun et al. 2024): a few fixed hidden dims that are
// tens to thousands of times the rest, at the first token and a few delimiters. They come with an MLP channel whose
// SwiGLU product spikes at those tokens, so the down_proj input holds one huge value per such token (what breaks
// static per-tensor activation scales, PrefixQuant 2024). Here: three residual dims at ±BOS_MASSIVE_VALUE in the BOS
// embedding, and in every layer one gate/up channel that reads them, with a down_proj row that writes back into them.

/** Magnitude of the massive dims in the BOS embedding (the rest of the embedding is N(0, 1)). */
const BOS_MASSIVE_VALUE = 40;
/** Weight of each massive dim in the planted gate_proj / up_proj column (the normalized BOS input is ≈ ±6.5 there). */
const SPIKE_READ_WEIGHT = 0.8;
/** Other rows of the planted column, relative to the fan-in scale: the channel stays quiet at ordinary tokens. */
const SPIKE_OTHER_ROWS = 0.1;
/** down_proj row of the planted channel: its weight into each massive dim, and the rest relative to the fan-in scale. */
const SPIKE_WRITE_WEIGHT = 0.03;
const SPIKE_WRITE_OTHERS = 0.02;

export interface PlantedMassiveActivations {
  /** Hidden dims of the residual stream that are massive at the BOS token. */
  residualDims: number[];
  /** Sign of each of those dims at BOS. */
  signs: number[];
  /** Per layer, the intermediate (gate/up) channel whose SwiGLU product spikes at BOS. */
  spikeChannels: number[];
}

export function plantedMassiveActivations(): PlantedMassiveActivations {
  const { hidden, layers, intermediate } = LLM_SAMPLE_CONFIG;
  const residualDims = pickIndices('massive.residual_dims', 3, hidden);
  return {
    residualDims,
    signs: residualDims.map((_, i) => (i % 2 === 0 ? 1 : -1)),
    spikeChannels: Array.from({ length: layers }, (_, layer) => pickIndices(`model.layers.${layer}.mlp.spike_channel`, 1, intermediate)[0]),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Weights. Hugging Face stores nn.Linear as [out, in]; torch.onnx feeds MatMul the transpose, so here [in, out].

/** A bias-free projection's [in, out] weight, N(0, 1/fan_in), with `edit` applied (planted structure). */
function projectionWeight(name: string, inFeatures: number, outFeatures: number, edit?: (w: Float32Array) => void): Float32Array {
  const weight = randomNormal(`${name}.weight`, inFeatures * outFeatures, 1 / Math.sqrt(inFeatures));
  edit?.(weight);
  return weight;
}

/** RMSNorm scales as training leaves them: about 1, not exactly. */
function normWeight(name: string): Float32Array {
  return randomNormal(`${name}.weight`, LLM_SAMPLE_CONFIG.hidden, 0.1).map((v) => 1 + v);
}

function embeddingTable(planted: PlantedMassiveActivations): Float32Array {
  const { vocabSize, hidden, bosTokenId } = LLM_SAMPLE_CONFIG;
  const table = randomNormal('model.embed_tokens.weight', vocabSize * hidden, 1);
  planted.residualDims.forEach((dim, i) => (table[bosTokenId * hidden + dim] = planted.signs[i] * BOS_MASSIVE_VALUE));
  return table;
}

/** The planted gate/up column: reads the massive dims with their signs, the other rows damped. */
function plantSpikeColumn(weight: Float32Array, planted: PlantedMassiveActivations, channel: number): void {
  const { hidden, intermediate } = LLM_SAMPLE_CONFIG;
  for (let row = 0; row < hidden; row++) {
    const k = planted.residualDims.indexOf(row);
    const index = row * intermediate + channel;
    weight[index] = k >= 0 ? planted.signs[k] * SPIKE_READ_WEIGHT : weight[index] * SPIKE_OTHER_ROWS;
  }
}

/** The planted down_proj row: writes the spike back into the massive dims, little elsewhere. */
function plantSpikeRow(weight: Float32Array, planted: PlantedMassiveActivations, channel: number): void {
  const { hidden } = LLM_SAMPLE_CONFIG;
  for (let col = 0; col < hidden; col++) {
    const k = planted.residualDims.indexOf(col);
    const index = channel * hidden + col;
    weight[index] = k >= 0 ? planted.signs[k] * SPIKE_WRITE_WEIGHT : weight[index] * SPIKE_WRITE_OTHERS;
  }
}

/** Rotary tables as Hugging Face's LlamaRotaryEmbedding builds them: angle[p, i] = p·θ^(−2(i mod d/2)/d). */
function rotaryTables(): { cos: Float32Array; sin: Float32Array } {
  const { maxPositions, ropeTheta, hidden, heads } = LLM_SAMPLE_CONFIG;
  const headDim = hidden / heads;
  const half = headDim / 2;
  const cos = new Float32Array(maxPositions * headDim);
  const sin = new Float32Array(maxPositions * headDim);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < headDim; i++) {
      const angle = p * Math.pow(ropeTheta, -(2 * (i % half)) / headDim);
      cos[p * headDim + i] = Math.cos(angle);
      sin[p * headDim + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

// ---------------------------------------------------------------------------------------------------------------
// The graph, node by node as torch.onnx exports LlamaForCausalLM (no KV-cache inputs).

interface Constants {
  two: string;
  eps: string;
  attentionScale: string;
  /** Added to the scores of future positions: the float32 minimum, as Hugging Face's causal mask uses. */
  maskedScore: string;
  zero: string;
  headsShape: string;
  mergeShape: string;
  axes0: string;
  axes1: string;
}

function addConstants(g: GraphBuilder): Constants {
  const { hidden, heads, rmsNormEps } = LLM_SAMPLE_CONFIG;
  // In Reshape shapes, 0 copies the input's dimension: batch and sequence stay symbolic.
  return {
    two: g.scalar('const.two', 2),
    eps: g.scalar('const.rms_norm_eps', rmsNormEps),
    attentionScale: g.scalar('const.attention_scale', 1 / Math.sqrt(hidden / heads)),
    maskedScore: g.scalar('const.masked_score', -3.4028234663852886e38),
    zero: g.scalar('const.zero', 0),
    headsShape: g.addInt64Initializer('const.heads_shape', [4], [0, 0, heads, hidden / heads]),
    mergeShape: g.addInt64Initializer('const.merge_shape', [3], [0, 0, hidden]),
    axes0: g.addInt64Initializer('const.axes_0', [1], [0]),
    axes1: g.addInt64Initializer('const.axes_1', [1], [1]),
  };
}

/** LlamaRMSNorm: weight · x / sqrt(mean(x², −1) + eps). The last node carries the module name. */
function rmsNorm(g: GraphBuilder, name: string, x: string, constants: Constants): string {
  const weight = g.addInitializer(`${name}.weight`, [LLM_SAMPLE_CONFIG.hidden], normWeight(name));
  const meanSquare = g.op('ReduceMean', `${name}/ReduceMean`, [g.op('Pow', `${name}/Pow`, [x, constants.two])], [
    attr.ints('axes', [-1]),
    attr.int('keepdims', 1),
  ]);
  const inverseRms = g.op('Reciprocal', `${name}/Reciprocal`, [g.op('Sqrt', `${name}/Sqrt`, [g.op('Add', `${name}/Add_eps`, [meanSquare, constants.eps])])]);
  return g.op('Mul', name, [weight, g.op('Mul', `${name}/Mul`, [x, inverseRms])]);
}

/** A bias-free nn.Linear: one MatMul named after the module. */
function projection(g: GraphBuilder, name: string, x: string, inFeatures: number, outFeatures: number, edit?: (w: Float32Array) => void): string {
  const weight = g.addInitializer(`${name}.weight`, [inFeatures, outFeatures], projectionWeight(name, inFeatures, outFeatures, edit));
  return g.op('MatMul', name, [x, weight]);
}

/** [batch, seq, hidden] → [batch, heads, seq, head_dim]; `output` names the result. */
function splitHeads(g: GraphBuilder, name: string, x: string, constants: Constants, output?: string): string {
  const reshaped = g.op('Reshape', `${name}/Reshape`, [x, constants.headsShape]);
  const perm = [attr.ints('perm', [0, 2, 1, 3])];
  return output ? g.addNode('Transpose', `${name}/Transpose`, [reshaped], perm, [output])[0] : g.op('Transpose', `${name}/Transpose`, [reshaped], perm);
}

/** apply_rotary_pos_emb: x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁] over the halves of head_dim. */
function rotary(g: GraphBuilder, name: string, x: string, cos: string, sin: string, output?: string): string {
  const [first, second] = g.addNode('Split', `${name}/Split`, [x], [attr.int('axis', -1)], 2);
  const rotated = g.op('Concat', `${name}/Concat`, [g.op('Neg', `${name}/Neg`, [second]), first], [attr.int('axis', -1)]);
  const inputs = [g.op('Mul', `${name}/Mul_cos`, [x, cos]), g.op('Mul', `${name}/Mul_sin`, [rotated, sin])];
  return output ? g.addNode('Add', `${name}/Add`, inputs, [], [output])[0] : g.op('Add', `${name}/Add`, inputs);
}

interface Shared {
  constants: Constants;
  /** [seq, head_dim] rotary tables for the positions 0..seq−1. */
  cos: string;
  sin: string;
  /** [seq, seq] additive causal mask. */
  mask: string;
  planted: PlantedMassiveActivations;
}

function decoderLayer(g: GraphBuilder, layer: number, x: string, shared: Shared): string {
  const { hidden, intermediate } = LLM_SAMPLE_CONFIG;
  const { constants, planted } = shared;
  const prefix = `model.layers.${layer}`;
  const attn = `${prefix}.self_attn`;

  const attnIn = rmsNorm(g, `${prefix}.input_layernorm`, x, constants);
  const q = rotary(g, `${attn}/rotary_q`, splitHeads(g, `${attn}/heads_q`, projection(g, `${attn}.q_proj`, attnIn, hidden, hidden), constants), shared.cos, shared.sin);
  // K after the rotary embedding and V are what a KV cache stores; they get names a user can pick.
  const kHeads = splitHeads(g, `${attn}/heads_k`, projection(g, `${attn}.k_proj`, attnIn, hidden, hidden), constants);
  const k = rotary(g, `${attn}/rotary_k`, kHeads, shared.cos, shared.sin, `${attn}.k`);
  const v = splitHeads(g, `${attn}/heads_v`, projection(g, `${attn}.v_proj`, attnIn, hidden, hidden), constants, `${attn}.v`);
  const kT = g.op('Transpose', `${attn}/Transpose_k`, [k], [attr.ints('perm', [0, 1, 3, 2])]);
  const scores = g.op('Mul', `${attn}/Mul_scale`, [g.op('MatMul', `${attn}/MatMul_qk`, [q, kT]), constants.attentionScale]);
  const probs = g.op('Softmax', `${attn}/Softmax`, [g.op('Add', `${attn}/Add_mask`, [scores, shared.mask])], [attr.int('axis', -1)]);
  const context = g.op('MatMul', `${attn}/MatMul_v`, [probs, v]);
  const merged = g.op('Reshape', `${attn}/Reshape_out`, [g.op('Transpose', `${attn}/Transpose_out`, [context], [attr.ints('perm', [0, 2, 1, 3])]), constants.mergeShape]);
  const afterAttn = g.op('Add', `${prefix}/Add_attn`, [x, projection(g, `${attn}.o_proj`, merged, hidden, hidden)]);

  const mlp = `${prefix}.mlp`;
  const spike = planted.spikeChannels[layer];
  const mlpIn = rmsNorm(g, `${prefix}.post_attention_layernorm`, afterAttn, constants);
  const gate = projection(g, `${mlp}.gate_proj`, mlpIn, hidden, intermediate, (w) => plantSpikeColumn(w, planted, spike));
  const up = projection(g, `${mlp}.up_proj`, mlpIn, hidden, intermediate, (w) => plantSpikeColumn(w, planted, spike));
  const silu = g.op('Mul', `${mlp}.act_fn`, [gate, g.op('Sigmoid', `${mlp}.act_fn/Sigmoid`, [gate])]);
  const product = g.op('Mul', `${mlp}/Mul`, [silu, up]);
  const down = projection(g, `${mlp}.down_proj`, product, intermediate, hidden, (w) => plantSpikeRow(w, planted, spike));
  return g.op('Add', `${prefix}/Add_mlp`, [afterAttn, down]);
}

function buildGraph(): onnx.IGraphProto {
  const { vocabSize, hidden, layers, maxPositions } = LLM_SAMPLE_CONFIG;
  const headDim = hidden / LLM_SAMPLE_CONFIG.heads;
  const g = new GraphBuilder();
  const constants = addConstants(g);
  const planted = plantedMassiveActivations();

  // Positions 0..seq−1 from the input's shape; they pick the rotary rows and build the causal mask.
  const seqIndex = g.addInt64Initializer('const.index_1', [], [1]);
  const start = g.addInt64Initializer('const.position_start', [], [0]);
  const step = g.addInt64Initializer('const.position_step', [], [1]);
  const seq = g.op('Gather', 'model/seq_len', [g.op('Shape', 'model/Shape', ['input_ids']), seqIndex], [attr.int('axis', 0)]);
  const positions = g.op('Range', 'model/positions', [start, seq, step]);
  const tables = rotaryTables();
  const cos = g.op('Gather', 'model.rotary_emb/Gather_cos', [g.addInitializer('model.rotary_emb.cos_cached', [maxPositions, headDim], tables.cos), positions], [attr.int('axis', 0)]);
  const sin = g.op('Gather', 'model.rotary_emb/Gather_sin', [g.addInitializer('model.rotary_emb.sin_cached', [maxPositions, headDim], tables.sin), positions], [attr.int('axis', 0)]);
  const future = g.op('Greater', 'model/causal_mask/Greater', [
    g.op('Unsqueeze', 'model/causal_mask/Unsqueeze_key', [positions, constants.axes0]),
    g.op('Unsqueeze', 'model/causal_mask/Unsqueeze_query', [positions, constants.axes1]),
  ]);
  const mask = g.op('Where', 'model/causal_mask', [future, constants.maskedScore, constants.zero]);

  const table = g.addInitializer('model.embed_tokens.weight', [vocabSize, hidden], embeddingTable(planted));
  let x = g.op('Gather', 'model.embed_tokens', [table, 'input_ids'], [attr.int('axis', 0)]);
  const shared: Shared = { constants, cos, sin, mask, planted };
  for (let layer = 0; layer < layers; layer++) x = decoderLayer(g, layer, x, shared);

  const normed = rmsNorm(g, 'model.norm', x, constants);
  const lmHead = g.addInitializer('lm_head.weight', [hidden, vocabSize], projectionWeight('lm_head', hidden, vocabSize));
  g.addNode('MatMul', 'lm_head', [normed, lmHead], [], ['logits']);

  return {
    name: 'llm_sample',
    node: g.nodes,
    initializer: g.initializers,
    input: [tensorInfo('input_ids', onnx.TensorProto.DataType.INT64, ['batch', 'seq'])],
    output: [tensorInfo('logits', onnx.TensorProto.DataType.FLOAT, ['batch', 'seq', vocabSize])],
  };
}

/** The LLM sample's bytes; identical on every call. */
export function buildLlmSampleModel(): Uint8Array {
  const { hidden, layers, heads, intermediate, vocabSize } = LLM_SAMPLE_CONFIG;
  const model: onnx.IModelProto = {
    irVersion: LLM_SAMPLE_CONFIG.irVersion,
    opsetImport: [{ domain: '', version: LLM_SAMPLE_CONFIG.opset }],
    producerName: 'quantlens-sample',
    producerVersion: '1',
    docString:
      `LLaMA-shaped decoder-only language model (hidden ${hidden}, ${layers} layers, ${heads} heads, MLP ${intermediate}, ` +
      `vocab ${vocabSize}) with deterministic random weights and massive activations planted at the BOS token; ` +
      'written by scripts/build-llm-sample.ts.',
    graph: buildGraph(),
  };
  return onnx.ModelProto.encode(model).finish();
}

/** Writes the LLM sample to `outputPath` (folders created as needed) and returns its size in bytes. */
export function writeLlmSampleModel(outputPath: string = DEFAULT_LLM_SAMPLE_PATH): number {
  return writeModelFile(outputPath, buildLlmSampleModel());
}

if (require.main === module) {
  const outputPath = path.resolve(process.argv[2] ?? DEFAULT_LLM_SAMPLE_PATH);
  const size = writeLlmSampleModel(outputPath);
  console.log(`wrote ${outputPath} (${size} bytes)`);
}
