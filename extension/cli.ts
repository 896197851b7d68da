// `quantlens`: the command line over the same engine code the engine process runs, in-process.
// Each subcommand is added to the program by its own function (addInspect, ...), called in main(); exit codes are shared:
// 0 success, 1 usage or internal error, 2 the model file could not be read (one line on stderr naming it).
import { Command, InvalidArgumentError } from 'commander';
import { ModelError } from './engine/errors';
import { inspectModel } from './engine/inspect';
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
  const columns: Column[] = [
    { header: 'name', align: 'left', cell: (l) => truncateMiddle(clean(l.name), NAME_WIDTH) },
    { header: 'op', align: 'left', cell: (l) => clean(l.opType) },
    { header: 'shape', align: 'left', cell: (l) => l.shape.join('x') },
    { header: 'params', align: 'right', cell: (l) => count(l.params) },
    { header: 'absmax', align: 'right', cell: (l) => num(l.stats.absMax) },
    { header: 'std', align: 'right', cell: (l) => num(l.stats.std) },
    { header: 'kurt', align: 'right', cell: (l) => fixed(l.stats.kurtosis, 1) },
    { header: 'outl%', align: 'right', cell: (l) => percent(l.stats.outlierShare) },
    { header: 'ch.spread', align: 'right', cell: (l) => fixed(l.stats.channelSpread, 1) },
    { header: 'W4 ch', align: 'right', cell: (l) => fixed(l.stats.quantError.perChannel[4], 1) },
    { header: 'W8 ch', align: 'right', cell: (l) => fixed(l.stats.quantError.perChannel[8], 1) },
    { header: `W4 g${QUANT_GROUP_SIZE}`, align: 'right', cell: (l) => fixed(l.stats.quantError.perGroup[4], 1) },
  ];
  const cells = layers.map((layer) => columns.map((c) => c.cell(layer)));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row.map((text, i) => (columns[i]!.align === 'left' ? text.padEnd(widths[i]!) : text.padStart(widths[i]!))).join('  ').trimEnd();
  return [
    line(columns.map((c) => c.header)),
    ...cells.map(line),
    '',
    `outl%: share of weights beyond ${outlierSigma} std of the mean; ch.spread: max / median of per-output-channel absmax;`,
    `W4 ch, W8 ch, W4 g${QUANT_GROUP_SIZE}: SQNR in dB of symmetric round-to-nearest weight quantization, per output channel ` +
      `or per group of ${QUANT_GROUP_SIZE}.`,
  ].join('\n');
}

/** Model strings are untrusted: control characters could drive the terminal, so they are shown escaped. */
function clean(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function truncateMiddle(text: string, width: number): string {
  if (text.length <= width) return text;
  const head = Math.ceil((width - 1) / 2);
  return `${text.slice(0, head)}…${text.slice(text.length - (width - 1 - head))}`;
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

/** JSON with C1 control characters escaped too (JSON.stringify leaves them raw and some terminals obey them). */
function toJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// ---------------------------------------------------------------------------------------------------------------
// terminal plumbing

/** A one-line progress display on stderr, only when a person is watching it. */
class Progress {
  private readonly enabled = process.stderr.isTTY === true;
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
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof ModelError) {
      process.stderr.write(`quantlens: ${clean(err.file)}: ${clean(err.problem)}\n`);
      process.exitCode = EXIT_BAD_INPUT;
    } else {
      // A bug, not a bad file: the stack helps whoever reports it.
      process.stderr.write(`quantlens: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT_INTERNAL;
    }
  }
}

void main(process.argv);
