// Chart options set at construction copy the theme's colors of that moment; this points them at the new theme's.
import type { Chart } from 'chart.js';
import type { ThemeColors } from './theme';

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
