// `quantlens`: the command line over the same engine code the engine process runs, in-process.
// Each subcommand is added to the program by its own function (addInspect, ...), called in main(); exit codes are shared:
// 0 success, 1 usage or internal error, 2 the model file could not be read (one line on stderr naming it).
import * as fs from 'fs';
import * as path from 'path';
import { Command, InvalidArgumentError } from 'commander';
import { runAnalysis } from './engine/analysis/runner';
import { ACTIVATION_MODES, ALL_UNIT, DEFAULT_PERCENTILE, parseShard, quantSettings } from './engine/analysis/settings';
import { detectTimestepInput } from './engine/calib';
import { CancelledError, ModelError } from './engine/errors';
import { inspectModel } from './engine/inspect';
import { PARAM_COLUMNS, instrumentModel, writeInstrumentedModel } from './engine/instrument/instrument';
import { layerPlan } from './engine/instrument/plan';
import { loadOnnxModel } from './engine/model/onnx';
import { openModel } from './engine/model/open';
import { loadRun, mergeRuns, runToCsv, saveRun } from './engine/runs/records';
import { addExport } from './cliExport';
import { addSearch } from './cliSearch';
import type { ActivationMode, AnalysisRun, AnalysisSettings, LayerGroupSpec } from './protocol/analysis';
import type { InspectEvent } from './protocol/engine';
import {
  DEFAULT_HISTOGRAM_BINS,
  DEFAULT_OUTLIER_SIGMA,
  QUANT_GROUP_SIZE,
  type Dim,
  type LayerRecord,
  type ModelSummary,
  type ValueInfo,
} from './protocol/records';
import {
  bitList,
  clean,
  collect,
  dimList,
  integer,
  nonNegativeInteger,
  positiveInteger,
  splitList,
  timestepsFlag,
  toJson,
  truncateMiddle,
  usageErrors,
} from './cliShared';

const EXIT_BAD_INPUT = 2;
const EXIT_INTERNAL = 1;

/** Longest layer name shown in the table; longer names keep their start and end. */
const NAME_WIDTH = 48;
const MAX_HISTOGRAM_OPS = 8;
const MAX_LISTED_VALUES = 8;
/** Metadata can hold whole configs; the summary shows the start and end of each entry. */
const METADATA_WIDTH = 160;

// ---------------------------------------------------------------------------------------------------------------
// inspect

interface InspectFlags {
  json?: boolean;
  outlierSigma: number;
  bins: number;
}

function addInspect(program: Command): void {
  program
    .command('inspect')
    .description('summary and per-layer weight statistics of an ONNX model or safetensors checkpoint')
    .argument('<model>', 'path to a .onnx or .safetensors file')
    .option('--json', 'print {summary, layers} as one JSON object on stdout (the records the inspector shows)')
    .option(
      '--outlier-sigma <k>',
      'count weights farther than k standard deviations from the mean as outliers',
      positiveNumber,
      DEFAULT_OUTLIER_SIGMA,
    )
    .option('--bins <n>', 'histogram bins per layer', binCount, DEFAULT_HISTOGRAM_BINS)
    .action(async (model: string, flags: InspectFlags) => {
      const progress = new Progress();
      const layers: LayerRecord[] = [];
      const onEvent = (event: InspectEvent) => {
        if (event.kind === 'layers') layers.push(...event.layers);
        else if (event.kind === 'progress') progress.show(`inspecting: ${event.done}/${event.total} layers`);
      };
      const result = await inspectModel(model, { outlierSigma: flags.outlierSigma, histogramBins: flags.bins }, onEvent)
        .finally(() => progress.clear());
      if (flags.json) {
        process.stdout.write(`${toJson({ summary: result.summary, layers })}\n`);
      } else {
        process.stdout.write(`${formatSummary(result.summary)}\n\n${formatLayerTable(layers, flags.outlierSigma)}\n`);
      }
    });
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.');
  return n;
}

function binCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 4096) throw new InvalidArgumentError('expected an integer from 1 to 4096.');
  return n;
}

// ---------------------------------------------------------------------------------------------------------------
// analyze, merge, runs csv, instrument

const EXIT_CANCELLED = 130;
const DEFAULT_TIMESTEP_COUNT = 20;

interface AnalyzeFlags {
  weights?: number[];
  acts?: number[];
  actMode: ActivationMode;
  actSymmetric?: boolean;
  percentile: number;
  groupSize: number;
  weightAsym?: boolean;
  unit: 'layer' | 'group';
  groups?: string;
  exclude: string[];
  extraActs?: string[];
  calib?: string;
  samples: number;
  batch: number;
  seed: number;
  dims?: Record<string, number>;
  timesteps?: number;
  timestepValues?: number[];
  timestepInput?: string;
  ep: 'cpu' | 'cuda';
  threads?: number;
  shard?: { index: number; count: number };
  out: string;
  csv?: string;
}

function addAnalyze(program: Command): void {
  program
    .command('analyze')
    .description(
      'quantization sensitivity of each layer (or group), per setting and per timestep: outputs compared with the ' +
        'full-precision model on calibration inputs (MSE, SQNR, cosine); the run record is saved as it goes',
    )
    .argument('<model>', 'path to a .onnx model')
    .requiredOption('--out <file>', 'where to write the run record (JSON; rewritten as rows finish, so a crash keeps them)')
    .option('--weights <bits>', 'weight bit-widths, one setting W<b> each (default 4,8 when neither --weights nor --acts is given)', bitList)
    .option('--acts <bits>', 'activation bit-widths, one setting A<a> each (default 8); with --weights also every W<b>A<a>', bitList)
    .option('--act-mode <mode>', 'activation scales: dynamic-token (per token, each run), static-minmax or static-percentile (per tensor, calibrated)', activationMode, 'dynamic-token' as ActivationMode)
    .option('--act-symmetric', 'symmetric activation quantization (default: asymmetric, with a zero point)')
    .option('--percentile <p>', 'static-percentile: the percentile of |x| that sets the range', percentileValue, DEFAULT_PERCENTILE)
    .option('--group-size <n>', 'weights: one scale per group of n input elements; 0 = one per output channel', nonNegativeInteger, 0)
    .option('--weight-asym', 'asymmetric weight quantization: a zero point per channel or group, codes 0…2^b−1 (default: symmetric)')
    .option('--unit <unit>', 'quantize one "layer" or one "group" at a time (also always "*": everything at once)', unitKind, 'layer')
    .option('--groups <file>', 'JSON list of groups [{"name", "patterns": [regex...], "metricTensor"?}] (default: DiT-style attn, cross_attn, attn_temp, mlp, adaLN)')
    .option('--exclude <regex>', 'leave out layers whose name matches (repeatable)', collect, [] as string[])
    .option('--extra-acts <tensors>', 'comma-separated tensors to fake-quantize with the activation settings, each its own unit (e.g. attention K, V)', nameList)
    .option('--calib <file>', 'calibration inputs: .npy, .npz, .safetensors or a JSON manifest {"inputs": {name: file}} (default: seeded synthetic inputs)')
    .option('--samples <n>', 'calibration samples', positiveInteger, 4)
    .option('--batch <n>', 'rows per sample', positiveInteger, 1)
    .option('--seed <n>', 'seed of the synthetic inputs', integer, 0)
    .option('--dims <list>', 'sizes of symbolic input dims, e.g. batch=1,W=320 (or input[axis]=size)', dimList)
    .option('--timesteps <n>', `diffusion models: analyze n timesteps evenly spaced in 0..999 (default ${DEFAULT_TIMESTEP_COUNT} when the model has a timestep input; 0 = none)`, nonNegativeInteger)
    .option('--timestep-values <list>', 'diffusion models: the timesteps to analyze, e.g. 999,500,0', numberList)
    .option('--timestep-input <name>', 'the input that carries the timestep (default: detected by name: t, timestep, sigma, ...)')
    .option('--ep <provider>', 'onnxruntime execution provider: cpu or cuda (needs onnxruntime-node with CUDA)', executionProvider, 'cpu')
    .option('--threads <n>', "onnxruntime threads per session (default: one per physical core; set it to a container's CPU limit)", positiveInteger)
    .option('--shard <i/N>', 'run only slice i of N of the plan (for a cluster; combine the records with "quantlens merge")', usageErrors(parseShard))
    .option('--csv <file>', 'also write the rows as CSV')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  quantlens analyze dit.onnx --weights 4,8 --acts 8 --timesteps 20 --out runs/dit.json\n' +
        '  quantlens analyze dit.onnx --timestep-values 999,500,0 --unit group --out g.json --csv g.csv\n' +
        '  quantlens analyze dit.onnx --shard 0/4 --out /runs/shard-0.json   (then: quantlens merge /runs/shard-*.json --out all.json)',
    )
    .action(async (model: string, flags: AnalyzeFlags) => {
      const settings = await analysisSettings(model, flags);
      const controller = new AbortController();
      const onSigint = () => {
        if (controller.signal.aborted) process.exit(EXIT_CANCELLED);
        process.stderr.write('\nquantlens: stopping after the current run (Ctrl-C again to quit at once)\n');
        controller.abort();
      };
      process.on('SIGINT', onSigint);
      const bar = new ProgressBar();
      const started = performance.now();
      let run: AnalysisRun;
      try {
        run = await runAnalysis(settings, {
          recordPath: flags.out,
          ...(flags.shard ? { shard: flags.shard } : {}),
          ...(flags.threads ? { threads: flags.threads } : {}),
          signal: controller.signal,
          onEvent: (event) => {
            if (event.kind === 'progress') bar.update(event.done, event.total, event.etaMs, event.message);
          },
        });
      } catch (err) {
        if (err instanceof CancelledError) {
          process.stderr.write('quantlens: cancelled before the plan was made; no record written\n');
          process.exitCode = EXIT_CANCELLED;
          return;
        }
        throw err;
      } finally {
        bar.clear();
        process.off('SIGINT', onSigint);
      }
      if (flags.csv) writeText(flags.csv, runToCsv(run));
      process.stdout.write(`${formatRunSummary(run, flags.out, performance.now() - started)}\n`);
      if (run.status === 'cancelled') process.exitCode = EXIT_CANCELLED;
    });
}

/** Settings from the flags; the model is opened to find its timestep input. */
async function analysisSettings(model: string, flags: AnalyzeFlags): Promise<AnalysisSettings> {
  const weightBits = flags.weights ?? (flags.acts ? [] : [4, 8]);
  const activationBits = flags.acts ?? (flags.weights ? [] : [8]);
  if (weightBits.length + activationBits.length === 0) throw new InvalidArgumentError('--weights and --acts are both empty: nothing to analyze.');
  const opened = await openModel(model);
  const inputs = opened.summary.inputs;
  await opened.close();
  let timestep: AnalysisSettings['timestep'];
  const input = flags.timestepInput ?? detectTimestepInput(inputs);
  if (flags.timestepValues) {
    if (!input) throw new ModelError(path.resolve(model), 'no input looks like a timestep; name it with --timestep-input');
    timestep = { input, values: flags.timestepValues };
  } else if (input && flags.timesteps !== 0) {
    const count = flags.timesteps ?? DEFAULT_TIMESTEP_COUNT;
    if (flags.timesteps === undefined) {
      process.stderr.write(`quantlens: input "${clean(input)}" looks like a diffusion timestep: analyzing ${count} timesteps from 999 to 0 (--timesteps, --timestep-values)\n`);
    }
    timestep = { input, values: timestepsFlag(count) };
  } else if (flags.timesteps && !input) {
    throw new ModelError(path.resolve(model), 'no input looks like a timestep; name it with --timestep-input');
  }
  return {
    model: path.resolve(model),
    settings: quantSettings({
      weightBits,
      activationBits,
      combine: flags.weights !== undefined && flags.acts !== undefined,
      groupSize: flags.groupSize,
      weightSymmetric: flags.weightAsym !== true,
      activationMode: flags.actMode,
      activationSymmetric: flags.actSymmetric === true,
      percentile: flags.percentile,
    }),
    unit: flags.unit,
    groups: flags.groups ? readGroups(flags.groups) : [],
    exclude: flags.exclude,
    calibration: {
      ...(flags.calib ? { source: path.resolve(flags.calib) } : {}),
      samples: flags.samples,
      batch: flags.batch,
      seed: flags.seed,
      dims: flags.dims ?? {},
    },
    ...(timestep ? { timestep } : {}),
    extraActivationTensors: flags.extraActs ?? [],
    executionProvider: flags.ep,
  };
}

function readGroups(file: string): LayerGroupSpec[] {
  let value: unknown;
  try {
    value = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelError(path.resolve(file), `cannot read the groups (${err instanceof Error ? err.message : String(err)})`);
  }
  const valid =
    Array.isArray(value) &&
    value.every(
      (g) =>
        typeof g?.name === 'string' &&
        Array.isArray(g.patterns) &&
        g.patterns.every((p: unknown) => typeof p === 'string') &&
        (g.metricTensor === undefined || typeof g.metricTensor === 'string'),
    );
  if (!valid) throw new ModelError(path.resolve(file), 'groups must be a JSON list of {"name": string, "patterns": [string], "metricTensor"?: string}');
  return value as LayerGroupSpec[];
}

/** The most sensitive units per setting (lowest primary SQNR, averaged over the timesteps when there are several). */
function formatRunSummary(run: AnalysisRun, file: string, elapsedMs: number): string {
  const lines = [
    `${run.status}: ${run.rows.length}/${run.plan.total} cells in ${(elapsedMs / 1000).toFixed(1)} s → ${file}` +
      (run.message && run.status !== 'complete' ? ` (${run.message})` : ''),
  ];
  for (const warning of run.warnings ?? []) lines.push(`warning: ${clean(warning)}`);
  const shown = 5;
  const overTimesteps = run.plan.timesteps.filter((t) => t !== null).length > 1 ? ', mean over timesteps' : '';
  for (const setting of run.plan.settings) {
    const byUnit = new Map<string, number[]>();
    for (const row of run.rows) {
      if (row.setting !== setting || row.unit === ALL_UNIT) continue;
      const list = byUnit.get(row.unit) ?? [];
      list.push(row.primary.sqnrDb);
      byUnit.set(row.unit, list);
    }
    if (byUnit.size === 0) continue;
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const ranked = [...byUnit].map(([unit, values]) => [unit, mean(values)] as const).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1));
    const all = run.rows.filter((r) => r.setting === setting && r.unit === ALL_UNIT).map((r) => r.primary.sqnrDb);
    lines.push(`${setting}: most sensitive (SQNR dB${overTimesteps})${all.length ? `; everything at once ${fixed(mean(all), 1)} dB` : ''}`);
    for (const [unit, sqnr] of ranked.slice(0, shown)) lines.push(`  ${fixed(sqnr, 1).padStart(7)}  ${truncateMiddle(clean(unit), NAME_WIDTH)}`);
  }
  return lines.join('\n');
}

function addMerge(program: Command): void {
  program
    .command('merge')
    .description('combine the records of one sweep (e.g. its shards) into one record')
    .argument('<records...>', 'run records written by "quantlens analyze"')
    .requiredOption('--out <file>', 'where to write the merged record')
    .action(async (files: string[], flags: { out: string }) => {
      const runs = [];
      for (const file of files) runs.push(await loadRun(file));
      const merged = mergeRuns(runs, files.map((f) => path.resolve(f)));
      saveRun(flags.out, merged);
      process.stdout.write(`${merged.status}: ${merged.rows.length}/${merged.plan.total} cells from ${files.length} records → ${flags.out}` +
        `${merged.message ? ` (${clean(merged.message)})` : ''}\n`);
    });
}

function addRuns(program: Command): void {
  const runs = program.command('runs').description('work with saved run records');
  runs
    .command('csv')
    .description('the rows of a run record as CSV: unit, setting, timestep, primary mse, sqnr_db, cosine, then the same per output')
    .argument('<record>', 'a run record (JSON)')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .action(async (file: string, flags: { out?: string }) => {
      const csv = runToCsv(await loadRun(file));
      if (flags.out) writeText(flags.out, csv);
      else process.stdout.write(csv);
    });
}

function addInstrument(program: Command): void {
  program
    .command('instrument')
    .description('write the model as the analysis instruments it (overridable weights, switched fake-quant points), for debugging in Netron or another runtime')
    .argument('<model>', 'path to a .onnx model')
    .requiredOption('-o, --out <file>', 'where to write the instrumented model')
    .option('--no-weights', 'leave the weights alone (no weight switches)')
    .option('--no-points', 'no fake-quant points on the layer inputs')
    .option('--ranges', "also output each point's min and max (what calibration reads)")
    .action(async (model: string, flags: { out: string; weights: boolean; points: boolean; ranges?: boolean }) => {
      const file = path.resolve(model);
      const proto = await loadOnnxModel(file);
      const plan = layerPlan(proto, flags.ranges === true);
      const instrumented = instrumentModel(
        proto,
        { ...plan, weights: flags.weights ? plan.weights : [], activationPoints: flags.points ? plan.activationPoints : [] },
        { file },
      );
      await writeInstrumentedModel(flags.out, instrumented);
      const lines = [`${instrumented.weights.length} weight switches, ${instrumented.points.length} fake-quant points → ${flags.out}`];
      if (instrumented.enableInput) lines.push(`switches: bool input "${clean(instrumented.enableInput)}" [points, then weights]`);
      if (instrumented.paramsInput) lines.push(`parameters: float input "${clean(instrumented.paramsInput)}" [points, ${PARAM_COLUMNS.join(', ')}]`);
      for (const skipped of instrumented.skipped) lines.push(`not placed: ${truncateMiddle(clean(skipped.tensor), NAME_WIDTH)}: ${clean(skipped.reason)}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

function writeText(file: string, text: string): void {
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    fs.writeFileSync(file, text);
  } catch (err) {
    throw new ModelError(path.resolve(file), `cannot write (${err instanceof Error ? err.message : String(err)})`);
  }
}

function numberList(value: string): number[] {
  const values = splitList(value).map(Number);
  if (values.length === 0 || !values.every(Number.isFinite)) throw new InvalidArgumentError('expected comma-separated numbers, e.g. 999,500,0.');
  if (new Set(values).size !== values.length) throw new InvalidArgumentError('the values repeat.');
  return values;
}

function nameList(value: string): string[] {
  const names = splitList(value);
  if (names.length === 0) throw new InvalidArgumentError('expected comma-separated tensor names.');
  return names;
}

function percentileValue(value: string): number {
  const n = Number(value);
  if (!(n > 50 && n <= 100)) throw new InvalidArgumentError('expected a percentile in (50, 100], e.g. 99.99.');
  return n;
}

function activationMode(value: string): ActivationMode {
  if (!(ACTIVATION_MODES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${ACTIVATION_MODES.join(', ')}.`);
  return value as ActivationMode;
}

function unitKind(value: string): 'layer' | 'group' {
  if (value !== 'layer' && value !== 'group') throw new InvalidArgumentError('expected "layer" or "group".');
  return value;
}

function executionProvider(value: string): 'cpu' | 'cuda' {
  if (value !== 'cpu' && value !== 'cuda') throw new InvalidArgumentError('expected "cpu" or "cuda".');
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// text output

function formatSummary(s: ModelSummary): string {
  const rows: [string, string][] = [['model', s.path]];
  const format: string[] = [s.format];
  if (s.irVersion !== undefined) format.push(`IR ${s.irVersion}`);
  if (s.opsets?.length) format.push(`opsets ${s.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')}`);
  if (s.producer) format.push(`producer ${s.producer}`);
  rows.push(['format', format.join(' · ')]);
  if (s.format === 'onnx') {
    rows.push(...valueRows('inputs', s.inputs), ...valueRows('outputs', s.outputs));
    rows.push(['nodes', String(s.nodeCount)]);
    const ops = Object.entries(s.opHistogram).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const shown = ops.slice(0, MAX_HISTOGRAM_OPS).map(([op, n]) => `${op} ${n}`);
    if (ops.length > MAX_HISTOGRAM_OPS) shown.push(`+${ops.length - MAX_HISTOGRAM_OPS} more op types`);
    rows.push(['ops', shown.join(', ')]);
  }
  rows.push(['params', `${count(s.parameterCount)} in ${s.tensorCount} tensor${s.tensorCount === 1 ? '' : 's'}, ${bytes(s.parameterBytes)}`]);
  rows.push(['file', bytes(s.fileBytes)]);
  rows.push(['layers', `${s.layerCount} quantizable, ${count(s.layerParameterCount)} params`]);
  if (s.externalDataFiles.length) rows.push(['external', s.externalDataFiles.join(', ')]);
  for (const [key, value] of Object.entries(s.metadata)) rows.push(['metadata', truncateMiddle(`${key} = ${value}`, METADATA_WIDTH)]);
  for (const warning of s.warnings) rows.push(['warning', warning]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${clean(value)}`).join('\n');
}

function valueRows(label: string, values: ValueInfo[]): [string, string][] {
  if (!values.length) return [[label, '(none)']];
  const rows = values.slice(0, MAX_LISTED_VALUES).map((v): [string, string] => [label, `${v.name}: ${v.dtype} [${v.shape.map(dim).join(', ')}]`]);
  if (values.length > MAX_LISTED_VALUES) rows.push([label, `+${values.length - MAX_LISTED_VALUES} more`]);
  return rows;
}

function dim(d: Dim): string {
  return d === null ? '?' : String(d);
}

interface Column {
  header: string;
  align: 'left' | 'right';
  cell(layer: LayerRecord): string;
}

function formatLayerTable(layers: LayerRecord[], outlierSigma: number): string {
  if (!layers.length) return 'no quantizable layers';
  // A layer without one finite weight has no statistics to show (the record holds an empty tensor's).
  const stat = (format: (l: LayerRecord) => string) => (l: LayerRecord) => (l.stats.nonFinite === l.stats.count ? '-' : format(l));
  const columns: Column[] = [
    { header: 'name', align: 'left', cell: (l) => truncateMiddle(clean(l.name), NAME_WIDTH) },
    { header: 'op', align: 'left', cell: (l) => clean(l.opType) },
    { header: 'shape', align: 'left', cell: (l) => l.shape.join('x') },
    { header: 'params', align: 'right', cell: (l) => count(l.params) },
    { header: 'NaN/Inf', align: 'right', cell: (l) => String(l.stats.nonFinite) },
    { header: 'absmax', align: 'right', cell: stat((l) => num(l.stats.absMax)) },
    { header: 'std', align: 'right', cell: stat((l) => num(l.stats.std)) },
    { header: 'kurt', align: 'right', cell: stat((l) => fixed(l.stats.kurtosis, 1)) },
    { header: 'outl%', align: 'right', cell: stat((l) => percent(l.stats.outlierShare)) },
    { header: 'ch.spread', align: 'right', cell: stat((l) => fixed(l.stats.channelSpread, 1)) },
    { header: 'W4 ch', align: 'right', cell: stat((l) => fixed(l.stats.quantError.perChannel[4], 1)) },
    { header: 'W8 ch', align: 'right', cell: stat((l) => fixed(l.stats.quantError.perChannel[8], 1)) },
    { header: `W4 g${QUANT_GROUP_SIZE}`, align: 'right', cell: stat((l) => fixed(l.stats.quantError.perGroup[4], 1)) },
  ];
  const cells = layers.map((layer) => columns.map((c) => c.cell(layer)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row.map((text, i) => (columns[i]!.align === 'left' ? text.padEnd(widths[i]!) : text.padStart(widths[i]!))).join('  ').trimEnd();
  const warnings = layers.flatMap((l) => l.stats.warnings.map((warning) => `warning: ${clean(l.name)}: ${warning}`));
  return [
    line(columns.map((c) => c.header)),
    ...cells.map(line),
    ...(warnings.length ? ['', ...warnings] : []),
    '',
    `NaN/Inf: weights that are NaN or infinite, left out of every other column; ` +
      `outl%: share of weights beyond ${outlierSigma} std of the mean;`,
    `ch.spread: max / median of per-output-channel absmax; W4 ch, W8 ch, W4 g${QUANT_GROUP_SIZE}: SQNR in dB of symmetric ` +
      `round-to-nearest weight quantization, per output channel or per group of ${QUANT_GROUP_SIZE}.`,
  ].join('\n');
}

function nonFinite(x: number): string | undefined {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return undefined;
}

function num(x: number): string {
  const abs = Math.abs(x);
  return nonFinite(x) ?? (x !== 0 && (abs < 1e-3 || abs >= 1e5) ? x.toExponential(2) : String(Number(x.toPrecision(4))));
}

function fixed(x: number, digits: number): string {
  return nonFinite(x) ?? x.toFixed(digits);
}

function percent(share: number): string {
  const pct = share * 100;
  if (pct === 0) return '0';
  return nonFinite(pct) ?? (pct < 0.01 ? '<0.01' : pct.toFixed(2));
}

function count(n: number): string {
  if (n < 1e3) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)}M`;
  return `${(n / 1e9).toFixed(2)}G`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// terminal plumbing

/** A one-line progress display on stderr, only when a person is watching it. */
class Progress {
  readonly enabled = process.stderr.isTTY === true;
  private shown = false;

  show(text: string): void {
    if (!this.enabled) return;
    process.stderr.write(`\r\x1b[K${text}`);
    this.shown = true;
  }

  clear(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
    this.shown = false;
  }
}

/**
 * Progress of a long run on stderr: a redrawn bar when a person is watching, else a plain line every 10 % (logs of
 * cluster jobs stay readable).
 */
class ProgressBar {
  private readonly line = new Progress();
  private lastDecile = -1;
  private lastMessage: string | undefined;

  update(done: number, total: number, etaMs: number | null, message?: string): void {
    if (total === 0) {
      if (message && message !== this.lastMessage) {
        this.lastMessage = message;
        if (this.line.enabled) this.line.show(`${message}…`);
        else process.stderr.write(`analyze: ${message}…\n`);
      }
      return;
    }
    const share = Math.min(1, done / total);
    const eta = etaMs === null ? '' : ` · ETA ${duration(etaMs)}`;
    if (this.line.enabled) {
      const width = 30;
      const filled = Math.round(share * width);
      this.line.show(`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${done}/${total} cells${eta}`);
      return;
    }
    const decile = Math.floor(share * 10);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      process.stderr.write(`analyze: ${decile * 10}% (${done}/${total} cells)${eta}\n`);
    }
  }

  clear(): void {
    this.line.clear();
  }
}

function duration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

async function main(argv: string[]): Promise<void> {
  // `quantlens inspect big.onnx | head` closes stdout early; that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = new Command('quantlens')
    .description('Inspect and quantize ONNX models and safetensors checkpoints.')
    .showHelpAfterError('(run with --help for usage)');
  addInspect(program);
  addAnalyze(program);
  addMerge(program);
  addRuns(program);
  addInstrument(program);
  addSearch(program);
  addExport(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof ModelError) {
      process.stderr.write(`quantlens: ${clean(err.file)}: ${clean(err.problem)}\n`);
      process.exitCode = EXIT_BAD_INPUT;
    } else if (err instanceof InvalidArgumentError) {
      // Flags that are valid alone but not together, found in an action.
      process.stderr.write(`quantlens: ${clean(err.message)}\n`);
      process.exitCode = EXIT_INTERNAL;
    } else {
      // A bug, not a bad file: the stack helps whoever reports it.
      process.stderr.write(`quantlens: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT_INTERNAL;
    }
  }
}

void main(process.argv);
