// The compiled `quantlens` CLI run as a child process, checked against the engine called in-process.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import type { LayerRecord, ModelSummary } from '../../extension/protocol/records';
import { inspectInProcess, quantlens } from './cliProcess';

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const ppocrRec = path.join(repoRoot, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');

describe('quantlens inspect', () => {
  let expected: { summary: ModelSummary; layers: LayerRecord[] };
  before(async () => {
    expected = await inspectInProcess(ppocrRec);
  });

  it('--json prints the records the engine produces in-process', () => {
    const run = quantlens('inspect', ppocrRec, '--json');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '', 'no progress noise when stderr is not a terminal');
    const printed = JSON.parse(run.stdout) as { summary: ModelSummary; layers: LayerRecord[] };
    assert.deepEqual(Object.keys(printed).sort(), ['layers', 'summary']);

    const ops = new Set(printed.layers.map((l) => l.opType));
    assert.ok(ops.has('Conv') && ops.has('MatMul'), `ops: ${[...ops].join(',')}`);
    assert.equal(printed.layers.length, printed.summary.layerCount);
    assert.deepEqual(printed.layers.map((l) => l.name), expected.layers.map((l) => l.name));
    for (const [i, layer] of printed.layers.entries()) {
      const same = expected.layers[i]!;
      assert.equal(layer.opType, same.opType);
      assert.deepEqual(layer.shape, same.shape);
      assert.equal(layer.stats.absMax, same.stats.absMax, layer.name);
      assert.equal(layer.stats.std, same.stats.std, layer.name);
      assert.equal(layer.stats.quantError.perChannel[4], same.stats.quantError.perChannel[4], layer.name);
    }
    // Everything else too, as JSON carries it.
    assert.deepEqual(printed, JSON.parse(JSON.stringify(expected)));
  });

  it('--outlier-sigma and --bins reach the engine', () => {
    const run = quantlens('inspect', ppocrRec, '--json', '--outlier-sigma', '3', '--bins', '16');
    assert.equal(run.code, 0, run.stderr);
    const printed = JSON.parse(run.stdout) as { layers: LayerRecord[] };
    for (const layer of printed.layers) {
      assert.equal(layer.stats.outlierSigma, 3);
      assert.equal(layer.stats.histogram.counts.length, 16);
    }
    // A lower threshold can only find more outliers.
    const shares = (layers: LayerRecord[]) => layers.reduce((sum, l) => sum + l.stats.outlierShare, 0);
    assert.ok(shares(printed.layers) > shares(expected.layers));
  });

  it('prints the summary and one table row per layer', () => {
    const run = quantlens('inspect', ppocrRec);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split('\n');
    assert.ok(lines.some((line) => /^format\s+onnx · IR \d+ · opsets ai\.onnx 9/.test(line)), run.stdout.slice(0, 800));
    assert.ok(lines.some((line) => line.startsWith(`layers`) && line.includes(`${expected.summary.layerCount} quantizable`)));
    const header = lines.findIndex((line) => /^name\s+op\s+shape\s+params\s+NaN\/Inf\s+absmax/.test(line));
    assert.ok(header > 0, 'table header present');
    const rows = lines.slice(header + 1, lines.indexOf('', header));
    assert.equal(rows.length, expected.layers.length);
    for (const [i, layer] of expected.layers.entries()) {
      const [name, op, shape] = rows[i]!.split(/\s+/);
      if (layer.name.length <= 48 && !/\s/.test(layer.name)) assert.equal(name, layer.name);
      assert.equal(op, layer.opType);
      assert.equal(shape, layer.shape.join('x'));
    }
  });

  it('reports a garbage file in one stderr line and exits non-zero', () => {
    const garbage = path.join(os.tmpdir(), `quantlens-cli-garbage-${process.pid}.onnx`);
    fs.writeFileSync(garbage, Buffer.from('\x08\x07garbage that is not a model\xff\xff'.repeat(40), 'latin1'));
    try {
      const run = quantlens('inspect', garbage);
      assert.equal(run.code, 2);
      assert.equal(run.stdout, '');
      const stderrLines = run.stderr.trimEnd().split('\n');
      assert.equal(stderrLines.length, 1, run.stderr);
      assert.ok(stderrLines[0]!.startsWith(`quantlens: ${garbage}: `), run.stderr);
    } finally {
      fs.rmSync(garbage, { force: true });
    }
  });

  it('reports a missing file in one stderr line and exits non-zero', () => {
    const missing = path.join(os.tmpdir(), `quantlens-no-such-model-${process.pid}.onnx`);
    const run = quantlens('inspect', missing);
    assert.notEqual(run.code, 0);
    const stderrLines = run.stderr.trimEnd().split('\n');
    assert.equal(stderrLines.length, 1, run.stderr);
    assert.ok(stderrLines[0]!.includes(path.basename(missing)), run.stderr);
  });

  it('refuses bad usage', () => {
    assert.notEqual(quantlens().code, 0);
    assert.notEqual(quantlens('inspect').code, 0);
    const unknown = quantlens('inspect', ppocrRec, '--no-such-flag');
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown option/);
    assert.notEqual(quantlens('inspect', ppocrRec, '--bins', 'many').code, 0);
    assert.notEqual(quantlens('frobnicate').code, 0);
  });
});
