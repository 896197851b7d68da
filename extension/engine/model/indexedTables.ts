// Which stored tables a graph input indexes: an embedding lookup is Gather(data = a stored tensor, indices = the input),
// exporters sometimes put a Cast (int64 → int32) on the indices. Read-only; synthetic calibration draws such an input
// from the table's rows, so every id it makes names a row the model has.
import type { onnx } from 'onnx-proto';
import { intValue as toNumber, isStandardDomain, storedTensorProtos } from './protoValues';

export interface IndexedTable {
  /** The stored tensor (initializer or Constant output) gathered from. */
  table: string;
  /** Size of the gathered axis: the valid indices are 0 … rows − 1. */
  rows: number;
}

/**
 * The stored tables the main graph gathers from with `input` as the indices, directly or through one Cast, in node
 * order. Tables whose gathered axis is empty or out of range are left out.
 */
export function tablesIndexedBy(graph: onnx.IGraphProto, input: string): IndexedTable[] {
  const nodes = (graph.node ?? []).filter((node) => isStandardDomain(node.domain));
  const indices = new Set([input]);
  for (const node of nodes) {
    const output = node.output?.[0];
    if (node.opType === 'Cast' && node.input?.[0] === input && output) indices.add(output);
  }
  const stored = storedTensorProtos(graph);
  const tables: IndexedTable[] = [];
  for (const node of nodes) {
    const [data, index] = node.input ?? [];
    if (node.opType !== 'Gather' || !index || !indices.has(index)) continue;
    const tensor = stored.get(data ?? '');
    if (!tensor) continue;
    const dims = (tensor.dims ?? []).map(toNumber);
    const axisAttribute = toNumber((node.attribute ?? []).find((a) => a.name === 'axis')?.i);
    const axis = axisAttribute < 0 ? axisAttribute + dims.length : axisAttribute;
    const rows = dims[axis];
    if (axis >= 0 && axis < dims.length && Number.isSafeInteger(rows) && rows > 0) tables.push({ table: data, rows });
  }
  return tables;
}
