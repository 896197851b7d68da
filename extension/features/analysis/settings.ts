// From the extension's settings to the launch form, and from the form to the engine's AnalysisSettings. No vscode
// import: the host passes the configuration values in, and the unit tests call these directly.
import * as path from 'path';
import { ACTIVATION_MODES, quantSettings } from '../../engine/analysis/settings';
import { detectTimestepInput, evenlySpacedTimesteps } from '../../engine/calib/timestep';
import type { ActivationMode, AnalysisSettings, LayerGroupSpec } from '../../protocol/analysis';
import type { AnalysisForm } from '../../protocol/analysisPanel';
import type { ValueInfo } from '../../protocol/records';
import { formProblem, isInt, MAX_TIMESTEP } from './formProblem';

export { formProblem, MAX_TIMESTEP };

const MIN_BITS = 2;
const MAX_BITS = 16;

/** `quantlens.analysis.*` as the configuration returns it: user-edited JSON, so every field is checked. */
export interface AnalysisConfig {
  weightBits?: unknown;
  activationBits?: unknown;
  activationMode?: unknown;
  combine?: unknown;
  groupSize?: unknown;
  weightSymmetric?: unknown;
  unit?: unknown;
  samples?: unknown;
  dims?: unknown;
  timesteps?: unknown;
  calibrationSource?: unknown;
  executionProvider?: unknown;
  groups?: unknown;
  extraActivationTensors?: unknown;
}

export const FORM_DEFAULTS: AnalysisForm = {
  weightBits: [4, 8],
  activationBits: [8],
  activationMode: 'dynamic-token',
  combine: false,
  groupSize: 0,
  weightSymmetric: true,
  unit: 'layer',
  calibrationSource: '',
  samples: 2,
  timestepInput: '',
  timestepCount: 10,
  extraActivationTensors: [],
  dims: {},
};

function bitsList(value: unknown, fallback: number[]): number[] {
  if (!Array.isArray(value)) return fallback;
  const bits = value.filter((b): b is number => isInt(b) && b >= MIN_BITS && b <= MAX_BITS);
  return [...new Set(bits)].sort((a, b) => a - b);
}

/** Tensor names from user JSON: trimmed, non-empty, each once. */
function tensorNames(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return [...new Set(value.filter((n): n is string => typeof n === 'string').map((n) => n.trim()).filter((n) => n !== ''))];
}

/**
 * Sizes of symbolic input dims from user JSON: dim name or "input[axis]" → positive integer. Entries that are not
 * (an empty name, a size that is not a positive integer) are dropped.
 */
function dimSizes(value: unknown): Record<string, number> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
  // fromEntries defines own properties, so a key such as "__proto__" stays a plain key.
  return Object.fromEntries(Object.entries(value).filter(([name, size]) => name !== '' && Number.isSafeInteger(size) && (size as number) >= 1));
}

function intIn(value: unknown, min: number, max: number, fallback: number): number {
  return isInt(value) && value >= min && value <= max ? value : fallback;
}

/**
 * The form as the settings prefill it for a model with `inputs`: the timestep input is detected by name
 * (t, timestep, sigma, …). Also returns every input that looks like a timestep, for the form's choice.
 */
export function formFromConfig(config: AnalysisConfig, inputs: readonly ValueInfo[]): { form: AnalysisForm; timestepInputs: string[] } {
  const detected = detectTimestepInput([...inputs]);
  const timestepInputs = inputs.filter((input) => detectTimestepInput([input]) === input.name).map((input) => input.name);
  const form: AnalysisForm = {
    weightBits: bitsList(config.weightBits, FORM_DEFAULTS.weightBits),
    activationBits: bitsList(config.activationBits, FORM_DEFAULTS.activationBits),
    activationMode: ACTIVATION_MODES.includes(config.activationMode as ActivationMode) ? (config.activationMode as ActivationMode) : FORM_DEFAULTS.activationMode,
    combine: config.combine === true,
    groupSize: intIn(config.groupSize, 0, 1 << 20, FORM_DEFAULTS.groupSize),
    weightSymmetric: config.weightSymmetric !== false,
    unit: config.unit === 'group' ? 'group' : 'layer',
    calibrationSource: typeof config.calibrationSource === 'string' ? config.calibrationSource.trim() : '',
    samples: intIn(config.samples, 1, 4096, FORM_DEFAULTS.samples),
    timestepInput: detected ?? '',
    timestepCount: intIn(config.timesteps, 1, MAX_TIMESTEP + 1, FORM_DEFAULTS.timestepCount),
    extraActivationTensors: tensorNames(config.extraActivationTensors),
    dims: dimSizes(config.dims),
  };
  return { form, timestepInputs };
}

/**
 * `base` with the fields of `overrides` that are valid form values (a command's argument: from tests, keybindings or
 * other extensions). Throws naming the first field that is not.
 */
export function applyOverrides(base: AnalysisForm, overrides: unknown): AnalysisForm {
  if (overrides === undefined || overrides === null) return base;
  if (typeof overrides !== 'object' || Array.isArray(overrides)) throw new TypeError('the analysis options must be an object');
  const form = { ...base };
  for (const [key, value] of Object.entries(overrides as Record<string, unknown>)) {
    const bad = () => new TypeError(`analysis option ${key}: ${JSON.stringify(value)} is not valid`);
    switch (key) {
      case 'weightBits':
      case 'activationBits':
        if (!Array.isArray(value) || bitsList(value, []).length !== value.length) throw bad();
        form[key] = bitsList(value, []);
        break;
      case 'activationMode':
        if (!ACTIVATION_MODES.includes(value as ActivationMode)) throw bad();
        form.activationMode = value as ActivationMode;
        break;
      case 'combine':
      case 'weightSymmetric':
        if (typeof value !== 'boolean') throw bad();
        form[key] = value;
        break;
      case 'unit':
        if (value !== 'layer' && value !== 'group') throw bad();
        form.unit = value;
        break;
      case 'calibrationSource':
      case 'timestepInput':
        if (typeof value !== 'string') throw bad();
        form[key] = value;
        break;
      case 'extraActivationTensors':
        if (!Array.isArray(value) || tensorNames(value).length !== value.length) throw bad();
        form.extraActivationTensors = tensorNames(value);
        break;
      case 'dims':
        if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad();
        if (Object.keys(dimSizes(value)).length !== Object.keys(value).length) throw bad();
        form.dims = dimSizes(value);
        break;
      case 'groupSize':
      case 'samples':
      case 'timestepCount':
        if (!isInt(value) || value < 0) throw bad();
        form[key] = value;
        break;
      default:
        throw new TypeError(`unknown analysis option ${key}`);
    }
  }
  return form;
}

/** Layer groups from the `quantlens.analysis.groups` setting; entries that are not {name, patterns[]} are dropped. */
export function groupsFromConfig(value: unknown): LayerGroupSpec[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((g): LayerGroupSpec[] => {
    if (!g || typeof g !== 'object') return [];
    const { name, patterns, metricTensor } = g as Record<string, unknown>;
    if (typeof name !== 'string' || !Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string')) return [];
    return [{ name, patterns: patterns as string[], ...(typeof metricTensor === 'string' ? { metricTensor } : {}) }];
  });
}

export interface SettingsContext {
  /** Absolute path of the model. */
  model: string;
  /** Folder relative calibration paths are resolved against (the workspace folder). */
  baseDir: string;
  executionProvider: unknown;
  groups: unknown;
}

export function analysisSettings(form: AnalysisForm, context: SettingsContext): AnalysisSettings {
  const problem = formProblem(form);
  if (problem) throw new RangeError(problem);
  const source = form.calibrationSource.trim();
  return {
    model: context.model,
    settings: quantSettings({
      weightBits: form.weightBits,
      activationBits: form.activationBits,
      combine: form.combine === true,
      groupSize: form.groupSize,
      weightSymmetric: form.weightSymmetric !== false,
      activationMode: form.activationMode,
      // Asymmetric (with a zero point), as ViDiT-Q quantizes activations and as the CLI defaults.
      activationSymmetric: false,
    }),
    unit: form.unit,
    groups: groupsFromConfig(context.groups),
    exclude: [],
    calibration: {
      ...(source ? { source: path.resolve(context.baseDir, source) } : {}),
      samples: form.samples,
      batch: 1,
      seed: 0,
      dims: { ...form.dims },
    },
    ...(form.timestepInput
      ? { timestep: { input: form.timestepInput, values: evenlySpacedTimesteps(form.timestepCount, MAX_TIMESTEP) } }
      : {}),
    extraActivationTensors: form.extraActivationTensors ?? [],
    executionProvider: context.executionProvider === 'cuda' ? 'cuda' : 'cpu',
  };
}

/** `<model>-<yyyymmdd-hhmmss>.json`, local time, so runs list in the order they were made. */
export function recordFileName(modelPath: string, when: Date): string {
  const stem = path.basename(modelPath).replace(/\.(onnx|safetensors)$/i, '').replace(/[^\w.-]+/g, '_') || 'model';
  const two = (n: number) => String(n).padStart(2, '0');
  const stamp = `${when.getFullYear()}${two(when.getMonth() + 1)}${two(when.getDate())}-${two(when.getHours())}${two(when.getMinutes())}${two(when.getSeconds())}`;
  return `${stem}-${stamp}.json`;
}
