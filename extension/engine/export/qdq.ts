// QDQ export: one range of an allocation written as an ONNX model that onnxruntime (and QDQ-aware runtimes) load —
// weights stored as integer codes with their per-channel (or per-group) scales, activation points quantized with
// static per-tensor scales calibrated on the calibration set. The numbers are those of QuantLens's fake-quant
// simulation (quantizeWeight, staticQuantParams, instrument/fakeQuant.ts); what differs is said below and in `notes`.
//
// Weights (a layer at 2…15 bits; 16 = left as stored). Codes and scales are exactly weightCodes' per output channel
// (or group). Symmetric (the allocation's default): q = round(w / s), s = absmax / (2^(b−1) − 1); int8 storage for
// ≤ 8 bits (values within ±(2^(b−1) − 1), so a 4-bit layer also takes a byte per weight: packed int4 needs
// DequantizeLinear-21 and INT4 tensors), int16 above. Asymmetric (`weight.symmetric: false`): codes 0…2^b − 1 with a
// zero point z per channel (or group); uint8 storage for ≤ 8 bits with uint8 zero points, int16 above. The stored
// float tensor is replaced by the codes and a node computing (q − z)·s under the weight's own name, so every consumer
// reads what it read before:
//   - opset ≥ 13, ≤ 8 bits, per channel: DequantizeLinear with `axis` = the output-channel axis (and the uint8 zero
//     point per channel when asymmetric);
//   - opset 7…12 (per-axis DequantizeLinear does not exist yet), int16 codes, or per-group scales (blocked
//     DequantizeLinear needs opset 21): Cast(codes → float) · Mul(scale broadcast over the channel axis, or over a
//     [.., channel, block, 1] view, then Reshape back), with a Sub of the float zero points (same broadcast) between
//     when asymmetric. The same product, float32(q − z)·float32(s) (q − z is exact in float32).
//   Both round once where the simulation rounds q·s computed in float64: the dequantized weights differ from
//   quantizeWeight's by at most one float32 ulp (a scale below float32's normal range — weights ~1e-39, zero in
//   effect — is stored with an absolute error up to 2^-150, times q). Non-float32 weights get a Cast back to their type. Opsets below 7
//   (no broadcasting Mul) are refused; the opset is never changed, so no existing node changes meaning.
// Activations (a layer with activation bits): a point on the layer's input, read by that layer's nodes only (as in
// sensitivity runs), with scale and zero point from staticQuantParams over the calibrated min/max (or percentile)
// of the range's timesteps:
//   - opset ≥ 10, ≤ 8 bits, zero point within the storage type: QuantizeLinear → DequantizeLinear (int8 with zero
//     point 0 when symmetric, uint8 when asymmetric), preceded by a Clip to the values that map to the code range
//     when that is narrower than the storage type: always when symmetric (±(2^(b−1) − 1), so never −128, like the
//     weights), below 8 bits when asymmetric. Without it, values past the calibrated range — common once upstream
//     layers are quantized — would saturate differently from the simulation.
//   - otherwise (opset < 10 has no QuantizeLinear; more than 8 bits needs int16 QuantizeLinear from opset 21; a zero
//     point outside uint8): the simulation's own fake-quant subgraph (instrument/fakeQuant.ts) with constant
//     parameters, bit-for-bit what the simulation computes.
//   QuantizeLinear divides by the scale where the simulation multiplies by its reciprocal: a value within an ulp of a
//   rounding tie can land one step apart. 'dynamic-token' mode (per-token scales each forward pass) has no QDQ form;
//   static per-tensor min/max scales are exported instead, and the notes say so.
// onnxruntime at its default optimization level runs QDQ groups as integer kernels (QLinearConv, MatMulIntegerToFloat,
// ...), whose accumulation and requantization round differently again; the output SQNR against the float model stays
// that of the simulation (within 0.5 dB on the sample and PP-OCRv4 rec, test/unit/export.test.ts).
// Timestep ranges: one model per range (rangeIndex, default the first); its static scales come from min/max over all
// of the range's timesteps (the simulation of one timestep uses that timestep's own range).
import * as path from 'path';
import { onnx } from 'onnx-proto';
import { FLOAT_WEIGHT_BITS, type AllocationFile, type AllocationGranularity } from '../../protocol/allocation';
import type { Metrics } from '../../protocol/analysis';
import type { LayerInfo, ValueInfo } from '../../protocol/records';
import { calibratedRange, calibratePoints, type PointRange } from '../analysis/calibrate';
import { MetricSums } from '../analysis/metrics';
import { DEFAULT_PERCENTILE } from '../analysis/settings';
import { detectTimestepInput, graphIntRanges, loadCalibration, withTimestep, type CalibrationSpec, type Feeds } from '../calib';
import { toOrtFeeds } from '../calib/ortFeeds';
import { ModelError, quote } from '../errors';
import { fakeQuantGraph } from '../instrument/fakeQuant';
import { DataType, NameScope, defaultOpset, inferElemTypes, intValue, isStandardDomain, makeNode, valueInfo } from '../instrument/graph';
import { PARAM_COLUMNS, encodeModel, instrumentModel, quantRange, staticQuantParams } from '../instrument/instrument';
import { layerNodes, layerPoints, placedPoints, pointKey } from '../instrument/plan';
import { loadOnnxModel } from '../model/onnx';
import { openModel } from '../model/open';
import type { OpenedModel } from '../model/types';
import { createSession, floatOutput } from '../ortSession';
import { channelLayout, weightCodes, type Granularity, type WeightCodes } from '../quant/weightQuant';
import { quantGranularity, sha256File, validateAllocationForModel, writeAtomically, type ResolvedLayerAllocation } from './allocation';

/** Oldest default opset the export writes for: Mul broadcasts from opset 7. */
export const MIN_EXPORT_OPSET = 7;
/** First opset with QuantizeLinear / DequantizeLinear (per tensor). */
const QDQ_OPSET = 10;
/** First opset whose DequantizeLinear takes per-axis scales. */
const PER_AXIS_DQ_OPSET = 13;

export interface ExportOptions {
  outPath: string;
  /** Calibration inputs for activation scales and for `measure` (default: synthetic, as loadCalibration makes them). */
  calibration?: CalibrationSpec;
  /** Which range of the allocation (default 0: the first, the noisiest timesteps). */
  rangeIndex?: number;
  /** The allocation's file, named in errors about it (default "allocation"). */
  allocationFile?: string;
  /** The input that carries the timestep (default: detected by name). */
  timestepInput?: string;
  /** Also run the exported model and the original on the calibration feeds and compare their outputs. */
  measure?: boolean;
  /** onnxruntime intra-op threads per session. */
  threads?: number;
}

export type WeightForm = 'DequantizeLinear' | 'Cast·Mul' | 'Cast·Sub·Mul';

export interface ExportedWeight {
  layer: string;
  weight: string;
  bits: number;
  /** Symmetric codes: int8 (≤ 8 bits) or int16; asymmetric codes (0…2^b − 1): uint8 (≤ 8 bits) or int16. */
  storage: 'int8' | 'uint8' | 'int16';
  form: WeightForm;
  granularity: AllocationGranularity;
  symmetric: boolean;
}

export type ActivationForm = 'QuantizeLinear/DequantizeLinear' | 'fake-quant subgraph';

export interface ExportedActivation {
  layer: string;
  /** The quantized tensor and the nodes (indexes into the original graph.node) that read the quantized copy. */
  tensor: string;
  consumers: number[];
  bits: number;
  symmetric: boolean;
  form: ActivationForm;
  /** float32 scale and integer zero point (0 when symmetric), and the calibrated range they came from. */
  scale: number;
  zeroPoint: number;
  min: number;
  max: number;
}

export interface ExportResult {
  outPath: string;
  range: { index: number; label: string; timesteps: number[] | null };
  opset: number;
  originalBytes: number;
  exportedBytes: number;
  weights: ExportedWeight[];
  activations: ExportedActivation[];
  /** What the user should know: forms chosen, layers left float, approximations. */
  notes: string[];
  /** With `measure`: the exported model's outputs against the original's on the calibration feeds. */
  measured?: { runs: number; outputs: Record<string, Metrics> };
}

// ---------------------------------------------------------------------------------------------------------------
// weights

/**
 * How codes, scales and zero points are laid out for Cast·Mul: the codes viewed as `view` (their storage order
 * unchanged), the scales (and zero points) as `scaleShape` (broadcast against the view), their values in that shape's
 * order. null when per-group scales have no such view (groups that neither divide the elements after the channel axis
 * nor are whole multiples of them).
 */
interface ScaleView {
  view: number[];
  scaleShape: number[];
  scaleValues: Float32Array;
  /** The zero point of each scale, same order (all 0 when symmetric). */
  zeroValues: Int32Array;
}

function scaleView(shape: readonly number[], channelAxis: number, codes: WeightCodes, granularity: Granularity): ScaleView | null {
  const layout = channelLayout(shape, channelAxis, codes.codes.length);
  const { outer, channels, inner } = layout;
  const slotOf = (channel: number, block: number) => channel * codes.blocksPerChannel + block;
  /** The view and scale shape, and the (channel, block) slot of each scale in the scale shape's order. */
  const place = (view: number[], scaleShape: number[], slots: Int32Array): ScaleView => ({
    view,
    scaleShape,
    scaleValues: Float32Array.from(slots, (slot) => codes.scales[slot]),
    zeroValues: slots.map((slot) => codes.zeroPoints[slot]),
  });
  if (codes.blocksPerChannel === 1) {
    const scaleShape = shape.map((dim, axis) => (axis === channelAxis ? dim : 1));
    // A tensor whose layout is one channel (rank ≤ 1 or a single channel) has one scale.
    if (layout.channels === 1) scaleShape.fill(1);
    return place([...shape], scaleShape, Int32Array.from({ length: layout.channels }, (_, c) => slotOf(c, 0)));
  }
  const size = (granularity as { size: number }).size;
  if (inner % size === 0) {
    // Blocks lie within one run of `inner` elements: [outer, channels, inner/size, size].
    const perRun = inner / size;
    const slots = new Int32Array(outer * channels * perRun);
    for (let o = 0; o < outer; o++) {
      for (let c = 0; c < channels; c++) for (let k = 0; k < perRun; k++) slots[(o * channels + c) * perRun + k] = slotOf(c, o * perRun + k);
    }
    return place([outer, channels, perRun, size], [outer, channels, perRun, 1], slots);
  }
  if (size % inner === 0 && outer % (size / inner) === 0) {
    // A block spans `size / inner` whole runs: [outer / r, r, channels, inner].
    const runs = size / inner;
    const blocks = outer / runs;
    const slots = new Int32Array(blocks * channels);
    for (let m = 0; m < blocks; m++) for (let c = 0; c < channels; c++) slots[m * channels + c] = slotOf(c, m);
    return place([blocks, runs, channels, inner], [blocks, 1, channels, 1], slots);
  }
  return null;
}

function rawTensor(name: string, dataType: number, dims: readonly number[], data: ArrayBufferView): onnx.TensorProto {
  // ONNX raw_data is little-endian, as typed arrays are on every platform Node runs on.
  return onnx.TensorProto.create({ name, dataType, dims: [...dims], rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
}

/** ONNX element type of a float LayerInfo dtype. */
const FLOAT_TYPES: Partial<Record<LayerInfo['dtype'], number>> = {
  F32: DataType.FLOAT,
  F16: DataType.FLOAT16,
  F64: DataType.DOUBLE,
  BF16: DataType.BFLOAT16,
};

// ---------------------------------------------------------------------------------------------------------------
// calibration

interface PointPlan {
  layer: ResolvedLayerAllocation;
  spec: { tensor: string; consumers: number[] };
}

/** Min/max (and the percentile) of every point's tensor over every feed, each switch off. Undefined where not placed. */
async function calibrateRanges(
  model: onnx.ModelProto,
  file: string,
  points: PointPlan[],
  feeds: Feeds[],
  percentile: number | undefined,
  threads: number | undefined,
): Promise<(PointRange | undefined)[]> {
  const specs = points.map((p) => p.spec);
  const inst = instrumentModel(model, { weights: [], activationPoints: specs, withRangeOutputs: true, withTensorOutputs: percentile !== undefined }, { file });
  const placed = placedPoints(specs, inst);
  if (inst.points.length === 0) return points.map(() => undefined);
  const session = await createSession(encodeModel(inst.model), file, 'model instrumented for calibration', threads ? { threads } : {});
  try {
    const ranges = await calibratePoints(session, inst, feeds.map(toOrtFeeds), percentile !== undefined ? [percentile] : []);
    return specs.map((spec) => {
      const point = placed.get(pointKey(spec));
      return point && ranges[point.index];
    });
  } finally {
    await session.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the export

/** Feeds for the range: each calibration sample at each of the range's timesteps (or as loaded, without timesteps). */
function rangeFeeds(samples: Feeds[], timesteps: number[] | null, timestepInput: ValueInfo | undefined): Feeds[] {
  if (timesteps === null || !timestepInput) return samples;
  return timesteps.flatMap((t) => samples.map((sample) => withTimestep(sample, timestepInput.name, t, timestepInput)));
}

/**
 * Writes range `rangeIndex` of `allocation` as a QDQ model at `options.outPath` (see the file comment). ModelError for
 * models it cannot export (not ONNX, external data, opset < 7) naming the model, and for allocations that do not fit
 * the model (unknown layers, a missing range, timesteps without a timestep input) naming the allocation.
 */
export async function exportQdq(modelPath: string, allocation: AllocationFile, options: ExportOptions): Promise<ExportResult> {
  const file = path.resolve(modelPath);
  const allocationFile = options.allocationFile ?? 'allocation';
  const opened = await openModel(file);
  try {
    return await new Exporter(file, allocationFile, allocation, options, opened).run();
  } finally {
    await opened.close();
  }
}

class Exporter {
  private readonly notes: string[] = [];

  constructor(
    private readonly file: string,
    private readonly allocationFile: string,
    private readonly allocation: AllocationFile,
    private readonly options: ExportOptions,
    private readonly opened: OpenedModel,
  ) {}

  async run(): Promise<ExportResult> {
    const { file, allocation, options, opened } = this;
    const summary = opened.summary;
    if (summary.format !== 'onnx') throw new ModelError(file, 'QDQ export needs an ONNX model (a safetensors checkpoint has no graph)');
    if (summary.externalDataFiles.length > 0) throw new ModelError(file, 'QDQ export does not yet handle models with external data files');
    const outPath = path.resolve(options.outPath);
    if (outPath === file) throw new ModelError(file, 'the exported model would overwrite the model it comes from: choose another output file');
    const rangeIndex = options.rangeIndex ?? 0;
    if (!Number.isInteger(rangeIndex) || rangeIndex < 0 || rangeIndex >= allocation.ranges.length) {
      throw new ModelError(this.allocationFile, `has no range ${rangeIndex} (it has ${allocation.ranges.length}: 0…${allocation.ranges.length - 1})`);
    }
    const range = allocation.ranges[rangeIndex];
    if (allocation.model.sha256 && allocation.model.sha256 !== (await sha256File(file))) {
      this.notes.push(`the allocation was made for a file with another SHA-256 (${allocation.model.fileName}); its layer names match this model`);
    }
    const resolved = validateAllocationForModel(allocation, opened.layers, { allocation: this.allocationFile, model: file })[rangeIndex];
    const model = await loadOnnxModel(file);
    const graph = model.graph as onnx.GraphProto;
    const opset = defaultOpset(model);
    if (opset === undefined || opset < MIN_EXPORT_OPSET) {
      throw new ModelError(file, `QDQ export needs the default ONNX opset ${MIN_EXPORT_OPSET} or newer; the model imports ${opset ?? 'none'}`);
    }

    const timestepName = options.timestepInput ?? detectTimestepInput(summary.inputs);
    const timestepInput = summary.inputs.find((input) => input.name === timestepName);
    if (range.timesteps !== null && !timestepInput) {
      throw new ModelError(this.allocationFile, `range ${quote(range.label)} is for timesteps, but ${path.basename(file)} has no input named like a timestep (t, timestep, sigma, …): name it with --timestep-input`);
    }

    const weighted = resolved.filter((layer) => layer.weightBits < FLOAT_WEIGHT_BITS);
    const points = this.planPoints(graph, resolved.filter((layer) => layer.activationBits !== null && layer.activationBits < FLOAT_WEIGHT_BITS));

    let feeds: Feeds[] = [];
    if (points.length > 0 || options.measure) {
      const calibration = await loadCalibration(file, summary.inputs, {
        ...options.calibration,
        intRanges: graphIntRanges(graph, summary.inputs),
        timestep: undefined,
      });
      this.notes.push(...calibration.warnings);
      feeds = rangeFeeds(calibration.samples, range.timesteps, timestepInput);
    }
    const mode = allocation.activation.mode;
    const percentile = mode === 'static-percentile' ? (allocation.activation.percentile ?? DEFAULT_PERCENTILE) : undefined;
    const ranges = points.length > 0 ? await calibrateRanges(model, file, points, feeds, percentile, options.threads) : [];
    if (points.length > 0 && mode === 'dynamic-token') {
      this.notes.push(
        'the allocation quantizes activations per token, dynamically (scales computed each forward pass); QDQ cannot ' +
          `express that, so activations are exported with static per-tensor scales from their min/max over ${feeds.length} calibration run${feeds.length === 1 ? '' : 's'}`,
      );
    }

    const names = new NameScope(graph);
    const prefix: onnx.NodeProto[] = [];
    const initializers: onnx.TensorProto[] = [];
    const replacedStored = new Set<string>();
    const weights: ExportedWeight[] = [];
    for (const layer of weighted) {
      const exported = await this.exportWeight(layer, opset, names, prefix, initializers);
      if (exported) {
        weights.push(exported);
        replacedStored.add(layer.layer.weight);
      }
    }

    const elemTypes = inferElemTypes(graph);
    const { chains, activations } = this.exportActivations(points, ranges, opset, names, elemTypes, initializers);

    // Assemble: weight dequantization first (its inputs are initializers), points right after their tensor exists.
    const producedBy = new Map<string, number>();
    graph.node.forEach((node, index) => (node.output ?? []).forEach((output) => output && producedBy.set(output, index)));
    const chainsAfter = new Map<number, onnx.NodeProto[]>();
    for (const chain of chains) {
      const at = producedBy.get(chain.tensor) ?? -1;
      chainsAfter.set(at, [...(chainsAfter.get(at) ?? []), ...chain.nodes]);
    }
    const rewired = new Map<number, Map<string, string>>();
    for (const chain of chains) {
      for (const consumer of chain.consumers) {
        const renames = rewired.get(consumer) ?? new Map<string, string>();
        renames.set(chain.tensor, chain.output);
        rewired.set(consumer, renames);
      }
    }
    const nodes: onnx.INodeProto[] = [...prefix, ...(chainsAfter.get(-1) ?? [])];
    const initializerNames = new Set(graph.initializer.map((t) => t.name));
    graph.node.forEach((node, index) => {
      const output = node.output?.[0] ?? '';
      const isReplacedConstant = node.opType === 'Constant' && isStandardDomain(node.domain) && replacedStored.has(output) && !initializerNames.has(output);
      if (!isReplacedConstant) {
        const renames = rewired.get(index);
        nodes.push(renames ? onnx.NodeProto.create({ ...node, input: (node.input ?? []).map((input) => renames.get(input) ?? input) }) : node);
      }
      nodes.push(...(chainsAfter.get(index) ?? []));
    });

    const keptInitializers = graph.initializer.filter((t) => !replacedStored.has(t.name ?? ''));
    // Before IR 4 every initializer must also be a graph input.
    const irVersion = intValue(model.irVersion);
    const inputs = graph.input.filter((input) => !replacedStored.has(input.name ?? ''));
    if (irVersion > 0 && irVersion < 4) inputs.push(...initializers.map((t) => valueInfo(t.name, t.dataType, t.dims.map(intValue))));
    const exported = onnx.ModelProto.create({
      ...model,
      metadataProps: [
        ...model.metadataProps,
        onnx.StringStringEntryProto.create({
          key: 'quantlens.export',
          value: JSON.stringify({ range: range.label, timesteps: range.timesteps, weights: weights.length, activations: activations.length }),
        }),
      ],
      graph: onnx.GraphProto.create({ ...graph, node: nodes, initializer: [...keptInitializers, ...initializers], input: inputs }),
    });
    const bytes = encodeModel(exported);
    writeAtomically(outPath, bytes, 'exported model');

    const forms = new Set(activations.map((a) => a.form));
    if (forms.has('fake-quant subgraph')) {
      this.notes.push(
        `${activations.filter((a) => a.form === 'fake-quant subgraph').length} activation point(s) are exported as fake-quant subgraphs ` +
          `(elementary ops), not QuantizeLinear: ${opset < QDQ_OPSET ? `opset ${opset} has no QuantizeLinear (it arrives in opset ${QDQ_OPSET})` : 'more than 8 bits, or a zero point outside uint8'}`,
      );
    }
    const castForms = [...new Set(weights.map((w) => w.form).filter((form) => form !== 'DequantizeLinear'))];
    if (castForms.length > 0) {
      this.notes.push(
        `weights are dequantized with ${castForms.join(' and ')}${opset < PER_AXIS_DQ_OPSET ? ` (per-channel DequantizeLinear needs opset ${PER_AXIS_DQ_OPSET}; the model has ${opset}, which export keeps)` : ' where the codes are int16 or scaled per group'}`,
      );
    }
    if (weights.some((w) => !w.symmetric)) {
      this.notes.push(
        'asymmetric weights: codes 0…2^b − 1 with a zero point per channel (or group), stored as uint8 (int16 above 8 bits); ' +
          'DequantizeLinear takes a uint8 zero point per channel, Cast·Sub·Mul subtracts the zero point in float',
      );
    }
    if (weights.some((w) => w.bits < 8)) {
      this.notes.push(`weights below 8 bits are stored one per byte (${weights.some((w) => !w.symmetric) ? 'int8, or uint8 when asymmetric' : 'int8'}): packed int4 storage needs opset 21`);
    }

    const result: ExportResult = {
      outPath,
      range: { index: rangeIndex, label: range.label, timesteps: range.timesteps },
      opset,
      originalBytes: summary.fileBytes,
      exportedBytes: bytes.byteLength,
      weights,
      activations,
      notes: this.notes,
    };
    if (options.measure) result.measured = await this.measure(bytes, feeds);
    return result;
  }

  /** One point per layer input tensor, read by that layer's nodes only (as sensitivity runs place them). */
  private planPoints(graph: onnx.GraphProto, layers: ResolvedLayerAllocation[]): PointPlan[] {
    const found = layerNodes(graph);
    const points: PointPlan[] = [];
    for (const layer of layers) {
      const specs = layerPoints(layer.layer.weight, found);
      if (specs.length === 0) this.notes.push(`layer ${quote(layer.name)}: no activation input found; its activations stay float`);
      for (const spec of specs) points.push({ layer, spec });
    }
    return points;
  }

  private async exportWeight(
    layer: ResolvedLayerAllocation,
    opset: number,
    names: NameScope,
    prefix: onnx.NodeProto[],
    initializers: onnx.TensorProto[],
  ): Promise<ExportedWeight | undefined> {
    const info = layer.layer;
    const floatType = FLOAT_TYPES[info.dtype];
    if (floatType === undefined || (floatType === DataType.BFLOAT16 && opset < 13)) {
      this.notes.push(`layer ${quote(layer.name)}: its ${info.dtype} weight is left as stored (no Cast back to it at opset ${opset})`);
      return undefined;
    }
    const granularity = quantGranularity(layer.granularity);
    const symmetric = layer.weightSymmetric;
    const data = await this.opened.readTensorF32(info.weight);
    const codes = weightCodes(data, info.shape, info.channelAxis, layer.weightBits, granularity, symmetric);
    const view = scaleView(info.shape, info.channelAxis, codes, granularity);
    if (!view) {
      this.notes.push(
        `layer ${quote(layer.name)}: groups of ${(granularity as { size: number }).size} do not tile its weight ${JSON.stringify(info.shape)} ` +
          'evenly around the channel axis; its weight is left float',
      );
      return undefined;
    }
    const byte = layer.weightBits <= 8;
    // Codes of ≤ 8 bits take a byte: int8 (−127…127) when symmetric, uint8 (0…2^b − 1) when asymmetric.
    const [storageType, storage, storageName] = !byte
      ? [DataType.INT16, new Int16Array(codes.codes), 'int16' as const]
      : symmetric
        ? [DataType.INT8, new Int8Array(codes.codes), 'int8' as const]
        : [DataType.UINT8, new Uint8Array(codes.codes), 'uint8' as const];
    const base = `weight/${info.weight}`;
    // An all-zero block has codes 0; any positive scale reproduces it, and DequantizeLinear expects positive scales.
    const scales = view.scaleValues.map((s) => (s > 0 ? s : 1));
    const codesName = names.fresh(`${base}/codes`);
    const scaleName = names.fresh(`${base}/scale`);
    const zeroName = symmetric ? undefined : names.fresh(`${base}/zero_point`);
    const perAxis = codes.blocksPerChannel === 1 && byte && opset >= PER_AXIS_DQ_OPSET;
    const floatOut = floatType === DataType.FLOAT ? info.weight : names.fresh(`${base}/float32`);
    if (perAxis) {
      const channels = info.shape.length > 1 ? info.shape[info.channelAxis] : 1;
      const perTensor = scales.length === 1 && channels !== 1;
      const paramShape = perTensor ? [] : [scales.length];
      initializers.push(rawTensor(codesName, storageType, info.shape, storage));
      initializers.push(rawTensor(scaleName, DataType.FLOAT, paramShape, scales));
      if (zeroName) initializers.push(rawTensor(zeroName, DataType.UINT8, paramShape, Uint8Array.from(view.zeroValues)));
      const inputs = zeroName ? [codesName, scaleName, zeroName] : [codesName, scaleName];
      prefix.push(makeNode('DequantizeLinear', inputs, [floatOut], perTensor ? {} : { axis: { int: info.channelAxis } }));
    } else {
      initializers.push(rawTensor(codesName, storageType, view.view, storage));
      initializers.push(rawTensor(scaleName, DataType.FLOAT, view.scaleShape, scales));
      let asFloat = names.fresh(`${base}/cast`);
      prefix.push(makeNode('Cast', [codesName], [asFloat], { to: { int: DataType.FLOAT } }));
      if (zeroName) {
        // q − z is an exact small integer in float32, so (q − z)·s rounds once, as DequantizeLinear does.
        initializers.push(rawTensor(zeroName, DataType.FLOAT, view.scaleShape, Float32Array.from(view.zeroValues)));
        const centered = names.fresh(`${base}/centered`);
        prefix.push(makeNode('Sub', [asFloat, zeroName], [centered]));
        asFloat = centered;
      }
      const sameShape = view.view.length === info.shape.length && view.view.every((d, i) => d === info.shape[i]);
      const product = sameShape ? floatOut : names.fresh(`${base}/scaled`);
      prefix.push(makeNode('Mul', [asFloat, scaleName], [product]));
      if (!sameShape) {
        const shapeName = names.fresh(`${base}/shape`);
        initializers.push(rawTensor(shapeName, DataType.INT64, [info.shape.length], BigInt64Array.from(info.shape, BigInt)));
        prefix.push(makeNode('Reshape', [product, shapeName], [floatOut]));
      }
    }
    if (floatOut !== info.weight) prefix.push(makeNode('Cast', [floatOut], [info.weight], { to: { int: floatType } }));
    return {
      layer: layer.name,
      weight: info.weight,
      bits: layer.weightBits,
      storage: storageName,
      form: perAxis ? 'DequantizeLinear' : symmetric ? 'Cast·Mul' : 'Cast·Sub·Mul',
      granularity: layer.granularity,
      symmetric,
    };
  }

  private exportActivations(
    points: PointPlan[],
    ranges: (PointRange | undefined)[],
    opset: number,
    names: NameScope,
    elemTypes: Map<string, number>,
    initializers: onnx.TensorProto[],
  ): { chains: { tensor: string; consumers: number[]; output: string; nodes: onnx.NodeProto[] }[]; activations: ExportedActivation[] } {
    const { symmetric } = this.allocation.activation;
    const chains: { tensor: string; consumers: number[]; output: string; nodes: onnx.NodeProto[] }[] = [];
    const activations: ExportedActivation[] = [];
    /** Fake-quant parameter rows (PARAM_COLUMNS), one per fake-quant point, in one constant. */
    const paramRows: number[][] = [];
    const paramsName = names.fresh('fq_params');
    /** Identical quantizers on one tensor share their nodes. */
    const shared = new Map<string, (typeof chains)[number]>();
    points.forEach((point, i) => {
      const range = ranges[i];
      const layerName = point.layer.name;
      const bits = point.layer.activationBits as number;
      const elemType = elemTypes.get(point.spec.tensor);
      if (!range || elemType === undefined) {
        this.notes.push(`layer ${quote(layerName)}: no quantization point can be placed on its input ${quote(point.spec.tensor)}; its activations stay float`);
        return;
      }
      const { min, max } = calibratedRange(range, this.allocation.activation, this.file, quote(point.spec.tensor));
      const params = staticQuantParams(min, max, bits, symmetric);
      const scale = Math.fround(params.scale);
      const zeroPoint = params.zeroPoint;
      const { qmin, qmax } = quantRange(bits, symmetric);
      const storageRange = symmetric ? [-128, 127] : [0, 255];
      const qdq = opset >= QDQ_OPSET && bits <= 8 && zeroPoint >= storageRange[0] && zeroPoint <= storageRange[1];
      const form: ActivationForm = qdq ? 'QuantizeLinear/DequantizeLinear' : 'fake-quant subgraph';
      activations.push({ layer: layerName, tensor: point.spec.tensor, consumers: point.spec.consumers, bits, symmetric, form, scale, zeroPoint, min, max });

      const key = JSON.stringify([point.spec.tensor, bits, scale, zeroPoint]);
      const existing = shared.get(key);
      if (existing) {
        existing.consumers.push(...point.spec.consumers);
        return;
      }
      const base = `act/${point.spec.tensor}/a${bits}`;
      let chain: (typeof chains)[number];
      if (qdq) {
        const nodes: onnx.NodeProto[] = [];
        let x = point.spec.tensor;
        if (elemType !== DataType.FLOAT) {
          const cast = names.fresh(`${base}/float32`);
          nodes.push(makeNode('Cast', [x], [cast], { to: { int: DataType.FLOAT } }));
          x = cast;
        }
        if (symmetric || bits < 8) {
          // Codes narrower than the storage type: clip x to the values that map to qmin…qmax.
          const [low, high] = [Math.fround((qmin - zeroPoint) * scale), Math.fround((qmax - zeroPoint) * scale)];
          const clipped = names.fresh(`${base}/clip`);
          if (opset < 11) {
            nodes.push(makeNode('Clip', [x], [clipped], { min: low, max: high }));
          } else {
            const lowName = names.fresh(`${base}/clip_min`);
            const highName = names.fresh(`${base}/clip_max`);
            initializers.push(rawTensor(lowName, DataType.FLOAT, [], Float32Array.of(low)), rawTensor(highName, DataType.FLOAT, [], Float32Array.of(high)));
            nodes.push(makeNode('Clip', [x, lowName, highName], [clipped]));
          }
          x = clipped;
        }
        const scaleName = names.fresh(`${base}/scale`);
        const zeroName = names.fresh(`${base}/zero_point`);
        initializers.push(rawTensor(scaleName, DataType.FLOAT, [], Float32Array.of(scale)));
        initializers.push(symmetric ? rawTensor(zeroName, DataType.INT8, [], Int8Array.of(zeroPoint)) : rawTensor(zeroName, DataType.UINT8, [], Uint8Array.of(zeroPoint)));
        const quantized = names.fresh(`${base}/quantized`);
        let y = names.fresh(`${base}/dequantized`);
        nodes.push(makeNode('QuantizeLinear', [x, scaleName, zeroName], [quantized]));
        nodes.push(makeNode('DequantizeLinear', [quantized, scaleName, zeroName], [y]));
        if (elemType !== DataType.FLOAT) {
          const back = names.fresh(`${base}/out`);
          nodes.push(makeNode('Cast', [y], [back], { to: { int: elemType } }));
          y = back;
        }
        chain = { tensor: point.spec.tensor, consumers: [...point.spec.consumers], output: y, nodes };
      } else {
        const row = paramRows.length;
        paramRows.push([qmin, qmax, scale, zeroPoint, 0, symmetric ? 1 : 0]);
        const sub = fakeQuantGraph(opset, names, point.spec.tensor, elemType, paramsName, row, 'positive');
        const output = sub.output?.[0]?.name as string;
        chain = { tensor: point.spec.tensor, consumers: [...point.spec.consumers], output, nodes: (sub.node ?? []) as onnx.NodeProto[] };
      }
      shared.set(key, chain);
      chains.push(chain);
    });
    if (paramRows.length > 0) initializers.push(rawTensor(paramsName, DataType.FLOAT, [paramRows.length, PARAM_COLUMNS.length], Float32Array.from(paramRows.flat())));
    return { chains, activations };
  }

  /** The exported model's outputs against the original's on the same feeds: sums over runs, then the ratios. */
  private async measure(exported: Uint8Array, feeds: Feeds[]): Promise<{ runs: number; outputs: Record<string, Metrics> }> {
    const original = await createSession(this.file, this.file, 'model', this.options.threads ? { threads: this.options.threads } : {});
    const candidate = await createSession(exported, this.file, 'exported model', this.options.threads ? { threads: this.options.threads } : {});
    try {
      const sums = new Map<string, MetricSums>();
      for (const feed of feeds) {
        const ortFeeds = toOrtFeeds(feed);
        const reference = await original.run(ortFeeds);
        const approx = await candidate.run(ortFeeds);
        for (const name of original.outputNames) {
          const y = floatOutput(reference[name]);
          const yHat = approx[name] ? floatOutput(approx[name]) : undefined;
          if (!y || !yHat) continue;
          const sum = sums.get(name) ?? new MetricSums();
          sum.add(y, yHat);
          sums.set(name, sum);
        }
      }
      return { runs: feeds.length, outputs: Object.fromEntries([...sums].map(([name, sum]) => [name, sum.result()])) };
    } finally {
      await Promise.all([original.release(), candidate.release()]);
    }
  }
}
