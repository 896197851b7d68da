// Search problems from a sensitivity run: one option per setting the run measured (plus full precision), its error
// from the run's rows, its cost from the model's layers; and the per-timestep-range split (one problem per range).
//
// Error = relative noise power Σ(y−ŷ)²/Σy² = 10^(−SQNR/10) of the unit's primary metric, by default. The knapsack
// adds errors across units; output noise from independent perturbations of different layers roughly adds in power
// (not in dB, not in cosine), and the ratio is dimensionless, so groups ranked by different metric tensors (ViDiT-Q-MP's
// decoupled metrics) share one scale. 'mse' is offered for runs whose units all share one output.
import type { AnalysisRun, QuantSetting, SensitivityRow } from '../../protocol/analysis';
import type { LayerInfo } from '../../protocol/records';
import { FULL_PRECISION_OPTION, type CostUnit, type SearchOption, type SearchProblem, type SearchUnit } from '../../protocol/search';
import { groupMatcher, groupsOf, planUnits } from '../analysis/plan';
import { ALL_UNIT, OTHER_GROUP } from '../analysis/settings';
import { listNames, SearchError } from './problem';

export interface ProblemFromRunOptions {
  /** The model's quantizable layers (the inspector's LayerInfo list): names, params, weights. */
  layers: readonly LayerInfo[];
  /** 'bits' (default): params × weight bits. 'bops': MACs × weight bits × activation bits, which needs `macs`. */
  costUnit?: CostUnit;
  /** Multiply-accumulates per forward pass, by layer name; needed for 'bops'. */
  macs?: Record<string, number>;
  /** 'noise' (default): 10^(−SQNR/10) of the primary metric. 'mse': its mean squared error. */
  metric?: 'noise' | 'mse';
  /** The run's setting ids to offer (default: all of them); full precision is always offered. */
  settings?: string[];
  /** Timesteps whose errors are combined (default: all the run has). */
  timesteps?: (number | null)[];
  /** How errors over several timesteps combine (default 'mean': a problem's scale does not depend on its range's size). */
  aggregate?: 'sum' | 'mean';
  ties?: string[][];
  /** unit name → option id; FULL_PRECISION_OPTION keeps it unquantized. */
  pins?: Record<string, string>;
  /** Group name → factor on the errors of its units (metric-decoupled objective); unnamed groups keep 1. */
  groupWeights?: Record<string, number>;
  /** Bits of a weight (and activation) left unquantized (default 16). */
  fullPrecisionBits?: number;
  /** The file errors name (default: the run's model). */
  source?: string;
}

const DEFAULT_FULL_PRECISION_BITS = 16;

function describeTimestep(timestep: number | null): string {
  return timestep === null ? 'no timestep' : `t=${timestep}`;
}

function rowError(row: SensitivityRow, metric: 'noise' | 'mse'): number {
  return metric === 'noise' ? 10 ** (-row.primary.sqnrDb / 10) : row.primary.mse;
}

/** One problem over the run's rows at `options.timesteps`. */
export function problemFromRun(run: AnalysisRun, options: ProblemFromRunOptions): SearchProblem {
  const source = options.source ?? run.settings.model;
  const fail = (problem: string): never => {
    throw new SearchError(source, `run ${run.id}: ${problem}`);
  };
  if (run.status !== 'complete') fail(`the run is ${run.status}${run.message ? ` (${run.message})` : ''}; a search needs a complete run`);
  const costUnit = options.costUnit ?? 'bits';
  const metric = options.metric ?? 'noise';
  const fullBits = options.fullPrecisionBits ?? DEFAULT_FULL_PRECISION_BITS;
  if (!Number.isFinite(fullBits) || fullBits <= 0) fail(`full-precision bits must be a number > 0, not ${fullBits}`);

  const settingsById = new Map(run.settings.settings.map((setting) => [setting.id, setting]));
  if (settingsById.has(FULL_PRECISION_OPTION)) fail(`setting id ${JSON.stringify(FULL_PRECISION_OPTION)} is reserved for full precision`);
  const offered = options.settings ?? run.plan.settings;
  const unknownSettings = offered.filter((id) => !settingsById.has(id));
  if (unknownSettings.length > 0) fail(`unknown setting${unknownSettings.length > 1 ? 's' : ''} ${listNames(unknownSettings)} (the run has ${listNames([...settingsById.keys()])})`);

  const timesteps = options.timesteps ?? run.plan.timesteps;
  const unknownTimesteps = timesteps.filter((t) => !run.plan.timesteps.includes(t));
  if (timesteps.length === 0) fail('no timesteps to take errors from');
  if (unknownTimesteps.length > 0) fail(`the run has no ${listNames(unknownTimesteps.map(describeTimestep))}`);

  // The plan again, from the run's settings and the model's layers: which layers each unit stands for.
  const plan = planUnits(run.settings, options.layers, []);
  const planned = new Map(plan.units.map((unit) => [unit.name, unit]));
  const runUnits = run.plan.units.filter((name) => name !== ALL_UNIT);
  const missing = runUnits.filter((name) => !planned.has(name));
  if (missing.length > 0) fail(`the model has no ${listNames(missing)}: was the run made on another model?`);
  // Units of extra activation tensors hold no weights: they stay at full precision.
  const searched = runUnits.map((name) => planned.get(name)!).filter((unit) => unit.layers.length > 0);

  const macsOf = (layer: LayerInfo): number => {
    const macs = options.macs?.[layer.name];
    if (macs === undefined || !Number.isFinite(macs) || macs < 0) fail(`bit-operation costs need the MACs of layer ${JSON.stringify(layer.name)}`);
    return macs!;
  };
  const layerCost = (layer: LayerInfo, weightBits: number, activationBits: number | null): number =>
    costUnit === 'bits' ? layer.params * weightBits : macsOf(layer) * weightBits * (activationBits ?? fullBits);

  const groupOf = groupMatcher(run.settings.model, groupsOf(run.settings));
  const weights = options.groupWeights ?? {};
  const knownGroups = new Set([...groupsOf(run.settings).map((group) => group.name), OTHER_GROUP]);
  const unknownGroups = Object.keys(weights).filter((name) => !knownGroups.has(name));
  if (unknownGroups.length > 0) fail(`unknown group${unknownGroups.length > 1 ? 's' : ''} ${listNames(unknownGroups)} in group weights (groups: ${listNames([...knownGroups])})`);
  for (const [name, weight] of Object.entries(weights)) {
    if (!Number.isFinite(weight) || weight < 0) fail(`group ${JSON.stringify(name)}: weight must be a finite number ≥ 0, not ${weight}`);
  }
  const weightOf = (unitName: string, layer: LayerInfo): number => {
    const group = run.settings.unit === 'group' ? unitName : (groupOf(layer.name)?.name ?? OTHER_GROUP);
    return weights[group] ?? 1;
  };

  const rows = new Map<string, SensitivityRow>();
  const key = (unit: string, setting: string, timestep: number | null) => JSON.stringify([unit, setting, timestep]);
  for (const row of run.rows) rows.set(key(row.unit, row.setting, row.timestep), row);

  const units: SearchUnit[] = searched.map((unit) => {
    const layers = unit.layers.map((planned) => planned.layer);
    const weight = weightOf(unit.name, layers[0]);
    const optionOf = (id: string, setting: QuantSetting | undefined, error: number): SearchOption => {
      const weightBits = setting?.weight?.bits ?? fullBits;
      const activationBits = setting?.activation?.bits ?? null;
      const cost = layers.reduce((sum, layer) => sum + layerCost(layer, weightBits, activationBits), 0);
      return { id, weightBits, activationBits, cost, error };
    };
    const unitOptions = [optionOf(FULL_PRECISION_OPTION, undefined, 0)];
    for (const id of offered) {
      const found = timesteps.map((t) => rows.get(key(unit.name, id, t)));
      // The plan leaves out settings with nothing to quantize in a unit: no rows at all means not applicable.
      if (found.every((row) => row === undefined)) continue;
      const lacking = timesteps.filter((_, i) => found[i] === undefined);
      if (lacking.length > 0) fail(`no row for ${JSON.stringify(unit.name)} × ${id} at ${listNames(lacking.map(describeTimestep))}`);
      const errors = found.map((row) => rowError(row!, metric));
      const bad = errors.findIndex((error) => !Number.isFinite(error) || error < 0);
      if (bad >= 0) fail(`the row for ${JSON.stringify(unit.name)} × ${id} at ${describeTimestep(timesteps[bad])} has no usable ${metric === 'noise' ? 'SQNR' : 'MSE'}`);
      const total = errors.reduce((sum, error) => sum + error, 0);
      unitOptions.push(optionOf(id, settingsById.get(id), weight * (options.aggregate === 'sum' ? total : total / errors.length)));
    }
    const params = layers.reduce((sum, layer) => sum + layer.params, 0);
    return { name: unit.name, params, ...(run.settings.unit === 'group' ? { members: layers.map((layer) => layer.name) } : {}), options: unitOptions };
  });

  // Everything the search does not touch stays at full precision and still counts against the budget.
  const searchedLayers = new Set(searched.flatMap((unit) => unit.layers.map((planned) => planned.layer)));
  const fixedLayers = options.layers.filter((layer) => !searchedLayers.has(layer));
  const fixedCost = fixedLayers.reduce((sum, layer) => sum + layerCost(layer, fullBits, null), 0);
  const totalParams = options.layers.reduce((sum, layer) => sum + layer.params, 0);

  const { ties, pins } = checkConstraints(options, units, plan, fail);
  return { source, costUnit, units, ties, pins, fixedCost, totalParams, timesteps: [...timesteps] };
}

/**
 * Ties and pins name searched units. Names of layers the run left out are fine in a pin to full precision (they stay
 * there anyway) and refused elsewhere; members of a searched group are referred to their group; names the model does
 * not have are refused.
 */
function checkConstraints(
  options: ProblemFromRunOptions,
  units: SearchUnit[],
  plan: ReturnType<typeof planUnits>,
  fail: (problem: string) => never,
): { ties: string[][]; pins: Record<string, string> } {
  const searchedNames = new Set(units.map((unit) => unit.name));
  const groupOfMember = new Map(units.flatMap((unit) => (unit.members ?? []).map((member) => [member, unit.name] as const)));
  const modelNames = new Set([...options.layers.map((layer) => layer.name), ...plan.units.map((unit) => unit.name)]);
  const ties = options.ties ?? [];
  const pinEntries = Object.entries(options.pins ?? {});
  const named = [...ties.flat(), ...pinEntries.map(([name]) => name)];
  const unknown = [...new Set(named.filter((name) => !searchedNames.has(name) && !modelNames.has(name)))];
  if (unknown.length > 0) fail(`unknown layer${unknown.length > 1 ? 's' : ''} ${listNames(unknown)} in ties or pins`);
  const members = [...new Set(named.filter((name) => !searchedNames.has(name) && groupOfMember.has(name)))];
  if (members.length > 0) {
    fail(`${listNames(members)} ${members.length > 1 ? 'are' : 'is'} searched as part of group ${listNames([...new Set(members.map((name) => groupOfMember.get(name)!))])}: tie or pin the group`);
  }
  const notSearched = [
    ...new Set([
      ...ties.flat().filter((name) => !searchedNames.has(name)),
      ...pinEntries.filter(([name, option]) => !searchedNames.has(name) && option !== FULL_PRECISION_OPTION).map(([name]) => name),
    ]),
  ];
  if (notSearched.length > 0) {
    const plural = notSearched.length > 1;
    fail(`${listNames(notSearched)} ${plural ? 'were' : 'was'} not analyzed in this run and stay${plural ? '' : 's'} at full precision`);
  }
  return { ties: ties.map((tie) => [...tie]), pins: Object.fromEntries(pinEntries.filter(([name]) => searchedNames.has(name))) };
}

/** Splits timesteps, in the order given, into `count` contiguous ranges whose sizes differ by at most one. */
export function splitTimesteps<T>(timesteps: readonly T[], count: number): T[][] {
  if (!Number.isInteger(count) || count < 1 || count > timesteps.length) {
    throw new RangeError(`cannot split ${timesteps.length} timesteps into ${count} ranges: the count must be a whole number from 1 to ${timesteps.length}`);
  }
  const ranges: T[][] = [];
  let start = 0;
  for (let range = 0; range < count; range++) {
    const size = Math.floor(timesteps.length / count) + (range < timesteps.length % count ? 1 : 0);
    ranges.push(timesteps.slice(start, start + size));
    start += size;
  }
  return ranges;
}

/**
 * One problem per timestep range, each with its own allocation (ViDiT-Q's timestep-keyed configs). Ranges run in
 * sampling order, the noisiest (largest) timestep first; `options.timesteps`, when given, picks which ones take part.
 */
export function problemsPerTimestepRange(run: AnalysisRun, options: ProblemFromRunOptions, count: number): SearchProblem[] {
  const timesteps = [...(options.timesteps ?? run.plan.timesteps)].sort((a, b) => (b ?? 0) - (a ?? 0));
  if (count > 1 && timesteps.some((t) => t === null)) {
    throw new SearchError(options.source ?? run.settings.model, `run ${run.id}: the model has no timestep input, so it has one range only`);
  }
  let ranges: (number | null)[][];
  try {
    ranges = splitTimesteps(timesteps, count);
  } catch (err) {
    throw new SearchError(options.source ?? run.settings.model, `run ${run.id}: ${(err as Error).message}`);
  }
  return ranges.map((range) => problemFromRun(run, { ...options, timesteps: range }));
}
