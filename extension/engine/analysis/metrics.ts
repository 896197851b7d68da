// Output metrics of a quantized run against the full-precision reference, aggregated over calibration samples as
// sums first and ratios last (so a sample with a large output weighs what its energy weighs).
import type { Metrics } from '../../protocol/analysis';
import { sqnrFromEnergies } from '../quant/weightQuant';

export class MetricSums {
  private count = 0;
  private signal = 0;
  private noise = 0;
  private cross = 0;
  private approxEnergy = 0;

  /** Adds one sample's reference and quantized output (same length), in float64. */
  add(reference: ArrayLike<number>, approx: ArrayLike<number>): void {
    if (reference.length !== approx.length) {
      throw new RangeError(`output sizes differ between the reference (${reference.length}) and the quantized run (${approx.length})`);
    }
    let signal = 0;
    let noise = 0;
    let cross = 0;
    let approxEnergy = 0;
    for (let i = 0; i < reference.length; i++) {
      const y = reference[i];
      const q = approx[i];
      const e = y - q;
      signal += y * y;
      noise += e * e;
      cross += y * q;
      approxEnergy += q * q;
    }
    this.count += reference.length;
    this.signal += signal;
    this.noise += noise;
    this.cross += cross;
    this.approxEnergy += approxEnergy;
  }

  /** Adds the sums of `other` (the samples it was given). */
  addSums(other: MetricSums): void {
    this.count += other.count;
    this.signal += other.signal;
    this.noise += other.noise;
    this.cross += other.cross;
    this.approxEnergy += other.approxEnergy;
  }

  /** Relative noise power Σ(y − ŷ)² / Σy², unclamped: 0 for an exact match, Infinity for noise on a zero signal. */
  relativeNoise(): number {
    if (this.noise === 0) return 0;
    return this.signal === 0 ? Infinity : this.noise / this.signal;
  }

  /**
   * MSE = Σ(y − ŷ)² / n; SQNR = 10·log10(Σy² / Σ(y − ŷ)²), within ±200 dB (200 for an exact match); cosine =
   * Σyŷ / √(Σy² Σŷ²) (1 when both are zero, 0 when one is). NaN where the quantized output was not finite.
   */
  result(): Metrics {
    const finite = Number.isFinite(this.noise) && Number.isFinite(this.cross) && Number.isFinite(this.approxEnergy);
    if (!finite || this.count === 0) return { mse: NaN, sqnrDb: NaN, cosine: NaN };
    let cosine: number;
    if (this.signal === 0 && this.approxEnergy === 0) cosine = 1;
    else if (this.signal === 0 || this.approxEnergy === 0) cosine = 0;
    else cosine = Math.max(-1, Math.min(1, this.cross / Math.sqrt(this.signal * this.approxEnergy)));
    return { mse: this.noise / this.count, sqnrDb: sqnrFromEnergies(this.signal, this.noise), cosine };
  }
}
