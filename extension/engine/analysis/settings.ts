// Analysis settings: the columns of a sweep built from bit lists, the default DiT-style layer groups, and the checks
// a settings object passes before anything runs (settings come from forms, CLI flags and saved records).
import * as path from 'path';
import type { ActivationMode, AnalysisSettings, LayerGroupSpec, QuantSetting, WeightGranularity } from '../../protocol/analysis';
import { ModelError } from '../errors';

/** The unit that quantizes every planned layer (and extra tensor) at once. */
export const ALL_UNIT = '*';
/** Where layers go that no group pattern matches. */
export const OTHER_GROUP = 'other';
export const DEFAULT_PERCENTILE = 99.99;
export const ACTIVATION_MODES: readonly ActivationMode[] = ['dynamic-token', 'static-minmax', 'static-percentile'];

export interface SettingLists {
  /** Weight bit-widths: one weight-only setting "W{b}" each. */
  weightBits: number[];
  /** Activation bit-widths: one activation-only setting "A{a}" each. */
  activationBits: number[];
  /** Also every "W{b}A{a}" (weights and activations of the unit together). */
  combine: boolean;
  /** 0: one scale per output channel; else one per group of this many input elements. */
  groupSize: number;
  /** Weights: symmetric (the default) or asymmetric with a zero point per block; one choice for the whole run. */
  weightSymmetric?: boolean;
  activationMode: ActivationMode;
  activationSymmetric: boolean;
  percentile?: number;
}

/** The sweep's columns: W{b} for each weight width, A{a} for each activation width, then W{b}A{a} when asked. */
export function quantSettings(lists: SettingLists): QuantSetting[] {
  const granularity: WeightGranularity = lists.groupSize > 0 ? { kind: 'group', size: lists.groupSize } : { kind: 'channel' };
  const symmetric = lists.weightSymmetric ?? true;
  const weight = (bits: number) => ({ bits, granularity, symmetric });
  const activation = (bits: number) => ({
    bits,
    mode: lists.activationMode,
    symmetric: lists.activationSymmetric,
    ...(lists.activationMode === 'static-percentile' ? { percentile: lists.percentile ?? DEFAULT_PERCENTILE } : {}),
  });
  const settings: QuantSetting[] = [
    ...lists.weightBits.map((b) => ({ id: `W${b}`, weight: weight(b) })),
    ...lists.activationBits.map((a) => ({ id: `A${a}`, activation: activation(a) })),
  ];
  if (lists.combine) {
    for (const b of lists.weightBits) for (const a of lists.activationBits) settings.push({ id: `W${b}A${a}`, weight: weight(b), activation: activation(a) });
  }
  return settings;
}

/** Whether a weight setting is symmetric: records written before the flag existed are. */
export function isWeightSymmetric(weight: NonNullable<QuantSetting['weight']>): boolean {
  return weight.symmetric !== false;
}

/**
 * Groups for DiT-style layer names (ViDiT-Q's split): cross-attention, temporal attention, (self-)attention, MLP and
 * the adaLN modulation. Embedders (names containing "embed") match none, so they land in "other" with the final layer.
 */
export function defaultGroups(): LayerGroupSpec[] {
  const notEmbedder = '^(?!.*embed)';
  return [
    { name: 'cross_attn', patterns: [`${notEmbedder}.*(cross_?attn|attn2\\b)`] },
    { name: 'attn_temp', patterns: [`${notEmbedder}.*(attn_?temp|temp(oral)?_?attn)`] },
    { name: 'attn', patterns: [`${notEmbedder}.*(attn|attention)`] },
    { name: 'mlp', patterns: [`${notEmbedder}.*(mlp|ffn|feed_?forward|\\.ff\\.)`] },
    { name: 'adaLN', patterns: [`${notEmbedder}.*ada_?ln`] },
  ];
}

/** A case-insensitive, unanchored regular expression; invalid ones are refused naming the model and the setting. */
export function compilePattern(model: string, pattern: string, where: string): RegExp {
  try {
    return new RegExp(pattern, 'i');
  } catch (err) {
    throw settingsError(model, `${where}: invalid regular expression ${JSON.stringify(pattern)} (${err instanceof Error ? err.message : String(err)})`);
  }
}

export function settingsError(model: string, problem: string): ModelError {
  return new ModelError(model, `analysis settings: ${problem}`);
}

function isBits(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 2 && value <= 16;
}

/** Checks a settings object (shapes and values, not the model); throws ModelError naming the model. */
export function checkSettings(settings: AnalysisSettings): void {
  const model = typeof settings?.model === 'string' && settings.model ? path.resolve(settings.model) : 'analysis settings';
  const refuse = (problem: string): never => {
    throw settingsError(model, problem);
  };
  if (typeof settings?.model !== 'string' || settings.model === '') refuse('"model" must be a path');
  if (!Array.isArray(settings.settings) || settings.settings.length === 0) refuse('at least one quantization setting is needed');
  const ids = new Set<string>();
  for (const setting of settings.settings) {
    if (typeof setting?.id !== 'string' || setting.id === '') refuse('every setting needs a non-empty id');
    if (ids.has(setting.id)) refuse(`setting id ${JSON.stringify(setting.id)} is used twice`);
    ids.add(setting.id);
    const label = `setting ${JSON.stringify(setting.id)}`;
    if (!setting.weight && !setting.activation) refuse(`${label} quantizes neither weights nor activations`);
    if (setting.weight) {
      if (!isBits(setting.weight.bits)) refuse(`${label}: weight bits must be an integer from 2 to 16`);
      const g = setting.weight.granularity;
      if (g?.kind !== 'channel' && !(g?.kind === 'group' && Number.isInteger(g.size) && g.size >= 1)) {
        refuse(`${label}: weight granularity must be {kind: "channel"} or {kind: "group", size ≥ 1}`);
      }
      if (setting.weight.symmetric !== undefined && typeof setting.weight.symmetric !== 'boolean') refuse(`${label}: weight "symmetric" must be true or false`);
    }
    if (setting.activation) {
      const a = setting.activation;
      if (!isBits(a.bits)) refuse(`${label}: activation bits must be an integer from 2 to 16`);
      if (!ACTIVATION_MODES.includes(a.mode)) refuse(`${label}: activation mode must be one of ${ACTIVATION_MODES.join(', ')}`);
      if (typeof a.symmetric !== 'boolean') refuse(`${label}: activation "symmetric" must be true or false`);
      if (a.percentile !== undefined && !(typeof a.percentile === 'number' && a.percentile > 50 && a.percentile <= 100)) {
        refuse(`${label}: percentile must be a number in (50, 100]`);
      }
    }
  }
  const weightSymmetry = new Set(settings.settings.flatMap((setting) => (setting.weight ? [isWeightSymmetric(setting.weight)] : [])));
  if (weightSymmetry.size > 1) refuse('weight settings must be all symmetric or all asymmetric (one run, one weight quantizer)');
  if (settings.unit !== 'layer' && settings.unit !== 'group') refuse('"unit" must be "layer" or "group"');
  if (!Array.isArray(settings.groups)) refuse('"groups" must be a list');
  const groupNames = new Set<string>();
  for (const group of settings.groups) {
    if (typeof group?.name !== 'string' || group.name === '') refuse('every group needs a non-empty name');
    if (group.name === ALL_UNIT) refuse(`"${ALL_UNIT}" is reserved for the unit that quantizes everything`);
    if (groupNames.has(group.name)) refuse(`group ${JSON.stringify(group.name)} is defined twice`);
    groupNames.add(group.name);
    if (!Array.isArray(group.patterns) || !group.patterns.every((p) => typeof p === 'string')) refuse(`group ${JSON.stringify(group.name)}: "patterns" must be a list of strings`);
    group.patterns.forEach((p) => compilePattern(model, p, `group ${JSON.stringify(group.name)}`));
    if (group.metricTensor !== undefined && (typeof group.metricTensor !== 'string' || group.metricTensor === '')) {
      refuse(`group ${JSON.stringify(group.name)}: "metricTensor" must be a tensor name`);
    }
  }
  if (!Array.isArray(settings.exclude) || !settings.exclude.every((p) => typeof p === 'string')) refuse('"exclude" must be a list of strings');
  settings.exclude.forEach((p) => compilePattern(model, p, 'exclude'));
  const c = settings.calibration;
  if (typeof c !== 'object' || c === null) refuse('"calibration" is missing');
  if (c.source !== undefined && typeof c.source !== 'string') refuse('calibration "source" must be a path');
  if (typeof c.dims !== 'object' || c.dims === null || Array.isArray(c.dims)) refuse('calibration "dims" must map dim names to sizes');
  // samples, batch, seed and dims values are checked by the calibration loader, which names them.
  if (settings.timestep !== undefined) {
    const t = settings.timestep;
    if (typeof t?.input !== 'string' || t.input === '') refuse('timestep "input" must name a model input');
    if (!Array.isArray(t.values) || t.values.length === 0 || !t.values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      refuse('timestep "values" must be a non-empty list of numbers');
    }
    if (new Set(t.values).size !== t.values.length) refuse('timestep "values" must not repeat');
  }
  if (!Array.isArray(settings.extraActivationTensors) || !settings.extraActivationTensors.every((n) => typeof n === 'string' && n !== '')) {
    refuse('"extraActivationTensors" must be a list of tensor names');
  }
  if (settings.executionProvider !== 'cpu' && settings.executionProvider !== 'cuda') refuse('"executionProvider" must be "cpu" or "cuda"');
}

/** Parses "i/N" (0 ≤ i < N). */
export function parseShard(text: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const shard = match ? { index: Number(match[1]), count: Number(match[2]) } : undefined;
  if (!shard || !checkShard(shard)) throw new RangeError(`a shard is "i/N" with 0 ≤ i < N (got ${JSON.stringify(text)})`);
  return shard;
}

export function checkShard(shard: { index: number; count: number }): boolean {
  return Number.isSafeInteger(shard?.index) && Number.isSafeInteger(shard?.count) && shard.count >= 1 && shard.index >= 0 && shard.index < shard.count;
}
