// Small readers of decoded ONNX protobuf values, shared by the model loader, the graph rewriting and the lookups.

/** protobufjs gives int64 fields as numbers or Long objects. */
export type Int64 = number | { toNumber(): number };

export function intValue(value: Int64 | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

/** The default operator set: no domain, or "ai.onnx". */
export function isStandardDomain(domain: string | null | undefined): boolean {
  return !domain || domain === 'ai.onnx';
}
