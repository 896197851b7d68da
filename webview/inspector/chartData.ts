// What the detail charts plot, derived only from the engine's records. No DOM, so it is unit-tested.
import { QUANT_BITS, type Histogram, type WeightQuantError } from '../../extension/protocol/records';

export interface HistogramBin {
  lo: number;
  hi: number;
  count: number;
}

/** The histogram's bins with their edges (evenly spaced from min to max, as the engine defines them). */
export function histogramBins(hist: Histogram): HistogramBin[] {
  const n = hist.counts.length;
  const width = n > 0 ? (hist.max - hist.min) / n : 0;
  return hist.counts.map((count, i) => ({
    lo: hist.min + i * width,
    hi: i === n - 1 ? hist.max : hist.min + (i + 1) * width,
    count,
  }));
}

export interface SqnrSeries {
  bits: number[];
  /** dB per bit-width; null where the engine gave no finite number. */
  perChannel: (number | null)[];
  perGroup: (number | null)[];
  groupSize: number;
}

export function sqnrSeries(error: WeightQuantError): SqnrSeries {
  const finite = (x: number | null | undefined) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  return {
    bits: [...QUANT_BITS],
    perChannel: QUANT_BITS.map((b) => finite(error.perChannel[b])),
    perGroup: QUANT_BITS.map((b) => finite(error.perGroup[b])),
    groupSize: error.groupSize,
  };
}
