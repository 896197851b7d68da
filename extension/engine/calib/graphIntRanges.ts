// Synthetic integer ranges the model's graph implies. The analysis runner, search verification and QDQ export all pass
// these to loadCalibration, so the three draw the same feeds.
import type { onnx } from 'onnx-proto';
import type { ValueInfo } from '../../protocol/records';
import { tablesIndexedBy } from '../model/indexedTables';
import { INT_LIMITS } from './synthetic';
import type { FeedDType, InputIntRange } from './types';

/**
 * For each integer input that indexes stored tables through a Gather (an LLM's token ids, a class-conditional model's
 * labels): [0, rows) of the smallest such table, so every synthetic id is a row the model has; capped at what the
 * input's dtype holds. Inputs that index no table are left out (they keep the default range).
 */
export function graphIntRanges(graph: onnx.IGraphProto, inputs: readonly ValueInfo[]): Record<string, InputIntRange> {
  const entries = inputs.flatMap((input): [string, InputIntRange][] => {
    const limits = INT_LIMITS[input.dtype as FeedDType];
    const tables = limits ? tablesIndexedBy(graph, input.name) : [];
    if (!limits || tables.length === 0) return [];
    const smallest = tables.reduce((a, b) => (b.rows < a.rows ? b : a));
    return [[input.name, { range: [0, Math.min(smallest.rows, limits[1] + 1)], table: smallest.table }]];
  });
  // fromEntries defines own properties: an input named "__proto__" stays a plain key.
  return Object.fromEntries(entries);
}
