// Calibration sets: model feeds read from .npy / .npz / .safetensors files or a JSON manifest, checked against the
// model's inputs and split into samples of `batch` rows, or seeded synthetic feeds when no file is given.
import * as fs from 'fs';
import * as path from 'path';
import type { ValueInfo } from '../../protocol/records';
import { ModelError, quote } from '../errors';
import { fileAccessError } from '../model/tensor';
import { SafeFolder } from '../safePath';
import { openArrayFile, type ArrayFile } from './arrayFiles';
import { canConvert, convert, NUMPY_NAMES, sliceAxis, type StoredArray } from './ndarray';
import { axisKey, axisSetting, dimKeyUsed, formatShape, INT_LIMITS, resolveShape, syntheticTensor } from './synthetic';
import { filledTensor } from './timestep';
import {
  DEFAULT_BATCH,
  DEFAULT_INT_RANGE,
  DEFAULT_SAMPLES,
  DEFAULT_SEED,
  FEED_DTYPES,
  type CalibrationSet,
  type CalibrationSpec,
  type FeedDType,
  type Feeds,
  type FeedTensor,
} from './types';

/** The spec, checked, with defaults filled in. */
interface Settings {
  modelFile: string;
  inputs: ValueInfo[];
  samples: number;
  batch: number;
  seed: number;
  dims: Record<string, number>;
  /** Range of each synthetic integer input that does not take the default. */
  intRanges: Map<string, readonly [number, number]>;
  /** The inputs whose range comes from a table they index (`intRanges` of the spec), said in the description. */
  indexed: { input: string; range: readonly [number, number]; table: string }[];
  timestep?: { input: string; values: number[] };
  warnings: string[];
}

function list(names: readonly string[]): string {
  return names.map(quote).join(', ');
}

/** Runs `work`, naming the input in any ModelError it throws. */
async function forInput<T>(input: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ModelError) throw new ModelError(err.file, `input ${quote(input)}: ${err.problem}`);
    throw err;
  }
}

function checkSettings(modelFile: string, inputs: ValueInfo[], spec: CalibrationSpec): Settings {
  const refuse = (why: string): never => {
    throw new ModelError(modelFile, `calibration settings: ${why}`);
  };
  const positive = (name: string, value: number | undefined, fallback: number): number => {
    const v = value ?? fallback;
    if (!Number.isSafeInteger(v) || v < 1) refuse(`${name} must be a positive integer (got ${v})`);
    return v;
  };
  const samples = positive('samples', spec.samples, DEFAULT_SAMPLES);
  const batch = positive('batch', spec.batch, DEFAULT_BATCH);
  const seed = spec.seed ?? DEFAULT_SEED;
  if (!Number.isSafeInteger(seed)) refuse(`seed must be an integer (got ${seed})`);
  const dims = spec.dims ?? {};
  const warnings: string[] = [];
  for (const [key, value] of Object.entries(dims)) {
    if (!Number.isSafeInteger(value) || value < 1) refuse(`dim ${quote(key)} must be a positive integer (got ${value})`);
    if (!dimKeyUsed(inputs, key)) warnings.push(`calibration dim ${quote(key)} matches no dim of the model's inputs`);
  }

  for (const input of inputs) {
    if (!FEED_DTYPES.includes(input.dtype as FeedDType)) {
      refuse(`input ${quote(input.name)} has dtype ${input.dtype}; calibration feeds ${FEED_DTYPES.join(', ')}`);
    }
  }
  const checkRange = (what: string, range: readonly [number, number], applied: readonly ValueInfo[]) => {
    const [low, high] = range;
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || low >= high) {
      refuse(`${what} must be two integers [low, high) with low < high (got [${range.join(', ')}])`);
    }
    for (const input of applied) {
      const limits = INT_LIMITS[input.dtype as FeedDType];
      if (limits && (low < limits[0] || high - 1 > limits[1])) {
        refuse(`${what} [${low}, ${high}) does not fit input ${quote(input.name)}'s ${input.dtype} (${limits[0]}..${limits[1]})`);
      }
    }
  };
  const intRanges = new Map<string, readonly [number, number]>();
  const indexed: Settings['indexed'] = [];
  if (spec.intRange) {
    // The user's one range wins over what the graph suggests, for every input.
    checkRange('intRange', spec.intRange, inputs);
    for (const input of inputs) intRanges.set(input.name, spec.intRange);
  } else {
    for (const [name, { range, table }] of Object.entries(spec.intRanges ?? {})) {
      const input = inputs.find((i) => i.name === name);
      if (!input || !INT_LIMITS[input.dtype as FeedDType]) refuse(`intRanges names ${quote(name)}, which is not an integer input of the model`);
      checkRange(`intRanges ${quote(name)}`, range, [input as ValueInfo]);
      intRanges.set(name, range);
      indexed.push({ input: name, range, table });
    }
  }

  let timestep: Settings['timestep'];
  if (spec.timestep) {
    const { input, values } = spec.timestep;
    const info = inputs.find((i) => i.name === input);
    if (!info) refuse(`timestep input ${quote(input)} is not an input of the model (inputs: ${list(inputs.map((i) => i.name))})`);
    if (info?.dtype === 'BOOL') refuse(`timestep input ${quote(input)} is BOOL and cannot hold a timestep`);
    if (values.length === 0 || !values.every(Number.isFinite)) refuse('timestep values must be a non-empty list of numbers');
    timestep = { input, values: values.slice() };
  }
  return { modelFile, inputs, samples, batch, seed, dims, intRanges, indexed, timestep, warnings };
}

/**
 * Calibration feeds for a model with these inputs: from `spec.source` when given, else synthetic. Every problem with
 * a file is a ModelError naming the file (and the input); problems with the settings or the model's inputs name the
 * model.
 */
export async function loadCalibration(modelPath: string, inputs: ValueInfo[], spec: CalibrationSpec): Promise<CalibrationSet> {
  const settings = checkSettings(path.resolve(modelPath), inputs, spec);
  return spec.source ? fromFiles(settings, path.resolve(spec.source)) : synthetic(settings);
}

function synthetic(s: Settings): CalibrationSet {
  const shapes = s.inputs.map((input) => resolveShape(s.modelFile, input, { dims: s.dims, batch: s.batch }));
  const samples: Feeds[] = [];
  for (let k = 0; k < s.samples; k++) {
    const feeds: Feeds = {};
    s.inputs.forEach((input, i) => {
      const dtype = input.dtype as FeedDType;
      feeds[input.name] =
        input.name === s.timestep?.input
          ? filledTensor(dtype, shapes[i], s.timestep.values[0])
          : syntheticTensor(dtype, shapes[i], s.seed, input.name, k, s.intRanges.get(input.name) ?? DEFAULT_INT_RANGE);
    });
    samples.push(feeds);
  }
  // Said in the warnings too: nothing else shows the description, and ids from a table's rows are a guess at the data.
  const notes = s.indexed
    .filter(({ input }) => input !== s.timestep?.input)
    .map(({ input, range, table }) => `input ${quote(input)}: synthetic ids in [${range[0]}, ${range[1]}), the rows of ${quote(table)} that it indexes`);
  return {
    samples,
    timestep: s.timestep,
    description: [`synthetic seed ${s.seed}`, ...notes].join('; '),
    warnings: [...s.warnings, ...notes],
  };
}

/** Which array of which file feeds an input. */
interface Assignment {
  holder: ArrayFile;
  arrayName: string;
}

async function fromFiles(s: Settings, source: string): Promise<CalibrationSet> {
  const opened: ArrayFile[] = [];
  try {
    const { assigned, batchAxis } =
      path.extname(source).toLowerCase() === '.json'
        ? await assignFromManifest(s, source, opened)
        : await assignFromArrayFile(s, source, opened);
    return await buildSamples(s, source, assigned, batchAxis);
  } finally {
    await Promise.allSettled(opened.map((f) => f.close()));
  }
}

function warnIgnoredEntries(s: Settings, holder: ArrayFile): void {
  if (holder.ignored.length > 0) {
    s.warnings.push(`${path.basename(holder.file)}: zip entries ${list(holder.ignored)} are not .npy arrays and are ignored`);
  }
}

/** Refuses when a model input has no array; only the timestep input may be missing (it is filled per timestep). */
function checkMissing(s: Settings, assigned: Map<string, Assignment>, file: string, context: string): void {
  const missing = s.inputs.filter((i) => !assigned.has(i.name) && i.name !== s.timestep?.input).map((i) => i.name);
  if (missing.length === 1) throw new ModelError(file, `input ${quote(missing[0])} is missing (${context})`);
  if (missing.length > 1) throw new ModelError(file, `inputs ${list(missing)} are missing (${context})`);
}

async function assignFromArrayFile(
  s: Settings,
  file: string,
  opened: ArrayFile[],
): Promise<{ assigned: Map<string, Assignment>; batchAxis: number }> {
  const holder = await openArrayFile(file);
  opened.push(holder);
  warnIgnoredEntries(s, holder);
  const assigned = new Map<string, Assignment>();
  const wanted = s.inputs.filter((i) => i.name !== s.timestep?.input);
  if (path.extname(file).toLowerCase() === '.npy') {
    if (wanted.length !== 1) {
      const besides = s.timestep ? ` besides the timestep ${quote(s.timestep.input)}` : '';
      throw new ModelError(
        file,
        `a .npy file holds one array, but the model has ${wanted.length} inputs${besides} (${list(wanted.map((i) => i.name))}); ` +
          'use .npz, .safetensors or a .json manifest',
      );
    }
    assigned.set(wanted[0].name, { holder, arrayName: '' });
  } else {
    for (const input of s.inputs) {
      if (holder.names.includes(input.name)) assigned.set(input.name, { holder, arrayName: input.name });
    }
    // np.savez(file, array) names its one array "arr_0": take it for a single-input model.
    if (wanted.length === 1 && !assigned.has(wanted[0].name) && holder.names.length === 1) {
      assigned.set(wanted[0].name, { holder, arrayName: holder.names[0] });
    }
    const used = new Set([...assigned.values()].map((a) => a.arrayName));
    const extra = holder.names.filter((name) => !used.has(name));
    if (extra.length > 0) s.warnings.push(`${path.basename(file)}: arrays ${list(extra)} match no model input and are ignored`);
  }
  checkMissing(s, assigned, file, holder.names.length > 0 ? `the file holds ${list(holder.names)}` : 'the file holds no arrays');
  return { assigned, batchAxis: 0 };
}

/** Manifests are small; a bigger file is not one. */
const MAX_MANIFEST_BYTES = 1 << 20;
const MANIFEST_KEYS = new Set(['inputs', 'batchAxis']);

async function readManifest(s: Settings, file: string): Promise<{ inputs: Record<string, string>; batchAxis: number }> {
  let text: string;
  try {
    const stat = await fs.promises.stat(file);
    if (!stat.isFile()) throw new ModelError(file, 'calibration manifest is not a regular file');
    if (stat.size > MAX_MANIFEST_BYTES) throw new ModelError(file, `calibration manifest is too large (${stat.size} bytes)`);
    text = await fs.promises.readFile(file, 'utf8');
  } catch (err) {
    throw err instanceof ModelError ? err : fileAccessError(file, err, 'calibration manifest');
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (err) {
    throw new ModelError(file, `calibration manifest is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const shape = 'a calibration manifest is {"inputs": {"<input name>": "<file relative to the manifest>", …}, "batchAxis"?: 0}';
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) throw new ModelError(file, shape);
  const { inputs, batchAxis = 0 } = manifest as { inputs?: unknown; batchAxis?: unknown };
  if (
    typeof inputs !== 'object' || inputs === null || Array.isArray(inputs) ||
    !Object.values(inputs).every((v) => typeof v === 'string')
  ) {
    throw new ModelError(file, `"inputs" must map input names to file paths: ${shape}`);
  }
  if (typeof batchAxis !== 'number' || !Number.isSafeInteger(batchAxis) || batchAxis < 0) {
    throw new ModelError(file, `"batchAxis" must be a non-negative integer (got ${JSON.stringify(batchAxis)})`);
  }
  const unknown = Object.keys(manifest).filter((k) => !MANIFEST_KEYS.has(k));
  if (unknown.length > 0) s.warnings.push(`${path.basename(file)}: keys ${list(unknown)} are not manifest keys and are ignored`);
  return { inputs: inputs as Record<string, string>, batchAxis };
}

async function assignFromManifest(
  s: Settings,
  file: string,
  opened: ArrayFile[],
): Promise<{ assigned: Map<string, Assignment>; batchAxis: number }> {
  const manifest = await readManifest(s, file);
  const folder = new SafeFolder(file, {
    what: 'calibration file',
    fileWhat: 'calibration file',
    folderName: "the manifest's folder",
  });
  const byRealPath = new Map<string, ArrayFile>();
  const assigned = new Map<string, Assignment>();
  const unknown: string[] = [];
  for (const [name, location] of Object.entries(manifest.inputs)) {
    if (!s.inputs.some((i) => i.name === name)) {
      unknown.push(name);
      continue;
    }
    const holder = await forInput(name, async () => {
      const resolved = await folder.resolve(location);
      let found = byRealPath.get(resolved.real);
      if (!found) {
        found = await openArrayFile(path.resolve(path.dirname(file), location), resolved.real);
        opened.push(found);
        byRealPath.set(resolved.real, found);
        warnIgnoredEntries(s, found);
      }
      return found;
    });
    const arrayName = holder.names.includes(name) ? name : holder.names.length === 1 ? holder.names[0] : undefined;
    if (arrayName === undefined) {
      throw new ModelError(holder.file, `input ${quote(name)}: no array of that name (the file holds ${list(holder.names)})`);
    }
    assigned.set(name, { holder, arrayName });
  }
  if (unknown.length > 0) s.warnings.push(`${path.basename(file)}: ${list(unknown)} name no model input and are ignored`);
  const mapped = Object.keys(manifest.inputs);
  checkMissing(s, assigned, file, mapped.length > 0 ? `the manifest maps ${list(mapped)}` : 'the manifest maps no inputs');
  return { assigned, batchAxis: manifest.batchAxis };
}

/** A symbolic dim's size in the files, and the input that fixed it. */
type Bindings = Map<string, { size: number; input: string }>;

/** Refuses an array whose dtype, rank or dims do not fit the input; records the sizes of symbolic dims. */
function checkArray(s: Settings, file: string, input: ValueInfo, stored: StoredArray, batchAxis: number, bound: Bindings): void {
  const expected = input.dtype as FeedDType;
  const mismatch = (why: string) =>
    new ModelError(
      file,
      `input ${quote(input.name)} expects ${input.dtype} ${formatShape(input.shape)}, found ${stored.dtype} ${formatShape(stored.shape)} (${why})`,
    );
  if (!canConvert(stored.dtype, expected)) {
    throw mismatch(
      `${NUMPY_NAMES[stored.dtype]} cannot be fed as ${NUMPY_NAMES[expected]}; ` +
        'only float64→float32, int32→int64 and float16/bfloat16→float32 are converted',
    );
  }
  if (stored.shape.length !== input.shape.length) throw mismatch(`rank ${stored.shape.length}, expected ${input.shape.length}`);
  input.shape.forEach((dim, axis) => {
    const size = stored.shape[axis];
    const onBatchAxis = axis === batchAxis;
    if (typeof dim === 'number') {
      // Along the batch axis a file may hold several batches of the model's fixed batch size.
      if (onBatchAxis && dim > 0) {
        if (size === 0 || size % dim !== 0) throw mismatch(`axis ${axis} holds ${size} rows, not a multiple of ${dim}`);
      } else if (size !== dim) {
        throw mismatch(`axis ${axis} is ${size}, expected ${dim}`);
      }
      return;
    }
    const setting = axisSetting(s.dims, input.name, axis, dim);
    if (!onBatchAxis && setting !== undefined && setting !== size) {
      throw mismatch(`axis ${axis} is ${size}, but the calibration dims set ${quote(dim ?? axisKey(input.name, axis))} to ${setting}`);
    }
    if (dim === null) return;
    const previous = bound.get(dim);
    if (previous && previous.size !== size) {
      throw mismatch(`dim ${quote(dim)} is ${size} here but ${previous.size} in input ${quote(previous.input)}`);
    }
    bound.set(dim, { size, input: input.name });
  });
}

async function buildSamples(
  s: Settings,
  source: string,
  assigned: Map<string, Assignment>,
  batchAxis: number,
): Promise<CalibrationSet> {
  const bound: Bindings = new Map();
  const arrays = new Map<string, { tensor: FeedTensor; file: string }>();
  const conversions: string[] = [];
  for (const input of s.inputs) {
    const assignment = assigned.get(input.name);
    if (!assignment) continue;
    const { holder, arrayName } = assignment;
    const stored = await forInput(input.name, () => holder.read(arrayName));
    checkArray(s, holder.file, input, stored, batchAxis, bound);
    const dtype = input.dtype as FeedDType;
    if (stored.dtype !== dtype) conversions.push(`${input.name} ${NUMPY_NAMES[stored.dtype]}→${NUMPY_NAMES[dtype]}`);
    arrays.set(input.name, { tensor: convert(stored, dtype), file: holder.file });
  }

  // Rows per sample along the batch axis: the model's fixed size, else the settings' dims, else `batch`.
  const rowsPerSample = new Map<string, number>();
  const perSampleDims = new Map<string, number>();
  let batches: { count: number; input: string } | undefined;
  for (const input of s.inputs) {
    const entry = arrays.get(input.name);
    if (!entry || input.shape.length <= batchAxis) continue;
    const dim = input.shape[batchAxis];
    const rows = typeof dim === 'number' ? dim : axisSetting(s.dims, input.name, batchAxis, dim) ?? s.batch;
    const total = entry.tensor.shape[batchAxis];
    if (total < rows) {
      throw new ModelError(
        entry.file,
        `input ${quote(input.name)} holds ${total} row(s) along axis ${batchAxis}, fewer than the batch size ${rows}`,
      );
    }
    const count = Math.floor(total / rows);
    if (batches && batches.count !== count) {
      throw new ModelError(
        entry.file,
        `input ${quote(input.name)} holds ${count} batch(es) of ${rows} along axis ${batchAxis}, ` +
          `but input ${quote(batches.input)} holds ${batches.count}`,
      );
    }
    batches ??= { count, input: input.name };
    if (total % rows !== 0) {
      s.warnings.push(
        `${path.basename(entry.file)}: the last ${total % rows} row(s) of input ${quote(input.name)} do not fill a batch of ${rows} and are left out`,
      );
    }
    rowsPerSample.set(input.name, rows);
    if (typeof dim === 'string') perSampleDims.set(dim, rows);
  }
  for (const [dim, { size }] of bound) if (!perSampleDims.has(dim)) perSampleDims.set(dim, size);

  // The timestep input, when no file holds it, starts at the first timestep; withTimestep sets each in turn.
  let timestepFeed: FeedTensor | undefined;
  if (s.timestep && !arrays.has(s.timestep.input)) {
    const info = s.inputs.find((i) => i.name === s.timestep?.input) as ValueInfo;
    const shape = resolveShape(s.modelFile, info, { dims: s.dims, batch: s.batch, known: perSampleDims });
    timestepFeed = filledTensor(info.dtype as FeedDType, shape, s.timestep.values[0]);
  }

  const count = Math.min(s.samples, batches?.count ?? 1);
  const samples: Feeds[] = [];
  for (let k = 0; k < count; k++) {
    const feeds: Feeds = {};
    for (const input of s.inputs) {
      const entry = arrays.get(input.name);
      const rows = rowsPerSample.get(input.name);
      if (!entry) feeds[input.name] = timestepFeed as FeedTensor;
      else feeds[input.name] = rows === undefined ? entry.tensor : sliceAxis(entry.tensor, batchAxis, k * rows, rows);
    }
    samples.push(feeds);
  }
  const description = conversions.length > 0 ? `${source} (converted on load: ${conversions.join(', ')})` : source;
  return { samples, timestep: s.timestep, description, warnings: s.warnings };
}
