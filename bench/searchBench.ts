// Searched allocations against uniform ones on the sample: a sensitivity sweep (weights W2…W8, 2 samples, 4 timesteps),
// then searches at a few average-bit budgets, each verified by measurement (every layer quantized at once) beside the
// uniform allocations; measured numbers only. `node out/bench/searchBench.js` prints the table; bench.ts can call
// benchSearchQuality().
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runAnalysis } from '../extension/engine/analysis/runner';
import { quantSettings } from '../extension/engine/analysis/settings';
import { evenlySpacedTimesteps } from '../extension/engine/calib';
import { searchAndVerify } from '../extension/engine/search/refine';

const SAMPLE = path.resolve(__dirname, '..', '..', 'resources', 'sample', 'dit-sample.onnx');
const BUDGETS = [3.5, 4.5, 5, 6, 7];
const REFINE = 8;

export interface SearchQualityRow {
  budgetBits: number;
  searchedBits: number;
  /** SQNR dB of the output, measured. */
  searchedDb: number;
  refinedDb: number;
  /** The best uniform allocation within the budget (its bits and measured dB), if any fits. */
  uniformBelow?: { setting: string; bits: number; db: number };
  /** The cheapest uniform allocation over the budget. */
  uniformAbove?: { setting: string; bits: number; db: number };
}

export async function benchSearchQuality(threads = 1): Promise<SearchQualityRow[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-search-bench-'));
  try {
    const run = await runAnalysis(
      {
        model: SAMPLE,
        settings: quantSettings({ weightBits: [2, 3, 4, 6, 8], activationBits: [], combine: false, groupSize: 0, activationMode: 'dynamic-token', activationSymmetric: false }),
        unit: 'layer',
        groups: [],
        exclude: [],
        calibration: { samples: 2, batch: 1, seed: 0, dims: {} },
        timestep: { input: 't', values: evenlySpacedTimesteps(4) },
        extraActivationTensors: [],
        executionProvider: 'cpu',
      },
      { recordPath: path.join(dir, 'run.json'), threads },
    );
    const rows: SearchQualityRow[] = [];
    for (const bits of BUDGETS) {
      const result = await searchAndVerify(run, { kind: 'averageBits', bits }, { refine: REFINE, threads });
      const totalParams = result.ranges[0].problem.totalParams;
      const described = (baseline: (typeof result.uniform)[number] | undefined) =>
        baseline ? { setting: baseline.setting, bits: baseline.predicted.cost / totalParams, db: baseline.measured.sqnrDb } : undefined;
      const fitting = result.uniform.filter((b) => b.fits).sort((a, b) => a.measured.error - b.measured.error)[0];
      const above = result.uniform.filter((b) => !b.fits).sort((a, b) => a.predicted.cost - b.predicted.cost)[0];
      const below = described(fitting);
      const over = described(above);
      rows.push({
        budgetBits: bits,
        searchedBits: result.solved.predicted.cost / totalParams,
        searchedDb: result.solved.measured.sqnrDb,
        refinedDb: result.chosen.measured.sqnrDb,
        ...(below ? { uniformBelow: below } : {}),
        ...(over ? { uniformAbove: over } : {}),
      });
    }
    return rows;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function formatSearchQuality(rows: SearchQualityRow[]): string {
  const lines = [
    `Searched vs uniform allocations on the sample (measured output SQNR, every layer quantized at once; refine ${REFINE})`,
    'budget   searched          refined    best uniform within      cheapest uniform over',
  ];
  const baseline = (b?: { setting: string; bits: number; db: number }) => (b ? `${b.setting} ${b.bits.toFixed(2)} b ${b.db.toFixed(2)} dB` : '—');
  for (const row of rows) {
    lines.push(
      `${`${row.budgetBits} b`.padEnd(9)}${`${row.searchedBits.toFixed(2)} b ${row.searchedDb.toFixed(2)} dB`.padEnd(18)}${`${row.refinedDb.toFixed(2)} dB`.padEnd(11)}` +
        `${baseline(row.uniformBelow).padEnd(25)}${baseline(row.uniformAbove)}`,
    );
  }
  return lines.join('\n');
}

if (require.main === module) {
  benchSearchQuality()
    .then((rows) => console.log(formatSearchQuality(rows)))
    .catch((err: unknown) => {
      console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
      process.exitCode = 1;
    });
}
