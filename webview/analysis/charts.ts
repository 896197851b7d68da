// The panel's two small charts: the most sensitive layers as bars, and one layer's activation range per timestep
// (min and max lines with the band between them filled).
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
  type ActiveElement,
  type ChartEvent,
} from 'chart.js';
import type { ActivationRange } from '../../extension/protocol/analysis';
import { formatDb, formatNumber, shorten } from '../shared/format';
import { restyleChart } from '../shared/chartTheme';
import type { ThemeColors } from '../shared/theme';
import { parseColor } from './colormap';
import { barValue, timestepLabel, type MetricInfo } from './runData';

Chart.register(
  BarController, BarElement, LineController, LineElement, PointElement, CategoryScale, LinearScale, LogarithmicScale,
  Filler, Tooltip, Legend,
);

/** A metric value as the panel writes it everywhere (tooltips, bars). */
export function formatMetric(metric: MetricInfo, value: number | null | undefined): string {
  return metric.key === 'sqnrDb' ? `${formatDb(value)} dB` : formatNumber(value, 4);
}

export class SensitiveBars {
  private readonly chart: Chart<'bar', number[], string>;
  private units: string[] = [];
  private values: number[] = [];
  private metric: MetricInfo | undefined;

  constructor(canvas: HTMLCanvasElement, onClick: (unit: string) => void) {
    this.chart = new Chart(canvas, {
      type: 'bar',
      data: { labels: [], datasets: [{ label: 'most sensitive', data: [], backgroundColor: [], barPercentage: 0.85, categoryPercentage: 1 }] },
      options: {
        indexAxis: 'y',
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        onClick: (_e: ChartEvent, elements: ActiveElement[]) => {
          const unit = this.units[elements[0]?.index ?? -1];
          if (unit !== undefined) onClick(unit);
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            displayColors: false,
            callbacks: {
              title: (items) => this.units[items[0]?.dataIndex ?? -1] ?? '',
              label: (item) => (this.metric ? `${this.metric.label}: ${formatMetric(this.metric, this.values[item.dataIndex])}` : ''),
            },
          },
        },
        scales: {
          x: { type: 'linear', title: { display: true, text: '' } },
          y: { type: 'category', grid: { display: false }, ticks: { autoSkip: false } },
        },
      },
    });
  }

  /** `ranked` worst first, with the colors their heatmap cells have. */
  show(ranked: { unit: string; value: number }[], colors: string[], metric: MetricInfo): void {
    this.units = ranked.map((r) => r.unit);
    this.values = ranked.map((r) => r.value);
    this.metric = metric;
    const plotted = ranked.map((r) => barValue(metric.key, r.value));
    this.chart.data.labels = this.units.map((u) => shorten(u, 28));
    const dataset = this.chart.data.datasets[0]!;
    dataset.data = plotted;
    dataset.backgroundColor = colors;
    const x = this.chart.options.scales!.x!;
    // MSE and 1 − cosine span decades; a log axis needs every value positive.
    x.type = metric.key !== 'sqnrDb' && plotted.length > 0 && plotted.every((v) => v > 0) ? 'logarithmic' : 'linear';
    (x as { title: { text: string } }).title.text = metric.barLabel;
    this.chart.update('none');
  }

  recolor(colors: ThemeColors): void {
    restyleChart(this.chart, colors);
    this.chart.update('none');
  }
}

export class RangeChart {
  private readonly chart: Chart<'line', (number | null)[], string>;

  constructor(canvas: HTMLCanvasElement, colors: ThemeColors) {
    this.chart = new Chart(canvas, {
      type: 'line',
      data: {
        labels: [],
        datasets: [
          // The max line fills down to the min line (dataset 1): the band the activations span.
          { label: 'max', data: [], fill: 1, pointRadius: 2, borderWidth: 1.5, spanGaps: false },
          { label: 'min', data: [], fill: false, pointRadius: 2, borderWidth: 1.5, spanGaps: false },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        plugins: {
          legend: { position: 'bottom', labels: { boxWidth: 14, boxHeight: 2 } },
          tooltip: {
            callbacks: {
              title: (items) => `t = ${items[0]?.label ?? ''}`,
              label: (item) => `${item.dataset.label}: ${formatNumber(item.parsed.y, 4)}`,
            },
          },
        },
        scales: {
          x: { type: 'category', title: { display: true, text: 'timestep' }, ticks: { maxRotation: 0, autoSkip: true } },
          y: { type: 'linear', title: { display: true, text: 'layer input value' } },
        },
      },
    });
    this.recolor(colors);
  }

  show(timesteps: readonly (number | null)[], ranges: readonly (ActivationRange | undefined)[]): void {
    this.chart.data.labels = timesteps.map(timestepLabel);
    this.chart.data.datasets[0]!.data = timesteps.map((_, i) => finiteOrNull(ranges[i]?.max));
    this.chart.data.datasets[1]!.data = timesteps.map((_, i) => finiteOrNull(ranges[i]?.min));
    this.chart.update('none');
  }

  recolor(colors: ThemeColors): void {
    const line = colors.series[0] ?? '#3794ff';
    const parsed = parseColor(line);
    const band = parsed ? `rgba(${parsed.rgb.join(', ')}, 0.18)` : 'rgba(55, 148, 255, 0.18)';
    const [max, min] = this.chart.data.datasets;
    Object.assign(max!, { borderColor: line, backgroundColor: band, pointBackgroundColor: line });
    Object.assign(min!, { borderColor: line, backgroundColor: line, pointBackgroundColor: line, borderDash: [4, 3] });
    restyleChart(this.chart, colors);
    this.chart.update('none');
  }
}

function finiteOrNull(x: number | null | undefined): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}
