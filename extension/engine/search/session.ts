// The engine process's `search` and `exportQdq` methods: searchAndVerify on a saved run, the allocation written as
// JSON and YAML with the panel's report beside it; and the QDQ export of each range of an allocation next to the model.
import * as fs from 'fs';
import * as path from 'path';
import type { AnalysisRun } from '../../protocol/analysis';
import { FULL_PRECISION_OPTION } from '../../protocol/search';
import type { ExportParams, ExportReport, SearchEvent, SearchParams, SearchReport } from '../../protocol/searchPanel';
import { allocationToYaml, loadAllocation, saveAllocation, writeAtomically } from '../export/allocation';
import { exportQdq } from '../export/qdq';
import { ALL_UNIT } from '../analysis/settings';
import { ModelError } from '../errors';
import { loadRun } from '../runs/records';
import { parseBudget } from './problem';
import { measureSettingsFromRun, searchAndVerify } from './refine';
import { reportPathFor, searchReport, stepReport, yamlPathsFor } from './report';

function checkParams(params: SearchParams): void {
  if (typeof params?.runPath !== 'string' || typeof params.outPath !== 'string' || typeof params.budget !== 'string') {
    throw new Error("search needs string 'runPath', 'budget' and 'outPath'");
  }
  for (const [name, value, min] of [['rangeCount', params.rangeCount, 1], ['refine', params.refine, 0]] as const) {
    if (!Number.isSafeInteger(value) || value < min) throw new Error(`search needs an integer '${name}' ≥ ${min}`);
  }
  for (const name of ['pins', 'settings'] as const) {
    const list = params[name];
    if (list !== undefined && (!Array.isArray(list) || list.some((item) => typeof item !== 'string'))) throw new Error(`search's '${name}' must be a list of strings`);
  }
}

/**
 * Pins as the CLI's `--pin` and the panel take them: the run's units each pattern matches (case-insensitive) stay in
 * full precision; an invalid pattern, or one that matches none, is refused naming `source` (`where`: "--pin", "pin").
 */
export function pinsMatching(run: AnalysisRun, patterns: readonly string[], where: string, source: string): Record<string, string> {
  const units = run.plan.units.filter((unit) => unit !== ALL_UNIT);
  const pins: Record<string, string> = {};
  for (const pattern of patterns) {
    let regex: RegExp;
    try {
      regex = new RegExp(pattern, 'i');
    } catch (err) {
      throw new ModelError(source, `${where} ${JSON.stringify(pattern)} is not a valid regular expression (${(err as Error).message})`);
    }
    const hits = units.filter((unit) => regex.test(unit));
    if (hits.length === 0) throw new ModelError(source, `${where} ${JSON.stringify(pattern)} matches none of the run's ${units.length} layers`);
    for (const unit of hits) pins[unit] = FULL_PRECISION_OPTION;
  }
  return pins;
}

export async function runSearch(params: SearchParams, emit: (event: SearchEvent) => void, signal: AbortSignal): Promise<SearchReport> {
  checkParams(params);
  const run = await loadRun(params.runPath);
  let budget;
  try {
    budget = parseBudget(params.budget);
  } catch (err) {
    throw new ModelError(params.runPath, (err as Error).message);
  }
  const timesteps = run.plan.timesteps.filter((t) => t !== null).length;
  if (params.rangeCount > Math.max(1, timesteps)) {
    throw new ModelError(params.runPath, `${params.rangeCount} timestep ranges asked for, but the run has ${timesteps} timestep${timesteps === 1 ? '' : 's'}`);
  }
  const pins = pinsMatching(run, params.pins ?? [], 'pin', params.runPath);
  const result = await searchAndVerify(run, budget, {
    ...(params.modelPath ? { model: params.modelPath } : {}),
    rangeCount: params.rangeCount,
    refine: params.refine,
    ...(Object.keys(pins).length > 0 ? { pins } : {}),
    ...(params.settings ? { settings: params.settings } : {}),
    signal,
    onProgress: ({ stage, done, total }) => emit({ kind: 'progress', stage, done, total }),
    onStep: (step) => emit({ kind: 'step', step: stepReport(step) }),
  });
  const allocationPath = path.resolve(params.outPath);
  saveAllocation(allocationPath, result.allocation);
  const yamlPaths = yamlPathsFor(allocationPath);
  writeAtomically(yamlPaths[0], allocationToYaml(result.allocation, 'weight'), 'YAML file');
  writeAtomically(yamlPaths[1], allocationToYaml(result.allocation, 'activation'), 'YAML file');
  const report = searchReport(result, {
    modelPath: params.modelPath ?? run.settings.model,
    runPath: path.resolve(params.runPath),
    runId: run.id,
    allocationPath,
    yamlPaths,
  });
  writeAtomically(reportPathFor(allocationPath), `${JSON.stringify(report, null, 1)}\n`, 'search report');
  return report;
}

/** "<dir>/<name>.qdq.onnx" for one range, "<dir>/<name>.<label>.qdq.onnx" per range when there are several. */
export function qdqPaths(modelPath: string, labels: readonly string[]): string[] {
  const dir = path.dirname(modelPath);
  const name = path.basename(modelPath).replace(/\.onnx$/i, '');
  // Range labels are digits, dashes or "all"; anything else from an edited file is replaced.
  const safe = (label: string) => label.replace(/[^0-9A-Za-z-]/g, '_');
  return labels.length === 1 ? [path.join(dir, `${name}.qdq.onnx`)] : labels.map((label) => path.join(dir, `${name}.${safe(label)}.qdq.onnx`));
}

export async function runExport(params: ExportParams, signal: AbortSignal): Promise<ExportReport> {
  if (typeof params?.modelPath !== 'string' || typeof params.allocationPath !== 'string') {
    throw new Error("exportQdq needs string 'modelPath' and 'allocationPath'");
  }
  const allocation = await loadAllocation(params.allocationPath);
  const run = params.runPath && fs.existsSync(params.runPath) ? await loadRun(params.runPath) : undefined;
  const calibration = run ? measureSettingsFromRun(run).calibration : undefined;
  const outPaths = qdqPaths(params.modelPath, allocation.ranges.map((range) => range.label));
  const models: ExportReport['models'] = [];
  for (const [rangeIndex, outPath] of outPaths.entries()) {
    if (signal.aborted) break;
    const result = await exportQdq(params.modelPath, allocation, {
      outPath,
      allocationFile: path.resolve(params.allocationPath),
      rangeIndex,
      measure: true,
      ...(calibration ? { calibration } : {}),
      ...(run?.settings.timestep ? { timestepInput: run.settings.timestep.input } : {}),
    });
    models.push({
      rangeLabel: result.range.label,
      outPath: result.outPath,
      originalBytes: result.originalBytes,
      exportedBytes: result.exportedBytes,
      weights: result.weights.length,
      activations: result.activations.length,
      sqnrDb: Object.fromEntries(Object.entries(result.measured?.outputs ?? {}).map(([name, m]) => [name, Number.isFinite(m.sqnrDb) ? m.sqnrDb : null])),
      notes: result.notes,
    });
  }
  return { models };
}
