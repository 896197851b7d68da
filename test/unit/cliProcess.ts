// The compiled `quantlens` CLI run as a child process, and what the engine gives for the same file in-process, for the
// CLI tests to compare.
import { spawnSync } from 'child_process';
import * as assert from 'node:assert/strict';
import * as path from 'path';
import { inspectModel } from '../../extension/engine/inspect';
import type { LayerRecord, ModelSummary } from '../../extension/protocol/records';

export const cliPath = path.resolve(__dirname, '..', '..', 'extension', 'cli.js');

/** Runs `quantlens ...args` to the end. */
export function quantlens(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [cliPath, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(run.error, undefined);
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** inspectModel called in-process with default options: the summary and every layer record. */
export async function inspectInProcess(file: string): Promise<{ summary: ModelSummary; layers: LayerRecord[] }> {
  const layers: LayerRecord[] = [];
  const result = await inspectModel(file, {}, (event) => {
    if (event.kind === 'layers') layers.push(...event.layers);
  });
  return { summary: result.summary, layers };
}
