// The detail pane's two charts. Only the chart.js parts used here are registered, so the bundle stays small.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
} from 'chart.js';
import type { Histogram, WeightQuantError } from '../../extension/protocol/records';
import { formatCount, formatDb, formatNumber } from '../shared/format';
import { applyChartDefaults, restyleChart } from '../shared/chartTheme';
import type { ThemeColors } from '../shared/theme';
import { histogramBins, sqnrSeries, type HistogramBin } from './chartData';

Chart.register(
  BarController, BarElement, LineController, LineElement, PointElement,
  CategoryScale, LinearScale, LogarithmicScale, Tooltip, Legend,
);

export class HistogramChart {
  private readonly chart: Chart<'bar', number[], string>;
  private bins: HistogramBin[] = [];
  private logScale = false;

  constructor(canvas: HTMLCanvasElement, colors: ThemeColors) {
    applyChartDefaults(colors);
    this.chart = new Chart(canvas, {
      type: 'bar',
      data: { labels: [], datasets: [{ label: 'weights', data: [], backgroundColor: colors.series[0], barPercentage: 1, categoryPercentage: 1 }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: (items) => {
                const bin = this.bins[items[0]?.dataIndex ?? -1];
                return bin ? `${formatNumber(bin.lo, 4)} … ${formatNumber(bin.hi, 4)}` : '';
              },
              label: (item) => `${item.parsed.y} weights`,
            },
          },
        },
        scales: {
          x: { ticks: { maxTicksLimit: 7, maxRotation: 0 }, grid: { display: false }, title: { display: true, text: 'weight value' } },
          y: {
            type: 'linear',
            beginAtZero: true,
            title: { display: true, text: 'count' },
            ticks: {
              // On the log axis label only the powers of ten.
              callback: (value) => {
                const n = Number(value);
                if (this.logScale && !(n >= 1 && Number.isInteger(Math.log10(n)))) return '';
                return formatCount(n);
              },
            },
          },
        },
      },
    });
  }

  show(hist: Histogram, logScale: boolean): void {
    this.bins = histogramBins(hist);
    this.chart.data.labels = this.bins.map((b) => formatNumber((b.lo + b.hi) / 2, 3));
    this.chart.data.datasets[0].data = this.bins.map((b) => b.count);
    this.logScale = logScale;
    const y = this.chart.options.scales!.y!;
    y.type = logScale ? 'logarithmic' : 'linear';
    this.chart.update('none');
  }

  recolor(colors: ThemeColors): void {
    applyChartDefaults(colors);
    this.chart.data.datasets[0].backgroundColor = colors.series[0];
    restyleChart(this.chart, colors);
    this.chart.update('none');
  }
}

export class SqnrChart {
  private readonly chart: Chart<'line', { x: number; y: number | null }[]>;

  constructor(canvas: HTMLCanvasElement, colors: ThemeColors) {
    applyChartDefaults(colors);
    const dataset = (label: string, color: string, dash: number[]) => ({
      label,
      data: [] as { x: number; y: number | null }[],
      borderColor: color,
      backgroundColor: color,
      borderDash: dash,
      pointRadius: 3,
      spanGaps: false,
    });
    this.chart = new Chart(canvas, {
      type: 'line',
      data: { datasets: [dataset('per channel', colors.series[0], []), dataset('per group', colors.series[1], [5, 3])] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { position: 'bottom', labels: { boxWidth: 14, boxHeight: 2 } },
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${formatDb(item.parsed.y)} dB` } },
        },
        scales: {
          x: { type: 'linear', min: 2, max: 8, ticks: { stepSize: 1 }, title: { display: true, text: 'weight bits' } },
          y: { type: 'linear', title: { display: true, text: 'SQNR (dB)' } },
        },
      },
    });
  }

  show(error: WeightQuantError): void {
    const series = sqnrSeries(error);
    const points = (values: (number | null)[]) => series.bits.map((x, i) => ({ x, y: values[i] }));
    this.chart.data.datasets[0].data = points(series.perChannel);
    this.chart.data.datasets[1].data = points(series.perGroup);
    this.chart.data.datasets[1].label = `per group of ${series.groupSize}`;
    this.chart.update('none');
  }

  recolor(colors: ThemeColors): void {
    applyChartDefaults(colors);
    this.chart.data.datasets.forEach((d, i) => {
      d.borderColor = colors.series[i];
      d.backgroundColor = colors.series[i];
    });
    restyleChart(this.chart, colors);
    this.chart.update('none');
  }
}
