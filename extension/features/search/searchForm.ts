// The search panel's launch form: its defaults, its one validity rule (shared by the webview before it posts and the
// host before it starts), and the budget string the engine reads. No imports beyond types: the webview bundle
// includes it.
import type { SearchForm } from '../../protocol/searchPanel';

/** What the form is checked against: the run it searches. */
export interface SearchFormLimits {
  /** The run's timestep count (1: no per-timestep ranges). */
  maxRanges: number;
  /** The run's setting ids ("W4", "W4A8"). */
  settings: readonly string[];
  /** The run's searchable units (layers, or groups for group runs): what a pin pattern must match. */
  units: readonly string[];
}

export const DEFAULT_SEARCH_FORM: Omit<SearchForm, 'settings'> = { budgetKind: 'averageBits', budgetValue: 5, rangeCount: 1, refine: 4, pin: '' };

/** The quality target the form offers first: 30 dB, output noise a thousandth of the signal's power. */
export const DEFAULT_MIN_SQNR_DB = 30;

/** The engine caps SQNR at 200 dB (an error of 0); float32 outputs cannot tell more apart anyway. */
export const MAX_SQNR_DB = 200;

/**
 * The engine's error target for a minimum SQNR: its errors are relative output noise power, 10^(−SQNR/10), so an
 * output at least `sqnrDb` dB above its noise has error at most this.
 */
export function maxErrorForSqnrDb(sqnrDb: number): number {
  return 10 ** (-sqnrDb / 10);
}

/** The inverse of maxErrorForSqnrDb: the SQNR (dB) an error target stands for. */
export function sqnrDbForMaxError(maxError: number): number {
  return -10 * Math.log10(maxError);
}

/** The pin pattern as the engine compiles it (case-insensitive, like the CLI's --pin). Throws SyntaxError. */
export function pinPattern(pin: string): RegExp {
  return new RegExp(pin, 'i');
}

const isWhole = (value: unknown, min: number): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= min;

/** Why the form cannot start a search of the run, or undefined when it can. */
export function searchFormProblem(form: SearchForm, limits: SearchFormLimits): string | undefined {
  const value = form.budgetValue;
  switch (form.budgetKind) {
    case 'averageBits':
    case 'sizeMB':
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) return 'The budget must be a positive number.';
      break;
    case 'minSqnrDb':
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_SQNR_DB) {
        return `The quality target must be a minimum SQNR above 0 and at most ${MAX_SQNR_DB} dB.`;
      }
      break;
    default:
      return 'The budget kind must be "averageBits", "sizeMB" or "minSqnrDb".';
  }
  if (!isWhole(form.rangeCount, 1) || form.rangeCount > limits.maxRanges) return `Timestep ranges must be a whole number from 1 to ${limits.maxRanges}.`;
  if (!isWhole(form.refine, 0)) return 'Refine measurements must be a whole number ≥ 0.';
  if (!Array.isArray(form.settings) || form.settings.length === 0) return `Choose at least one of the run's settings (${limits.settings.join(', ')}) to search over.`;
  const unknown = form.settings.filter((id) => !limits.settings.includes(id));
  if (unknown.length > 0) return `The run has no setting ${unknown.map((id) => JSON.stringify(id)).join(', ')} (it has ${limits.settings.join(', ')}).`;
  if (typeof form.pin !== 'string') return 'Pin layers must be a regular expression (empty: pin none).';
  return pinProblem(form.pin, limits.units);
}

/** Why a pin pattern cannot be used on these units (an empty pattern pins none), or undefined when it can. */
export function pinProblem(pin: string, units: readonly string[]): string | undefined {
  if (pin === '') return undefined;
  let regex: RegExp;
  try {
    regex = pinPattern(pin);
  } catch (err) {
    return `Pin layers: ${JSON.stringify(pin)} is not a valid regular expression (${(err as Error).message}).`;
  }
  if (!units.some((unit) => regex.test(unit))) return `Pin layers: ${JSON.stringify(pin)} matches none of the run's ${units.length} layers.`;
  return undefined;
}

/** The form with test or caller overrides; refuses values the form could not hold. */
export function searchFormWith(base: SearchForm, overrides: unknown, limits: SearchFormLimits): SearchForm {
  const form: SearchForm = { ...base, ...(overrides as Partial<SearchForm>) };
  const problem = searchFormProblem(form, limits);
  if (problem) throw new Error(problem);
  return { ...form, settings: [...form.settings] };
}

/** The budget as the engine (and the CLI) reads it: "5bits", "40MB", "error<=0.001". */
export function budgetText(form: Pick<SearchForm, 'budgetKind' | 'budgetValue'>): string {
  switch (form.budgetKind) {
    case 'sizeMB':
      return `${form.budgetValue}MB`;
    case 'minSqnrDb':
      return `error<=${maxErrorForSqnrDb(form.budgetValue)}`;
    default:
      return `${form.budgetValue}bits`;
  }
}

/** The budget in a file name: "5bits", "40MB", "30dB" (no characters file systems refuse). */
export function budgetLabel(form: Pick<SearchForm, 'budgetKind' | 'budgetValue'>): string {
  const value = String(form.budgetValue).replace('.', '_');
  return form.budgetKind === 'minSqnrDb' ? `${value}dB` : form.budgetKind === 'sizeMB' ? `${value}MB` : `${value}bits`;
}
