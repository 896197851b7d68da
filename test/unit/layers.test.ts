import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { checkpointLayers, groupPath, onnxLayers, type TensorInfo } from '../../extension/engine/model/layers';
import { openModel } from '../../extension/engine/model/open';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const samplePath = path.join(repoRoot, 'resources', 'sample', 'dit-sample.onnx');

describe('groupPath', () => {
  const cases: [string, string[]][] = [
    ['blocks.3.attn.qkv', ['block 3', 'attn']],
    ['model.layers.12.self_attn.q_proj.weight', ['layer 12', 'self_attn']],
    ['/blocks.3/attn/qkv/MatMul', ['block 3', 'attn']],
    ['/model/layers.0/mlp/down_proj/MatMul_1', ['layer 0', 'mlp']],
    ['transformer_blocks.0.attn1.to_q.weight', ['transformer_block 0', 'attn1']],
    ['down_blocks.1.attentions.0.proj_in.bias', ['down_block 1', 'attention 0']],
    ['encoder.layer.3.attention.self.query.weight', ['encoder', 'layer 3', 'attention', 'self']],
    ['input_blocks.1.0.in_layers.2.weight', ['input_block 1', '0']],
    ['blocks.0.adaLN_modulation.1', ['block 0']],
    ['transformer.h.7.attn.c_attn.weight', ['transformer', 'h 7', 'attn']],
    ['layers.0.weight', []],
    ['lm_head.weight', []],
    ['p2o.Conv.3', []],
    ['linear_77.w_0', []],
    ['onnx::MatMul_123', []],
    ['weight', []],
    ['', []],
  ];
  for (const [name, expected] of cases) {
    it(`${JSON.stringify(name)} → ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(groupPath(name), expected);
    });
  }
});

/** A graph exercising every way a weight reaches a quantizable node, round-tripped through protobuf (int64 → Long). */
function buildGraph(): { graph: onnx.GraphProto; tensors: Map<string, TensorInfo> } {
  const tensors = new Map<string, TensorInfo>([
    ['w_t', { dtype: 'F32', shape: [8, 4] }],
    ['w_cast', { dtype: 'F16', shape: [4, 6] }],
    ['w_chain', { dtype: 'BF16', shape: [6, 4] }],
    ['w_3d', { dtype: 'F32', shape: [2, 3, 4] }],
    ['gemm_b_kn', { dtype: 'F32', shape: [4, 5] }],
    ['gemm_b_nk', { dtype: 'F32', shape: [5, 4] }],
    ['deconv_w', { dtype: 'F32', shape: [3, 2, 3, 3] }],
    ['conv_w', { dtype: 'F32', shape: [2, 3, 3, 3] }],
    ['left_a', { dtype: 'F32', shape: [3, 4] }],
    ['int_w', { dtype: 'I64', shape: [4, 4] }],
    ['vector', { dtype: 'F32', shape: [4] }],
  ]);
  const node = (opType: string, name: string, input: string[], output: string[], attribute: onnx.IAttributeProto[] = []) =>
    ({ opType, name, input, output, attribute });
  const nodes: onnx.INodeProto[] = [
    node('Transpose', 't0', ['w_t'], ['w_t_T'], [{ name: 'perm', type: 7, ints: [1, 0] }]),
    node('MatMul', 'through_transpose', ['x', 'w_t_T'], ['y0']),
    node('Cast', 'c1', ['w_cast'], ['w_cast_f32'], [{ name: 'to', type: 2, i: 1 }]),
    node('MatMul', 'through_cast', ['x', 'w_cast_f32'], ['y1']),
    node('Cast', 'c2', ['w_chain'], ['w_chain_f32'], [{ name: 'to', type: 2, i: 1 }]),
    node('Transpose', 't2', ['w_chain_f32'], ['w_chain_T']), // no perm: reverses the axes
    node('Cast', 'c3', ['w_chain_T'], ['w_chain_T2']),
    node('MatMul', 'through_chain', ['x', 'w_chain_T2'], ['y2']),
    node('Transpose', 't3', ['w_3d'], ['w_3d_T'], [{ name: 'perm', type: 7, ints: [2, 0, 1] }]),
    node('MatMul', 'batched', ['x', 'w_3d_T'], ['y3']),
    node('Gemm', 'gemm_kn', ['x', 'gemm_b_kn'], ['y4'], [{ name: 'transB', type: 2, i: 0 }]),
    node('Gemm', 'gemm_nk', ['x', 'gemm_b_nk'], ['y5'], [{ name: 'transB', type: 2, i: 1 }]),
    node('ConvTranspose', 'deconv', ['img', 'deconv_w'], ['y6']),
    node('Conv', '', ['img', 'conv_w'], ['y7']),
    node('MatMul', 'activation_times_activation', ['x', 'y0'], ['y8']),
    node('MatMul', 'weight_on_the_left', ['left_a', 'x'], ['y9']),
    node('MatMul', 'integer_weight', ['x', 'int_w'], ['y10']),
    node('MatMul', 'vector_weight', ['x', 'vector'], ['y11']),
    node('MatMul', 'shares_w_t', ['x', 'w_t_T'], ['y12']),
  ];
  const encoded = onnx.GraphProto.encode({ name: 'g', node: nodes }).finish();
  return { graph: onnx.GraphProto.decode(encoded), tensors };
}

describe('onnxLayers', () => {
  const { graph, tensors } = buildGraph();
  const layers = onnxLayers(graph, tensors);
  const byName = new Map(layers.map((l) => [l.name, l]));

  it('finds exactly the nodes with a stored floating weight of rank ≥ 2, once per weight', () => {
    assert.deepEqual(
      layers.map((l) => l.name),
      ['through_transpose', 'through_cast', 'through_chain', 'batched', 'gemm_kn', 'gemm_nk', 'deconv', 'conv_w', 'weight_on_the_left'],
    );
  });

  it('sets the output-channel axis in the stored tensor', () => {
    const axes = Object.fromEntries(layers.map((l) => [l.name, l.channelAxis]));
    assert.deepEqual(axes, {
      // stored [8,4] seen as [4,8]: the output axis (last) is stored axis 0
      through_transpose: 0,
      through_cast: 1,
      // stored [6,4] seen (reversed) as [4,6]: output axis is stored axis 0
      through_chain: 0,
      // stored [2,3,4] seen with perm [2,0,1] as [4,2,3]: last axis is stored axis 1
      batched: 1,
      gemm_kn: 1,
      gemm_nk: 0,
      deconv: 1,
      conv_w: 0,
      // W·X: W's rows are the output
      weight_on_the_left: 0,
    });
  });

  it('describes each layer by its stored weight', () => {
    const chain = byName.get('through_chain');
    assert.deepEqual(chain, {
      name: 'through_chain',
      opType: 'MatMul',
      weight: 'w_chain',
      shape: [6, 4],
      dtype: 'BF16',
      params: 24,
      channelAxis: 0,
      group: [],
    });
    // A node without a name is named after its weight.
    assert.equal(byName.get('conv_w')?.weight, 'conv_w');
    assert.equal(byName.get('conv_w')?.opType, 'Conv');
  });
});

describe('checkpointLayers', () => {
  it('lists every floating tensor of rank ≥ 2 with output channels on axis 0', () => {
    const layers = checkpointLayers([
      { name: 'blocks.0.attn.qkv.weight', dtype: 'BF16', shape: [384, 128] },
      { name: 'blocks.0.attn.qkv.bias', dtype: 'BF16', shape: [384] },
      { name: 'blocks.0.conv.weight', dtype: 'F16', shape: [8, 4, 3, 3] },
      { name: 'quantized.weight', dtype: 'I8', shape: [16, 16] },
      { name: 'embed.weight', dtype: 'F32', shape: [100, 16] },
    ]);
    assert.deepEqual(
      layers.map((l) => [l.name, l.opType, l.channelAxis, l.params, l.group]),
      [
        ['blocks.0.attn.qkv.weight', 'Tensor', 0, 384 * 128, ['block 0', 'attn']],
        ['blocks.0.conv.weight', 'Tensor', 0, 8 * 4 * 9, ['block 0']],
        ['embed.weight', 'Tensor', 0, 1600, []],
      ],
    );
  });
});

describe('sample model (resources/sample/dit-sample.onnx)', () => {
  it('lists its layers by module name, grouped per block', async () => {
    const model = await openModel(samplePath);
    try {
      const qkv = model.layers.find((l) => l.name === 'blocks.0.attn.qkv');
      assert.ok(qkv, `layers: ${model.layers.map((l) => l.name).join(', ')}`);
      assert.deepEqual(qkv.group, ['block 0', 'attn']);
      assert.equal(qkv.opType, 'MatMul');
      assert.equal(qkv.channelAxis, qkv.shape.length - 1);
      const blockLayers = model.layers.filter((l) => /^blocks\.\d+\.attn\.qkv$/.test(l.name));
      assert.deepEqual(blockLayers.map((l) => [l.name, l.group]), [0, 1, 2, 3].map((b) => [`blocks.${b}.attn.qkv`, [`block ${b}`, 'attn']]));
      // The weight as stored: the initializer's little-endian float32 bytes, read here from the decoded file.
      const stored = (onnx.ModelProto.decode(fs.readFileSync(samplePath)).graph as onnx.GraphProto).initializer.find((t) => t.name === qkv.weight) as onnx.TensorProto | undefined;
      assert.ok(stored, `no initializer ${qkv.weight}`);
      assert.deepEqual(stored.dims.map(Number), qkv.shape);
      const raw = Buffer.from(stored.rawData.buffer, stored.rawData.byteOffset, stored.rawData.byteLength);
      const expected = Float32Array.from({ length: raw.length / 4 }, (_, i) => raw.readFloatLE(i * 4));
      assert.equal(expected.length, qkv.params);
      assert.deepEqual(await model.readTensorF32(qkv.weight), expected);
    } finally {
      await model.close();
    }
  });
});
