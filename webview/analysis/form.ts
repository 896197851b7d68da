// The launch form: settings, calibration source and timesteps, prefilled by the host from the extension's settings.
import type { AnalysisForm } from '../../extension/protocol/analysisPanel';
import { formProblem } from '../../extension/features/analysis/formProblem';
import { h, icon } from '../shared/dom';

const WEIGHT_BITS = [2, 3, 4, 6, 8];
const ACTIVATION_BITS = [4, 6, 8, 16];
const GROUP_SIZES = [0, 32, 64, 128, 256];
const MODES: { value: AnalysisForm['activationMode']; label: string }[] = [
  { value: 'dynamic-token', label: 'dynamic, per token' },
  { value: 'static-minmax', label: 'static, per tensor (min/max)' },
  { value: 'static-percentile', label: 'static, per tensor (percentile)' },
];

let ids = 0;
const nextId = (stem: string) => `${stem}-${++ids}`;

function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  const id = control.id || nextId('field');
  control.id = id;
  return h(
    'div',
    { className: 'field' },
    h('label', { className: 'field-label', text: label, attrs: { for: id } }),
    control,
    ...(hint ? [h('div', { className: 'field-hint muted', text: hint })] : []),
  );
}

function checkGroup(label: string, values: number[], chosen: number[], prefix: string): { element: HTMLElement; read(): number[] } {
  const boxes = values.map((bits) => {
    const box = h('input', { attrs: { type: 'checkbox', value: String(bits), id: nextId(prefix) } });
    box.checked = chosen.includes(bits);
    return box;
  });
  const element = h(
    'fieldset',
    { className: 'field checks' },
    h('legend', { className: 'field-label', text: label }),
    ...boxes.map((box) => h('label', { className: 'check', attrs: { for: box.id } }, box, `${prefix}${box.value}`)),
  );
  return { element, read: () => boxes.filter((b) => b.checked).map((b) => Number(b.value)) };
}

function select<T extends string | number>(options: { value: T; label: string }[], chosen: T): HTMLSelectElement {
  const el = h('select');
  for (const option of options) {
    const item = h('option', { text: option.label, attrs: { value: String(option.value) } });
    item.selected = option.value === chosen;
    el.append(item);
  }
  return el;
}

function numberInput(value: number, min: number, max: number): HTMLInputElement {
  const input = h('input', { attrs: { type: 'number', min: String(min), max: String(max), step: '1' } });
  input.value = String(value);
  return input;
}

/** Builds the form; `start` gets the edited values when the user presses Start. */
export function launchForm(
  fileName: string,
  initial: AnalysisForm,
  timestepInputs: string[],
  start: (form: AnalysisForm) => void,
): HTMLElement {
  const weights = checkGroup('Weight bits (one setting each, weights only)', WEIGHT_BITS, initial.weightBits, 'W');
  const activations = checkGroup('Activation bits (one setting each, activations only)', ACTIVATION_BITS, initial.activationBits, 'A');
  const mode = select(MODES, initial.activationMode);
  const combine = h('input', { attrs: { type: 'checkbox', id: nextId('combine') } });
  combine.checked = initial.combine === true;
  const groupSizes = GROUP_SIZES.includes(initial.groupSize) ? GROUP_SIZES : [...GROUP_SIZES, initial.groupSize].sort((a, b) => a - b);
  const groupSize = select(groupSizes.map((g) => ({ value: g, label: g === 0 ? 'per output channel' : `per group of ${g}` })), initial.groupSize);
  const weightAsym = h('input', { attrs: { type: 'checkbox', id: nextId('weight-asym') } });
  weightAsym.checked = initial.weightSymmetric === false;
  const unit = select<AnalysisForm['unit']>([{ value: 'layer', label: 'one layer at a time' }, { value: 'group', label: 'one group at a time' }], initial.unit);
  const calibration = h('input', { attrs: { type: 'text', placeholder: 'empty: seeded synthetic inputs', spellcheck: 'false' } });
  calibration.value = initial.calibrationSource;
  const extraTensors = h('input', { attrs: { type: 'text', placeholder: 'none, e.g. model.layers.0.self_attn.k, …', spellcheck: 'false' } });
  extraTensors.value = (initial.extraActivationTensors ?? []).join(', ');
  const samples = numberInput(initial.samples, 1, 4096);
  const inputs = [...new Set([...timestepInputs, ...(initial.timestepInput ? [initial.timestepInput] : [])])];
  const timestepInput = select([{ value: '', label: 'none (no timestep input)' }, ...inputs.map((name) => ({ value: name, label: name }))], initial.timestepInput);
  const timestepCount = numberInput(initial.timestepCount, 1, 1000);
  const syncTimesteps = () => (timestepCount.disabled = timestepInput.value === '');
  timestepInput.addEventListener('change', syncTimesteps);
  syncTimesteps();

  const problem = h('div', { className: 'form-problem', attrs: { role: 'alert' } });
  const startButton = h('button', { className: 'primary', attrs: { type: 'submit' } }, icon('play'), 'Start analysis');
  const form = h(
    'form',
    { className: 'launch-form', attrs: { 'aria-label': 'Sensitivity analysis settings' } },
    h('h2', {}, 'Analyze sensitivity of ', h('code', { text: fileName })),
    h('div', { className: 'form-grid' },
      weights.element,
      activations.element,
      h('div', { className: 'field' }, h('label', { className: 'check', attrs: { for: combine.id } }, combine, 'Also weights and activations together (W4A8, …)')),
      field('Weight granularity', groupSize),
      h('div', { className: 'field' }, h('label', { className: 'check', attrs: { for: weightAsym.id } }, weightAsym, 'Asymmetric weights (zero point)')),
      field('Activation scales', mode),
      field('Unit', unit, 'Groups come from the quantlens.analysis.groups setting (DiT defaults when empty).'),
      field('Calibration inputs', calibration, '.npy, .npz, .safetensors or a JSON manifest, relative to the workspace.'),
      field('Also quantize tensors', extraTensors, 'Comma-separated tensor names, each its own unit at the activation bits: an LLM\'s attention K and V for KV-cache quantization.'),
      field('Samples', samples),
      field('Timestep input', timestepInput),
      field('Timesteps (evenly spaced in 0…999)', timestepCount),
    ),
    problem,
    h('div', { className: 'form-actions' }, startButton),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const edited: AnalysisForm = {
      weightBits: weights.read(),
      activationBits: activations.read(),
      activationMode: mode.value as AnalysisForm['activationMode'],
      combine: combine.checked,
      groupSize: Number(groupSize.value),
      weightSymmetric: !weightAsym.checked,
      unit: unit.value as AnalysisForm['unit'],
      calibrationSource: calibration.value.trim(),
      samples: Number(samples.value),
      timestepInput: timestepInput.value,
      timestepCount: Number(timestepCount.value),
      extraActivationTensors: [...new Set(extraTensors.value.split(',').map((name) => name.trim()).filter((name) => name !== ''))],
      // Not edited here (quantlens.analysis.dims): kept as the settings gave them.
      ...(initial.dims ? { dims: initial.dims } : {}),
    };
    const why = formProblem(edited);
    problem.textContent = why ?? '';
    if (why) return;
    startButton.disabled = true;
    start(edited);
  });
  return form;
}
