// The heatmaps' sequential color scale, built from the theme's own colors so it reads in dark, light and
// high-contrast themes: from a faint tint of the editor background (harmless) through the theme's chart yellow and
// orange to its chart red (most sensitive). Hue moves one way (60° → 0°), so order is never ambiguous. Pure: tested
// in node.

export type Rgb = [number, number, number];

/** Parses the color forms VS Code themes use in --vscode-* variables: #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(), rgba(). */
export function parseColor(text: string): { rgb: Rgb; alpha: number } | undefined {
  const s = text.trim().toLowerCase();
  const hex = /^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/.exec(s);
  if (hex) {
    let digits = hex[1]!;
    if (digits.length <= 4) digits = [...digits].map((d) => d + d).join('');
    const byte = (i: number) => parseInt(digits.slice(i, i + 2), 16);
    return { rgb: [byte(0), byte(2), byte(4)], alpha: digits.length === 8 ? byte(6) / 255 : 1 };
  }
  const fn = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)$/.exec(s);
  if (fn) {
    const alphaText = fn[4];
    const alpha = alphaText === undefined ? 1 : alphaText.endsWith('%') ? parseFloat(alphaText) / 100 : parseFloat(alphaText);
    return { rgb: [Number(fn[1]), Number(fn[2]), Number(fn[3])], alpha: Math.min(1, Math.max(0, alpha)) };
  }
  return undefined;
}

const toLinear = (c: number) => {
  const x = c / 255;
  return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
};
const fromLinear = (x: number) => {
  const c = x <= 0.0031308 ? 12.92 * x : 1.055 * x ** (1 / 2.4) - 0.055;
  return Math.round(Math.min(1, Math.max(0, c)) * 255);
};

/** Mixes two colors in linear light (no muddy midpoints): `t` = 0 gives `a`, 1 gives `b`. */
export function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [0, 1, 2].map((i) => fromLinear(toLinear(a[i]!) * (1 - t) + toLinear(b[i]!) * t)) as Rgb;
}

/** A color over an opaque background, as it is seen. */
export function flatten(color: { rgb: Rgb; alpha: number }, background: Rgb): Rgb {
  return color.alpha >= 1 ? color.rgb : mix(background, color.rgb, color.alpha);
}

/** Relative luminance (WCAG), 0 = black, 1 = white. */
export function luminance(rgb: Rgb): number {
  const [r, g, b] = rgb.map(toLinear) as Rgb;
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export interface ColormapTheme {
  background: string;
  foreground: string;
  yellow: string;
  orange: string;
  red: string;
}

export const DEFAULT_THEME: ColormapTheme = {
  background: '#1e1e1e',
  foreground: '#cccccc',
  yellow: '#cca700',
  orange: '#d18616',
  red: '#f14c4c',
};

export class Colormap {
  /** 256 CSS colors from least to most sensitive. */
  readonly steps: readonly string[];
  readonly stops: readonly { at: number; rgb: Rgb }[];

  constructor(theme: ColormapTheme) {
    const pick = (text: string, fallback: string, over: Rgb) => flatten(parseColor(text) ?? parseColor(fallback)!, over);
    const background = pick(theme.background, DEFAULT_THEME.background, [0, 0, 0]);
    const foreground = pick(theme.foreground, DEFAULT_THEME.foreground, background);
    this.stops = [
      // Far enough from the background that a measured, harmless cell is told from an empty one.
      { at: 0, rgb: mix(background, foreground, 0.14) },
      { at: 0.4, rgb: pick(theme.yellow, DEFAULT_THEME.yellow, background) },
      { at: 0.7, rgb: pick(theme.orange, DEFAULT_THEME.orange, background) },
      { at: 1, rgb: pick(theme.red, DEFAULT_THEME.red, background) },
    ];
    this.steps = Array.from({ length: 256 }, (_, i) => {
      const [r, g, b] = this.rgbAt(i / 255);
      return `rgb(${r}, ${g}, ${b})`;
    });
  }

  /** The color at position `t` ∈ [0, 1] (clamped). */
  color(t: number): string {
    const i = Math.round(Math.min(1, Math.max(0, Number.isNaN(t) ? 0 : t)) * 255);
    return this.steps[i]!;
  }

  rgbAt(t: number): Rgb {
    const stops = this.stops;
    const x = Math.min(1, Math.max(0, t));
    for (let i = 1; i < stops.length; i++) {
      const lo = stops[i - 1]!;
      const hi = stops[i]!;
      if (x <= hi.at) return mix(lo.rgb, hi.rgb, (x - lo.at) / (hi.at - lo.at));
    }
    return stops[stops.length - 1]!.rgb;
  }
}
