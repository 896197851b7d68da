// The sweep's plan: units (layers, groups, extra tensors, and "*" for everything at once) × settings × timesteps,
// in a fixed order, and the slice of it a shard runs.
import type { AnalysisSettings, LayerGroupSpec } from '../../protocol/analysis';
import type { LayerInfo } from '../../protocol/records';
import type { ActivationPointSpec } from '../instrument/instrument';
import { layerPoints, type LayerNode } from '../instrument/plan';
import { ALL_UNIT, OTHER_GROUP, compilePattern, defaultGroups } from './settings';

export interface PlannedLayer {
  /** Unique display name: the layer's name, with its weight appended when two layers share a name. */
  name: string;
  layer: LayerInfo;
  /** The layer's activation inputs, each rewired for the layer's own nodes only. */
  points: ActivationPointSpec[];
}

export interface PlannedUnit {
  name: string;
  layers: PlannedLayer[];
  /** Extra activation tensors (settings.extraActivationTensors) this unit quantizes. */
  tensors: string[];
  /** What ranks the unit: its group's metric tensor, else (undefined) the first output. */
  metricTensor?: string;
}

export interface UnitPlan {
  layers: PlannedLayer[];
  units: PlannedUnit[];
  /** Every group metric tensor in use. */
  metricTensors: string[];
}

function matcher(model: string, patterns: readonly string[], where: string): (name: string) => boolean {
  const compiled = patterns.map((p) => compilePattern(model, p, where));
  return (name) => patterns.includes(name) || compiled.some((re) => re.test(name));
}

/**
 * Each layer's name as sensitivity runs and allocation files give it, in the layers' order: its own name, with its
 * weight appended when two layers share a name.
 */
export function uniqueLayerNames(layers: readonly LayerInfo[]): string[] {
  const count = new Map<string, number>();
  for (const layer of layers) count.set(layer.name, (count.get(layer.name) ?? 0) + 1);
  return layers.map((layer) => ((count.get(layer.name) ?? 0) > 1 ? `${layer.name} [${layer.weight}]` : layer.name));
}

/** The groups in use: the settings' own, else the DiT-style defaults. */
export function groupsOf(settings: AnalysisSettings): LayerGroupSpec[] {
  return settings.groups.length > 0 ? settings.groups : defaultGroups();
}

/** The first group whose patterns match the name, else undefined ("other"). */
export function groupMatcher(model: string, groups: readonly LayerGroupSpec[]): (name: string) => LayerGroupSpec | undefined {
  const matchers = groups.map((g) => ({ group: g, matches: matcher(model, g.patterns, `group ${JSON.stringify(g.name)}`) }));
  return (name) => matchers.find((m) => m.matches(name))?.group;
}

/**
 * Units of the plan: with unit 'layer', every layer not excluded and every extra tensor; with 'group', every group
 * that has members (in the groups' order, "other" last); then "*". A layer's metric tensor is its group's.
 */
export function planUnits(settings: AnalysisSettings, layers: readonly LayerInfo[], nodes: readonly LayerNode[]): UnitPlan {
  const model = settings.model;
  const excluded = matcher(model, settings.exclude, 'exclude');
  const groups = groupsOf(settings);
  const groupOf = groupMatcher(model, groups);

  const names = uniqueLayerNames(layers);
  const planned: PlannedLayer[] = [];
  layers.forEach((layer, i) => {
    if (!excluded(layer.name)) planned.push({ name: names[i], layer, points: layerPoints(layer.weight, nodes) });
  });
  const tensors = [...new Set(settings.extraActivationTensors)];

  const units: PlannedUnit[] = [];
  if (settings.unit === 'layer') {
    for (const layer of planned) {
      const metricTensor = groupOf(layer.layer.name)?.metricTensor;
      units.push({ name: layer.name, layers: [layer], tensors: [], ...(metricTensor ? { metricTensor } : {}) });
    }
    const taken = new Set(units.map((u) => u.name));
    for (const tensor of tensors) {
      const metricTensor = groupOf(tensor)?.metricTensor;
      const name = taken.has(tensor) || tensor === ALL_UNIT ? `${tensor} (tensor)` : tensor;
      units.push({ name, layers: [], tensors: [tensor], ...(metricTensor ? { metricTensor } : {}) });
    }
  } else {
    const members = new Map<string, PlannedUnit>();
    const unitOf = (group: LayerGroupSpec | undefined): PlannedUnit => {
      const name = group?.name ?? OTHER_GROUP;
      let unit = members.get(name);
      if (!unit) {
        unit = { name, layers: [], tensors: [], ...(group?.metricTensor ? { metricTensor: group.metricTensor } : {}) };
        members.set(name, unit);
      }
      return unit;
    };
    for (const layer of planned) unitOf(groupOf(layer.layer.name)).layers.push(layer);
    for (const tensor of tensors) unitOf(groupOf(tensor)).tensors.push(tensor);
    for (const group of groups) {
      const unit = members.get(group.name);
      if (unit) units.push(unit);
    }
    const other = members.get(OTHER_GROUP);
    if (other && !groups.some((g) => g.name === OTHER_GROUP)) units.push(other);
  }
  if (planned.length + tensors.length > 0) units.push({ name: ALL_UNIT, layers: planned, tensors });
  const metricTensors = [...new Set(units.map((u) => u.metricTensor).filter((t): t is string => t !== undefined))];
  return { layers: planned, units, metricTensors };
}

/** One cell of the plan, by index into the plan's units, settings and timesteps. */
export interface Cell {
  unit: number;
  setting: number;
  timestep: number;
}

/**
 * The plan's cells in run order (unit by unit, each setting, each timestep), leaving out cells where the setting
 * has nothing to quantize in the unit; with a shard, every count-th cell starting at index.
 */
export function planCells(
  counts: { units: number; settings: number; timesteps: number },
  applies: (unit: number, setting: number) => boolean,
  shard?: { index: number; count: number },
): Cell[] {
  const cells: Cell[] = [];
  let position = 0;
  for (let unit = 0; unit < counts.units; unit++) {
    for (let setting = 0; setting < counts.settings; setting++) {
      if (!applies(unit, setting)) continue;
      for (let timestep = 0; timestep < counts.timesteps; timestep++) {
        if (!shard || position % shard.count === shard.index) cells.push({ unit, setting, timestep });
        position++;
      }
    }
  }
  return cells;
}
