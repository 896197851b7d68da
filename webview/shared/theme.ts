// Colors for canvases (chart.js cannot read CSS variables): taken from the computed --vscode-* variables of the page,
// and refreshed when VS Code switches theme.
import type { ColormapTheme } from '../analysis/colormap';

export interface ThemeColors {
  foreground: string;
  muted: string;
  grid: string;
  fontFamily: string;
  fontSize: number;
  /** Distinct series colors from the theme's chart palette. */
  series: string[];
}

export function themeColors(): ThemeColors {
  const style = getComputedStyle(document.body);
  const v = (name: string, fallback: string) => style.getPropertyValue(name).trim() || fallback;
  return {
    foreground: v('--vscode-foreground', '#cccccc'),
    muted: v('--vscode-descriptionForeground', '#999999'),
    grid: v('--vscode-charts-lines', 'rgba(128, 128, 128, 0.35)'),
    fontFamily: v('--vscode-font-family', 'sans-serif'),
    fontSize: parseFloat(v('--vscode-font-size', '13')) || 13,
    series: [
      v('--vscode-charts-blue', '#3794ff'),
      v('--vscode-charts-orange', '#d18616'),
      v('--vscode-charts-green', '#89d185'),
      v('--vscode-charts-red', '#f14c4c'),
      v('--vscode-charts-purple', '#b180d7'),
    ],
  };
}

/** The theme colors the heatmaps' color scale is built from; Colormap falls back to dark-theme colors for any left empty. */
export function colormapTheme(): ColormapTheme {
  const style = getComputedStyle(document.body);
  const v = (name: string) => style.getPropertyValue(name).trim();
  return {
    background: v('--vscode-editor-background'),
    foreground: v('--vscode-foreground'),
    yellow: v('--vscode-charts-yellow'),
    orange: v('--vscode-charts-orange'),
    red: v('--vscode-charts-red'),
  };
}

/** VS Code marks a theme switch with a new body class and new variables on the root element's style. */
export function onThemeChange(listener: () => void): void {
  const observer = new MutationObserver(() => listener());
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
}
