// `quantlens export`: one timestep range of an allocation file written as a QDQ ONNX model, its size against the
// original and its output SQNR against the full-precision model on the calibration inputs; optionally the allocation
// as YAML shaped like ViDiT-Q's mixed-precision configs. Added to the program by cli.ts (addExport).
import * as path from 'path';
import { Command } from 'commander';
import { allocationToYaml, loadAllocation, writeAtomically } from './engine/export/allocation';
import { exportQdq, type ExportResult } from './engine/export/qdq';
import type { AllocationFile } from './protocol/allocation';
import { clean, dimList, integer, nonNegativeInteger, positiveInteger, toJson } from './cliShared';

interface ExportFlags {
  alloc: string;
  out: string;
  calib?: string;
  samples?: number;
  batch?: number;
  seed?: number;
  dims?: Record<string, number>;
  range: number;
  timestepInput?: string;
  yaml?: string;
  threads?: number;
  json?: boolean;
}

export function addExport(program: Command): void {
  program
    .command('export')
    .description(
      'write one timestep range of an allocation (from "quantlens search") as a QDQ ONNX model: weights as integer codes ' +
        'with per-channel scales, activations with static scales calibrated on the calibration inputs; prints its size ' +
        'against the original and its output SQNR against the full-precision model',
    )
    .argument('<model>', 'path to the .onnx model the allocation was made for')
    .requiredOption('--alloc <file>', 'allocation file (JSON, schema quantlens.allocation/1)')
    .requiredOption('-o, --out <file>', 'where to write the QDQ model (.onnx)')
    .option('--calib <file>', 'calibration inputs: .npy, .npz, .safetensors or a JSON manifest {"inputs": {name: file}} (default: seeded synthetic inputs)')
    .option('--samples <n>', 'calibration samples (default 4)', positiveInteger)
    .option('--batch <n>', 'rows per sample (default 1)', positiveInteger)
    .option('--seed <n>', 'seed of the synthetic inputs (default 0)', integer)
    .option('--dims <list>', 'sizes of symbolic input dims, e.g. batch=1,W=320 (or input[axis]=size)', dimList)
    .option('--range <i>', 'which timestep range of the allocation to export (0 = the first, the noisiest timesteps)', nonNegativeInteger, 0)
    .option('--timestep-input <name>', 'the input that carries the timestep (default: detected by name: t, timestep, sigma, ...)')
    .option('--yaml <file>', "also write the allocation's weight bits as ViDiT-Q-style YAML here, and its activation bits beside it (<name>.act.yaml)")
    .option('--threads <n>', 'onnxruntime threads per session', positiveInteger)
    .option('--json', 'print the export report as one JSON object on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  quantlens export dit.onnx --alloc alloc.json -o dit.w4a8.onnx --range 1 --yaml dit.mp.yaml\n' +
        '  quantlens export rec.onnx --alloc rec.json -o rec.qdq.onnx --dims p2o.DynamicDimension.1=320',
    )
    .action(async (model: string, flags: ExportFlags) => {
      const allocation = await loadAllocation(flags.alloc);
      const yamlFiles = flags.yaml ? writeYaml(allocation, flags.yaml) : [];
      const result = await exportQdq(model, allocation, {
        outPath: flags.out,
        allocationFile: path.resolve(flags.alloc),
        rangeIndex: flags.range,
        measure: true,
        calibration: {
          ...(flags.calib ? { source: path.resolve(flags.calib) } : {}),
          ...(flags.samples !== undefined ? { samples: flags.samples } : {}),
          ...(flags.batch !== undefined ? { batch: flags.batch } : {}),
          ...(flags.seed !== undefined ? { seed: flags.seed } : {}),
          dims: flags.dims ?? {},
        },
        ...(flags.timestepInput ? { timestepInput: flags.timestepInput } : {}),
        ...(flags.threads ? { threads: flags.threads } : {}),
      });
      if (flags.json) process.stdout.write(`${toJson({ ...result, yaml: yamlFiles })}\n`);
      else process.stdout.write(`${formatExport(result, allocation, yamlFiles)}\n`);
    });
}

/** The weight YAML at `file`, the activation YAML beside it as <name>.act<ext>; returns the paths written. */
function writeYaml(allocation: AllocationFile, file: string): string[] {
  const weightFile = path.resolve(file);
  const extension = path.extname(weightFile);
  const activationFile = `${weightFile.slice(0, weightFile.length - extension.length)}.act${extension || '.yaml'}`;
  writeAtomically(weightFile, allocationToYaml(allocation, 'weight'), 'YAML file');
  writeAtomically(activationFile, allocationToYaml(allocation, 'activation'), 'YAML file');
  return [weightFile, activationFile];
}

/** Counts of each bit-width: "W4 ×2, W8 ×3". */
function bitCounts(prefix: string, bits: number[]): string {
  const counts = new Map<number, number>();
  for (const b of bits) counts.set(b, (counts.get(b) ?? 0) + 1);
  return [...counts].sort((a, b) => a[0] - b[0]).map(([b, n]) => `${prefix}${b} ×${n}`).join(', ');
}

function formatExport(result: ExportResult, allocation: AllocationFile, yamlFiles: string[]): string {
  const range = result.range;
  const timesteps = range.timesteps ? ` (timesteps ${range.timesteps.join(', ')})` : '';
  const ratio = result.originalBytes > 0 ? ` (${((100 * result.exportedBytes) / result.originalBytes).toFixed(1)} % of the original)` : '';
  const lines = [
    `exported range ${range.index} of ${allocation.ranges.length}, ${clean(JSON.stringify(range.label))}${timesteps}, opset ${result.opset} → ${clean(result.outPath)}`,
    `size on disk: ${megabytes(result.originalBytes)} → ${megabytes(result.exportedBytes)}${ratio}`,
  ];
  const forms = (items: { form: string }[]) => [...new Set(items.map((item) => item.form))].join(' and ');
  if (result.weights.length > 0) {
    lines.push(`weights: ${result.weights.length} layer${result.weights.length === 1 ? '' : 's'} as integer codes (${bitCounts('W', result.weights.map((w) => w.bits))}) via ${forms(result.weights)}`);
  } else {
    lines.push('weights: none quantized');
  }
  if (result.activations.length > 0) {
    const symmetry = result.activations[0].symmetric ? 'symmetric' : 'asymmetric';
    lines.push(
      `activations: ${result.activations.length} point${result.activations.length === 1 ? '' : 's'} (${bitCounts('A', result.activations.map((a) => a.bits))}), ` +
        `static per-tensor ${symmetry} scales, as ${forms(result.activations)}`,
    );
  }
  const measured = result.measured;
  if (measured) {
    const outputs = Object.entries(measured.outputs).map(([name, m]) => `${clean(name)} ${Number.isFinite(m.sqnrDb) ? `${m.sqnrDb.toFixed(2)} dB` : 'not finite'}`);
    lines.push(`output SQNR against the full-precision model over ${measured.runs} calibration run${measured.runs === 1 ? '' : 's'}: ${outputs.join(', ') || '(no float outputs)'}`);
  }
  for (const note of result.notes) lines.push(`note: ${clean(note)}`);
  if (yamlFiles.length > 0) lines.push(`YAML (ViDiT-Q shape): weights ${clean(yamlFiles[0])}, activations ${clean(yamlFiles[1])}`);
  return lines.join('\n');
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 1)} MB`;
}
