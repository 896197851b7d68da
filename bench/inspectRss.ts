// Run by bench.ts in a fresh node process so that only the inspection counts toward peak RSS:
//   node out/bench/inspectRss.js [model]   → one JSON line {maxRssBytes, layers, elapsedMs}
// Without a model it loads the engine and measures one tiny tensor: the baseline of the same process.
import * as fs from 'fs';
import { inspectModel } from '../extension/engine/inspect';
import { computeWeightStats } from '../extension/engine/quant/weightStats';

async function main(): Promise<void> {
  const file = process.argv[2];
  const started = performance.now();
  let layers = 0;
  if (file) {
    await inspectModel(file, {}, (event) => {
      if (event.kind === 'layers') layers += event.layers.length;
    });
  } else {
    computeWeightStats(new Float32Array(256), [16, 16], 0);
  }
  const maxRssBytes = peakRssBytes();
  process.stdout.write(`${JSON.stringify({ maxRssBytes, layers, elapsedMs: performance.now() - started })}\n`);
}

/**
 * Linux's VmHWM is the peak of this process image alone. getrusage's maxRSS (process.resourceUsage) also counts the
 * parent's pages the child had between fork and exec, so under a large parent it reports the parent's size.
 */
function peakRssBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Not Linux: fall back to getrusage.
  }
  return process.resourceUsage().maxRSS * 1024;
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
