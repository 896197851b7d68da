// `quantlens inspect` on a checkpoint with NaN and infinite weights: the table's NaN/Inf column, the warnings in the
// summary and under the table, and the JSON records, checked against the engine called in-process.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { after, before, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import type { LayerRecord, ModelSummary } from '../../extension/protocol/records';
import { inspectInProcess, quantlens } from './cliProcess';
import { halfExact, writeSafetensors } from './weightFiles';
import { weightLike } from './weightStatsCheck';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-cli-nonfinite-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('quantlens inspect with NaN and infinite weights', () => {
  const file = path.join(dir, 'diverged.safetensors');
  let expected: { summary: ModelSummary; layers: LayerRecord[] };

  before(async () => {
    const qkv = weightLike([32, 64], 0, 1);
    qkv[10] = NaN;
    qkv[11] = Infinity;
    const fc1 = halfExact(64 * 16, 2);
    fc1[5] = -Infinity;
    writeSafetensors(file, {
      'blocks.0.attn.qkv.weight': { dtype: 'F32', shape: [32, 64], values: qkv },
      'blocks.0.mlp.fc1.weight': { dtype: 'F16', shape: [64, 16], values: fc1 },
      'blocks.0.mlp.fc2.weight': { dtype: 'F32', shape: [16, 64], values: weightLike([16, 64], 0, 3) },
      'blocks.0.dead.weight': { dtype: 'F32', shape: [8, 8], values: new Float32Array(64).fill(NaN) },
    });
    expected = await inspectInProcess(file);
  });

  it('--json prints the counts, the layer warnings and the summary warning the engine produces', () => {
    const run = quantlens('inspect', file, '--json');
    assert.equal(run.code, 0, run.stderr);
    const printed = JSON.parse(run.stdout) as { summary: ModelSummary; layers: LayerRecord[] };
    assert.deepEqual(printed, JSON.parse(JSON.stringify(expected)));
    const counts = Object.fromEntries(printed.layers.map((l) => [l.name, [l.stats.nonFinite, l.stats.nan, l.stats.posInf, l.stats.negInf]]));
    assert.deepEqual(counts, {
      'blocks.0.attn.qkv.weight': [2, 1, 1, 0],
      'blocks.0.mlp.fc1.weight': [1, 0, 0, 1],
      'blocks.0.mlp.fc2.weight': [0, 0, 0, 0],
      'blocks.0.dead.weight': [64, 64, 0, 0],
    });
    assert.equal(printed.summary.warnings.length, 1);
    assert.match(printed.summary.warnings[0], /^3 layers have NaN or infinite weights: "blocks\.0\.attn\.qkv\.weight" \(2 of 2048\)/);
  });

  it('the table has a NaN/Inf column, dashes for a layer without finite weights, and the warnings', () => {
    const run = quantlens('inspect', file);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split('\n');
    assert.ok(lines.some((l) => /^warning\s+3 layers have NaN or infinite weights/.test(l)), run.stdout);
    const header = lines.findIndex((l) => /^name\s+op\s+shape\s+params\s+NaN\/Inf\s+absmax\s+std/.test(l));
    assert.ok(header > 0, run.stdout);
    const rows = new Map(lines.slice(header + 1, lines.indexOf('', header)).map((l) => {
      const cells = l.split(/\s+/);
      return [cells[0], cells];
    }));
    assert.equal(rows.size, 4);
    // name, op, shape, params, NaN/Inf, absmax, std, ...
    assert.equal(rows.get('blocks.0.attn.qkv.weight')![4], '2');
    assert.equal(rows.get('blocks.0.mlp.fc1.weight')![4], '1');
    assert.equal(rows.get('blocks.0.mlp.fc2.weight')![4], '0');
    const dead = rows.get('blocks.0.dead.weight')!;
    assert.equal(dead[4], '64');
    assert.deepEqual(dead.slice(5), ['-', '-', '-', '-', '-', '-', '-', '-']);
    const qkv = expected.layers.find((l) => l.name === 'blocks.0.attn.qkv.weight')!;
    assert.equal(Number(rows.get('blocks.0.attn.qkv.weight')![5]), Number(qkv.stats.absMax.toPrecision(4)));

    assert.ok(
      lines.includes('warning: blocks.0.attn.qkv.weight: 2 of 2048 weights are non-finite (1 NaN, 1 +Inf); the statistics and SQNR cover the 2046 finite ones'),
      run.stdout,
    );
    assert.ok(lines.includes('warning: blocks.0.dead.weight: all 64 weights are non-finite (64 NaN): no statistic applies'), run.stdout);
  });
});
