// Solver time for 1,000 layers × 6 options (weights 2, 3, 4, 6, 8, 16 bits): one cold solve of the whole front, as
// a search from the editor or the CLI runs it. Random parameter counts share no divisor, so the cost grid is the
// rounded default one, the slower case. `node out/bench/solverBench.js` prints it; bench.ts calls benchSolver().
import type { SearchProblem, SearchUnit } from '../extension/protocol/search';
import { mulberry32 } from '../extension/engine/random';
import { solveFront } from '../extension/engine/search/solver';

const LAYERS = 1000;
const BITS = [2, 3, 4, 6, 8, 16];

/** Errors fall by about 4× per bit (quantization noise power), scaled by a random per-layer sensitivity. */
function randomProblem(): SearchProblem {
  const random = mulberry32(20240601);
  const units: SearchUnit[] = [];
  let totalParams = 0;
  for (let layer = 0; layer < LAYERS; layer++) {
    const params = 10_000 + Math.floor(random() * 1_000_000);
    const sensitivity = random() * 10;
    totalParams += params;
    units.push({
      name: `blocks.${layer}.linear`,
      params,
      options: BITS.map((bits) => ({
        id: bits === 16 ? 'FP' : `W${bits}`,
        weightBits: bits,
        activationBits: null,
        cost: params * bits,
        error: bits === 16 ? 0 : sensitivity * 4 ** -bits * (0.5 + random()),
      })),
    });
  }
  return { source: 'solver-bench', costUnit: 'bits', units, ties: [], pins: {}, fixedCost: 0, totalParams };
}

export function benchSolver(): { layers: number; options: number; gridCells: number; ms: number } {
  const problem = randomProblem();
  const started = performance.now();
  const front = solveFront(problem);
  const ms = performance.now() - started;
  return { layers: LAYERS, options: BITS.length, gridCells: front.grid.cells, ms };
}

if (require.main === module) {
  const { layers, options, gridCells, ms } = benchSolver();
  console.log(`solver: ${layers} layers × ${options} options, ${gridCells} grid cells: ${ms.toFixed(1)} ms`);
}
