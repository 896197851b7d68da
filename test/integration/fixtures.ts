// The integration workspace: which files it holds (shared by the harness that writes them and the suite that opens
// them) and the files the harness and the suite exchange while the suite runs.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const FIXTURES = {
  sample: 'dit-sample.onnx',
  /** The LLaMA-shaped sample: token ids for input and a symbolic `seq` dim that needs a size. */
  llmSample: 'llm-sample.onnx',
  /** The same sample in another folder, opened through the command so its render cannot be a leftover. */
  sampleViaCommand: path.join('via-command', 'dit-sample.onnx'),
  /** Another copy, opened after the damaged files to show the extension still works. */
  sampleAfterErrors: path.join('after-errors', 'dit-sample.onnx'),
  /** Deterministic pseudo-random bytes: not a protobuf message at all. */
  corrupt: 'corrupt.onnx',
  /** The sample cut short: a real-world kind of damage (interrupted download). */
  truncated: 'truncated.onnx',
  checkpoint: 'small.safetensors',
  /** 5,000 small layers named like a DiT's: the table must stay virtualised, filterable and sortable at that size. */
  largeCheckpoint: 'dit-5000.safetensors',
} as const;

/** Folder inside the workspace for the suite ↔ harness exchange. */
export const EXCHANGE_DIR = '.quantlens-test';
export const EXCHANGE = {
  /** Written by the harness before start: tells the suite a browser is watching and wants a screenshot. */
  harness: 'harness.json',
  /** Written by the suite while the inspector shows the sample with a layer selected. */
  readyForScreenshot: 'ready-for-screenshot.json',
  /** Written by the harness after it took the screenshot. */
  screenshotDone: 'screenshot-done',
  results: 'results.json',
  /** Written by the suite while the inspector shows the 5,000-layer checkpoint (a LargeTableRequest). */
  readyForLargeTable: 'ready-for-large-table.json',
  /** Written by the harness after its browser-side checks of that table. */
  largeTableDone: 'large-table-done',
  /** Written by the suite while a sensitivity panel shows a finished run of the sample (an AnalysisPanelRequest). */
  readyForAnalysis: 'ready-for-analysis.json',
  /** Written by the harness after it checked, clicked and photographed the panel. */
  analysisDone: 'analysis-done',
  /** Written by the suite while a sensitivity panel shows the launch form for the sample (an AnalysisFormRequest). */
  readyForAnalysisForm: 'ready-for-analysis-form.json',
  /** Written by the harness after it checked the form's values and clicked Start. */
  analysisFormDone: 'analysis-form-done',
  /** Written by the suite while a search panel shows a finished search of the sample (a SearchPanelRequest). */
  readyForSearch: 'ready-for-search.json',
  /** Written by the harness after it found and photographed the Pareto front. */
  searchDone: 'search-done',
} as const;

/** The workspace's `.vscode/settings.json`: the sensitivity form must come up with these values. */
export const ANALYSIS_WORKSPACE_SETTINGS = {
  'quantlens.analysis.weightBits': [4, 8],
  'quantlens.analysis.activationBits': [8],
  'quantlens.analysis.samples': 1,
  'quantlens.analysis.timesteps': 2,
} as const;

export interface HarnessInfo {
  screenshot: boolean;
}

export interface ScreenshotRequest {
  /** Absolute path of the model the inspector shows. */
  file: string;
  /** A layer the webview's table shows (selected). */
  layer: string;
}

export interface LargeTableRequest {
  /** Absolute path of the checkpoint the inspector shows. */
  file: string;
}

export interface AnalysisPanelRequest {
  recordPath: string;
  /** Cells the layers × timesteps heatmap must show: units × timesteps. */
  cells: number;
  /** The heatmap cell the harness clicks (row in plan order, column = timestep index). */
  click: { row: number; column: number };
}

export interface AnalysisFormRequest {
  /** Values the form's fields must show, by the field's label. */
  expected: { samples: string; timesteps: string; timestepInput: string; checked: string[] };
}

export interface SearchPanelRequest {
  /** Points of the Pareto front the panel reported drawing. */
  frontPoints: number;
}

export type TestState = 'passed' | 'failed' | 'skipped';

export interface TestResult {
  title: string;
  state: TestState;
  durationMs?: number;
  error?: string;
}

export interface SuiteResults {
  vscodeVersion: string;
  tests: TestResult[];
}

export function exchangePath(workspace: string, name: string): string {
  return path.join(workspace, EXCHANGE_DIR, name);
}

/** Writes through a temp file and a rename, so a poller never reads half a file. */
export function writeFileAtomic(file: string, data: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** Checkpoint tensors the harness writes: dtype, shape, and name. Rank ≥ 2 ones are layers. */
export const CHECKPOINT_TENSORS: { name: string; dtype: 'F32' | 'F16' | 'BF16'; shape: number[] }[] = [
  { name: 'encoder.layers.0.attn.qkv.weight', dtype: 'F32', shape: [48, 16] },
  { name: 'encoder.layers.0.attn.qkv.bias', dtype: 'F32', shape: [48] },
  { name: 'encoder.layers.0.mlp.fc1.weight', dtype: 'F16', shape: [64, 16] },
  { name: 'decoder.conv.weight', dtype: 'BF16', shape: [8, 4, 3, 3] },
  { name: 'decoder.norm.scale', dtype: 'F16', shape: [8] },
];

/** A small generator with a fixed seed (xorshift32): fixtures are the same on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

function f32ToF16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  // Truncating, and flushing subnormals to zero: the fixture needs valid F16 values, not exact ones.
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  return sign | (exp << 10) | (mantissa >>> 13);
}

function f32ToBf16Bits(value: number): number {
  const bits = new Uint32Array(new Float32Array([value]).buffer)[0]!;
  return bits >>> 16;
}

export const LARGE_CHECKPOINT = {
  layers: 5000,
  blocks: 999,
  /** In every block, in this order. */
  blockTensors: [
    { suffix: 'adaLN_modulation.1.weight', shape: [24, 8] },
    { suffix: 'attn.qkv.weight', shape: [24, 8] },
    { suffix: 'attn.proj.weight', shape: [8, 8] },
    { suffix: 'mlp.fc1.weight', shape: [32, 8] },
    { suffix: 'mlp.fc2.weight', shape: [8, 32] },
  ],
  /** The only layer with fewer than 64 parameters, and the last in the file: sorting by params brings it to the top. */
  smallest: 'final_layer.linear.weight',
  /** The filter the browser-side check types, and leaves typed in for the suite: one block's layers. */
  filter: 'blocks.998.',
} as const;

/** The 5,000-layer checkpoint's tensors in file order: embedders, 999 blocks of 5 layers, the final layer. */
export function largeCheckpointTensors(): { name: string; dtype: 'F32'; shape: number[] }[] {
  const tensors: { name: string; dtype: 'F32'; shape: number[] }[] = [
    { name: 'x_embedder.proj.weight', dtype: 'F32', shape: [16, 4, 2, 2] },
    { name: 't_embedder.mlp.0.weight', dtype: 'F32', shape: [16, 8] },
    { name: 't_embedder.mlp.2.weight', dtype: 'F32', shape: [16, 16] },
  ];
  for (let block = 0; block < LARGE_CHECKPOINT.blocks; block++) {
    for (const { suffix, shape } of LARGE_CHECKPOINT.blockTensors) {
      tensors.push({ name: `blocks.${block}.${suffix}`, dtype: 'F32', shape: [...shape] });
    }
  }
  tensors.push({ name: 'final_layer.adaLN_modulation.1.weight', dtype: 'F32', shape: [16, 16] });
  tensors.push({ name: LARGE_CHECKPOINT.smallest, dtype: 'F32', shape: [4, 4] });
  return tensors;
}

export function writeSafetensors(
  file: string,
  tensors: readonly { name: string; dtype: 'F32' | 'F16' | 'BF16'; shape: number[] }[] = CHECKPOINT_TENSORS,
): void {
  const random = seededRandom(7);
  const header: Record<string, unknown> = { __metadata__: { source: 'quantlens integration fixture' } };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const tensor of tensors) {
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    const width = tensor.dtype === 'F32' ? 4 : 2;
    const data = Buffer.alloc(count * width);
    for (let i = 0; i < count; i++) {
      const value = (random() - 0.5) * 0.2;
      if (tensor.dtype === 'F32') data.writeFloatLE(value, i * 4);
      else data.writeUInt16LE(tensor.dtype === 'F16' ? f32ToF16Bits(value) : f32ToBf16Bits(value), i * 2);
    }
    header[tensor.name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + data.length] };
    chunks.push(data);
    offset += data.length;
  }
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([length, json, ...chunks]));
}

/** Builds the integration workspace in `workspace` from the repo's sample model. */
export function writeWorkspace(workspace: string, sampleModel: string, harness: HarnessInfo): void {
  const at = (name: string) => path.join(workspace, name);
  for (const copy of [FIXTURES.sample, FIXTURES.sampleViaCommand, FIXTURES.sampleAfterErrors]) {
    fs.mkdirSync(path.dirname(at(copy)), { recursive: true });
    fs.copyFileSync(sampleModel, at(copy));
  }
  // The LLM sample is bundled beside the DiT sample (resources/sample).
  fs.copyFileSync(path.join(path.dirname(sampleModel), 'llm-sample.onnx'), at(FIXTURES.llmSample));
  const random = seededRandom(2024);
  const noise = Buffer.alloc(4096);
  for (let i = 0; i < noise.length; i++) noise[i] = Math.floor(random() * 256);
  fs.writeFileSync(at(FIXTURES.corrupt), noise);
  const sample = fs.readFileSync(sampleModel);
  fs.writeFileSync(at(FIXTURES.truncated), sample.subarray(0, Math.floor(sample.length / 3)));
  writeSafetensors(at(FIXTURES.checkpoint));
  writeSafetensors(at(FIXTURES.largeCheckpoint), largeCheckpointTensors());
  fs.mkdirSync(at('.vscode'), { recursive: true });
  fs.writeFileSync(at(path.join('.vscode', 'settings.json')), JSON.stringify(ANALYSIS_WORKSPACE_SETTINGS, null, 2));
  writeFileAtomic(exchangePath(workspace, EXCHANGE.harness), JSON.stringify(harness));
}
