// The launch form's one validity rule, shared by the webview (before it posts) and the host (before it starts).
// No imports beyond types: the webview bundle includes it.
import type { AnalysisForm } from '../../protocol/analysisPanel';

/** The largest diffusion timestep the form spaces timesteps over (DDPM's 1,000 steps). */
export const MAX_TIMESTEP = 999;

export const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

/** Why the form cannot start a run, or undefined when it can. */
export function formProblem(form: AnalysisForm): string | undefined {
  if (form.weightBits.length + form.activationBits.length === 0) return 'Choose at least one weight or activation bit-width.';
  if ((form.extraActivationTensors ?? []).length > 0 && form.activationBits.length === 0) {
    return 'Extra tensors are quantized at the activation bits: choose at least one activation bit-width.';
  }
  if (!isInt(form.samples) || form.samples < 1) return 'Samples must be a whole number of at least 1.';
  if (!isInt(form.groupSize) || form.groupSize < 0) return 'The weight group size must be a whole number (0 for per channel).';
  if (form.timestepInput && (!isInt(form.timestepCount) || form.timestepCount < 1 || form.timestepCount > MAX_TIMESTEP + 1)) {
    return `Timesteps must be a whole number from 1 to ${MAX_TIMESTEP + 1}.`;
  }
  return undefined;
}
