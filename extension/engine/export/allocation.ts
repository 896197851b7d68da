// Allocation files on disk: read with a schema check, written atomically, built from search results, checked against
// a model's layers, and written as YAML shaped like ViDiT-Q's mixed-precision configs.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import Ajv from 'ajv';
import {
  ALL_TIMESTEPS_LABEL,
  ALLOCATION_SCHEMA,
  FLOAT_WEIGHT_BITS,
  type AllocationFile,
  type AllocationGranularity,
  type AllocationRange,
  type LayerAllocation,
} from '../../protocol/allocation';
import type { LayerInfo } from '../../protocol/records';
import { FULL_PRECISION_OPTION, type Allocation, type SearchBudget, type SearchProblem, type SearchResult } from '../../protocol/search';
import { uniqueLayerNames } from '../analysis/plan';
import { ModelError, quote } from '../errors';
import { fileAccessError } from '../model/tensor';
import type { Granularity } from '../quant/weightQuant';
import * as yaml from 'js-yaml';

const bits = { type: 'integer', minimum: 2, maximum: 16 };
const finite = { type: 'number' };
const granularity = {
  oneOf: [
    { const: 'channel' },
    { type: 'object', required: ['group'], additionalProperties: false, properties: { group: { type: 'integer', minimum: 1 } } },
  ],
};
const costAndError = {
  type: 'object',
  required: ['cost', 'error'],
  properties: { cost: finite, error: finite },
};
const budget = {
  oneOf: [
    { type: 'object', required: ['kind', 'bits'], properties: { kind: { const: 'averageBits' }, bits: finite } },
    { type: 'object', required: ['kind', 'megabytes'], properties: { kind: { const: 'sizeMB' }, megabytes: finite } },
    { type: 'object', required: ['kind', 'bops'], properties: { kind: { const: 'bops' }, bops: finite } },
    { type: 'object', required: ['kind', 'maxError'], properties: { kind: { const: 'errorTarget' }, maxError: finite } },
  ],
};

const allocationSchema = {
  type: 'object',
  required: ['schema', 'model', 'ranges', 'weight', 'activation'],
  properties: {
    schema: { const: ALLOCATION_SCHEMA },
    createdAt: { type: 'string' },
    model: {
      type: 'object',
      required: ['fileName'],
      properties: { fileName: { type: 'string' }, sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
    },
    run: { type: 'string' },
    budget,
    predicted: costAndError,
    measured: {
      type: 'object',
      required: ['error'],
      properties: { error: finite, sqnrDb: finite, samples: { type: 'integer', minimum: 0 } },
    },
    ranges: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['timesteps', 'label', 'layers'],
        properties: {
          timesteps: { oneOf: [{ type: 'null' }, { type: 'array', minItems: 1, items: finite }] },
          label: { type: 'string', minLength: 1 },
          layers: {
            type: 'object',
            additionalProperties: {
              type: 'object',
              required: ['weightBits', 'activationBits'],
              additionalProperties: false,
              properties: { weightBits: bits, activationBits: { oneOf: [{ type: 'null' }, bits] }, granularity },
            },
          },
          predicted: costAndError,
        },
      },
    },
    weight: { type: 'object', required: ['granularity'], properties: { granularity, symmetric: { type: 'boolean' } } },
    activation: {
      type: 'object',
      required: ['mode', 'symmetric'],
      properties: {
        mode: { enum: ['static-minmax', 'static-percentile', 'dynamic-token'] },
        symmetric: { type: 'boolean' },
        percentile: { type: 'number', exclusiveMinimum: 0, maximum: 100 },
      },
    },
  },
};

let compiled: ReturnType<typeof compile> | undefined;

function compile() {
  return new Ajv({ allErrors: false, strict: true, allowUnionTypes: true }).compile<AllocationFile>(allocationSchema);
}

function listNames(names: readonly string[], shown = 8): string {
  const listed = names.slice(0, shown).map(quote).join(', ');
  return names.length > shown ? `${listed} and ${names.length - shown} more` : listed;
}

/** undefined when `value` is a valid allocation, else the first problem found. */
export function allocationProblem(value: unknown): string | undefined {
  compiled ??= compile();
  if (!compiled(value)) {
    const error = compiled.errors?.[0];
    if (!error) return 'invalid allocation';
    const where = error.instancePath ? `at ${error.instancePath}` : 'at the top level';
    return `${where}: ${error.message ?? 'invalid'}`;
  }
  const labels = new Set<string>();
  for (const range of value.ranges) {
    if (labels.has(range.label)) return `range label ${quote(range.label)} appears twice`;
    labels.add(range.label);
  }
  return undefined;
}

/** Checks a parsed value; ModelError naming `file` when it is not an allocation. */
export function validateAllocation(value: unknown, file: string): AllocationFile {
  const problem = allocationProblem(value);
  if (problem !== undefined) throw new ModelError(file, `not a valid QuantLens allocation (${problem})`);
  return value as AllocationFile;
}

/** Reads and checks an allocation file. */
export async function loadAllocation(file: string): Promise<AllocationFile> {
  const resolved = path.resolve(file);
  let text: string;
  try {
    text = await fs.promises.readFile(resolved, 'utf8');
  } catch (err) {
    throw fileAccessError(resolved, err, 'allocation file');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ModelError(resolved, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  return validateAllocation(value, resolved);
}

/** Writes beside the final name, then renames into place. */
export function saveAllocation(file: string, allocation: AllocationFile): void {
  const target = path.resolve(file);
  const problem = allocationProblem(allocation);
  if (problem !== undefined) throw new Error(`internal: refusing to write an invalid allocation (${problem})`);
  writeAtomically(target, `${JSON.stringify(allocation, null, 1)}\n`, 'allocation file');
}

export function writeAtomically(target: string, text: string | Uint8Array, what: string): void {
  const temporary = `${target}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(temporary, text);
    fs.renameSync(temporary, target);
  } catch (err) {
    fs.rmSync(temporary, { force: true });
    throw fileAccessError(target, err, what);
  }
}

/** SHA-256 of a file's bytes, hex: what `model.sha256` holds. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  } catch (err) {
    throw fileAccessError(file, err);
  }
  return hash.digest('hex');
}

/** "999-500" for a range of timesteps (largest first, as ViDiT-Q's "19-15"), "250" for one, "all" for none. */
export function rangeLabel(timesteps: readonly number[] | null): string {
  if (timesteps === null || timesteps.length === 0) return ALL_TIMESTEPS_LABEL;
  const high = Math.max(...timesteps);
  const low = Math.min(...timesteps);
  return high === low ? String(high) : `${high}-${low}`;
}

/** The model's layers by the names allocations and sensitivity runs give them (uniqueLayerNames). */
export function allocationLayerNames(layers: readonly LayerInfo[]): Map<string, LayerInfo> {
  const names = uniqueLayerNames(layers);
  return new Map(layers.map((layer, i) => [names[i], layer]));
}

/** One range resolved against a model: each listed layer and its bits (granularity and symmetry filled in from the file). */
export interface ResolvedLayerAllocation extends LayerAllocation {
  name: string;
  layer: LayerInfo;
  granularity: AllocationGranularity;
  weightSymmetric: boolean;
}

/** An allocation's weight granularity as the weight quantizer takes it. */
export function quantGranularity(granularity: AllocationGranularity): Granularity {
  return granularity === 'channel' ? { kind: 'channel' } : { kind: 'group', size: granularity.group };
}

/** The allocation's weight quantizer is symmetric unless it says otherwise (files written before the flag existed). */
export function allocationWeightSymmetric(allocation: Pick<AllocationFile, 'weight'>): boolean {
  return allocation.weight.symmetric !== false;
}

/**
 * Checks every range's layer names against the model's layers; ModelError naming the allocation file and listing the
 * names the model does not have. Returns, per range, the allocated layers in the model's layer order (layers a range
 * does not list stay in floating point).
 */
export function validateAllocationForModel(
  allocation: AllocationFile,
  layers: readonly LayerInfo[],
  files: { allocation: string; model: string },
): ResolvedLayerAllocation[][] {
  const byName = allocationLayerNames(layers);
  const weightSymmetric = allocationWeightSymmetric(allocation);
  const unknown = new Set<string>();
  for (const range of allocation.ranges) {
    for (const name of Object.keys(range.layers)) if (!byName.has(name)) unknown.add(name);
  }
  if (unknown.size > 0) {
    const names = [...unknown];
    throw new ModelError(
      files.allocation,
      `${names.length} layer name${names.length > 1 ? 's are' : ' is'} not in ${path.basename(files.model)}: ${listNames(names)} ` +
        `(its layers include ${listNames([...byName.keys()], 3)}): was the allocation made for another model?`,
    );
  }
  return allocation.ranges.map((range) =>
    [...byName]
      .filter(([name]) => Object.hasOwn(range.layers, name))
      .map(([name, layer]) => {
        const chosen = range.layers[name];
        return { name, layer, ...chosen, granularity: chosen.granularity ?? allocation.weight.granularity, weightSymmetric };
      }),
  );
}

/** A problem's timesteps as an allocation range holds them: null for a model without a timestep input. */
export function rangeTimesteps(problem: Pick<SearchProblem, 'timesteps'>): number[] | null {
  return problem.timesteps && problem.timesteps.some((t) => t !== null) ? problem.timesteps.filter((t): t is number => t !== null) : null;
}

/**
 * One range's layers as an allocation file lists them: each unit's choice given to its layers (a group's to every
 * member), full precision written as FLOAT_WEIGHT_BITS / null.
 */
export function rangeLayers(problem: Pick<SearchProblem, 'units'>, allocation: Allocation): Record<string, LayerAllocation> {
  const members = new Map(problem.units.map((unit) => [unit.name, unit.members ?? [unit.name]]));
  const layers = new Map<string, LayerAllocation>();
  for (const choice of allocation.choices) {
    const float = choice.option === FULL_PRECISION_OPTION;
    const bits: LayerAllocation = {
      weightBits: float ? FLOAT_WEIGHT_BITS : Math.min(choice.weightBits, FLOAT_WEIGHT_BITS),
      activationBits: float || choice.activationBits === null || choice.activationBits >= FLOAT_WEIGHT_BITS ? null : choice.activationBits,
    };
    for (const member of members.get(choice.unit) ?? [choice.unit]) layers.set(member, { ...bits });
  }
  // fromEntries defines own properties: a layer named "__proto__" stays a plain key.
  return Object.fromEntries(layers);
}

/** One solved range of a search: its problem and result. */
export interface SearchedRange {
  problem: SearchProblem;
  result: SearchResult;
}

export interface AllocationFromSearchOptions {
  model: { fileName: string; sha256?: string };
  run?: string;
  budget?: SearchBudget;
  /** In sampling order; each problem's `timesteps` becomes the range's (all null: a model without a timestep). */
  ranges: SearchedRange[];
  activation: AllocationFile['activation'];
  granularity?: AllocationGranularity;
  /** Default true. */
  weightSymmetric?: boolean;
}

/**
 * The allocation file for search results: each unit's choice given to its layers (a group's to every member), full
 * precision written as FLOAT_WEIGHT_BITS / null so every searched layer is listed; layers the search did not touch are
 * left out (they stay float).
 */
export function allocationFromSearch(options: AllocationFromSearchOptions): AllocationFile {
  const ranges: AllocationRange[] = options.ranges.map(({ problem, result }) => {
    const timesteps = rangeTimesteps(problem);
    return { timesteps, label: rangeLabel(timesteps), layers: rangeLayers(problem, result.allocation), predicted: { cost: result.allocation.cost, error: result.allocation.error } };
  });
  const total = (key: 'cost' | 'error') => ranges.reduce((sum, range) => sum + (range.predicted?.[key] ?? 0), 0);
  const allocation: AllocationFile = {
    schema: ALLOCATION_SCHEMA,
    createdAt: new Date().toISOString(),
    model: { ...options.model },
    ...(options.run ? { run: options.run } : {}),
    ...(options.budget ? { budget: options.budget } : {}),
    predicted: { cost: total('cost'), error: total('error') },
    ranges,
    weight: { granularity: options.granularity ?? 'channel', symmetric: options.weightSymmetric ?? true },
    activation: { ...options.activation },
  };
  const problem = allocationProblem(allocation);
  if (problem !== undefined) throw new Error(`internal: search results make an invalid allocation (${problem})`);
  return allocation;
}

// ---------------------------------------------------------------------------------------------------------------
// YAML in ViDiT-Q's shape. Its released mixed-precision configs (t20_weight_4_mp.yaml, t20_act_8_mp.yaml) are two
// files, one for weight bits and one for activation bits, each a mapping from timestep-range label to a mapping from
// layer name to bits:
//   19-15:
//     model.blocks.0.attn.q: 8
// js-yaml writes it, so untrusted layer names are quoted and escaped as YAML requires.

export type YamlKind = 'weight' | 'activation';

/**
 * The allocation's weight or activation bits as YAML in ViDiT-Q's shape: every range (by label, in the file's order),
 * every layer it lists, FLOAT_WEIGHT_BITS (16) for a layer left in floating point.
 */
export function allocationToYaml(allocation: AllocationFile, kind: YamlKind): string {
  // One single-key mapping per range, concatenated: a JS object would put integer-like labels ("7") first, and the
  // file keeps the ranges' order. fromEntries makes own properties, so a layer named "__proto__" is a key like any other.
  const ranges = allocation.ranges.map((range) =>
    yaml.dump(
      {
        [range.label]: Object.fromEntries(
          Object.entries(range.layers).map(([name, layer]) => [
            name,
            kind === 'weight' ? layer.weightBits : (layer.activationBits ?? FLOAT_WEIGHT_BITS),
          ]),
        ),
      },
      { lineWidth: -1, noRefs: true, quotingType: '"' },
    ),
  );
  const comment = allocation.model.fileName.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
  return (
    `# QuantLens allocation for ${comment}: ${kind} bits per layer, per timestep range.\n` +
    `# Shaped like ViDiT-Q's mixed-precision configs; ${FLOAT_WEIGHT_BITS} = left in floating point.\n` +
    ranges.join('')
  );
}
