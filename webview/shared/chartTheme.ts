// The theme's colors and font in chart.js: as defaults for the charts built next, and on a chart already built.
import { Chart } from 'chart.js';
import type { ThemeColors } from './theme';

export function applyChartDefaults(colors: ThemeColors): void {
  Chart.defaults.color = colors.muted;
  Chart.defaults.borderColor = colors.grid;
  Chart.defaults.font.family = colors.fontFamily;
  Chart.defaults.font.size = Math.max(10, colors.fontSize - 2);
}

/** Chart options set at construction copy the theme's colors of that moment; this points them at the new theme's. */
export function restyleChart(chart: Chart, colors: ThemeColors): void {
  for (const scale of Object.values(chart.options.scales ?? {})) {
    if (!scale) continue;
    if (scale.ticks) scale.ticks.color = colors.muted;
    if (scale.grid) scale.grid.color = colors.grid;
    const title = (scale as { title?: { color?: string } }).title;
    if (title) title.color = colors.muted;
  }
  const legend = chart.options.plugins?.legend;
  if (legend?.labels) legend.labels.color = colors.muted;
}
