// The detail pane for the selected layer: its facts, statistics, weight histogram and quantization error per bit-width.
import { QUANT_BITS, type LayerRecord, type QuantBits } from '../../extension/protocol/records';
import { h, icon } from '../shared/dom';
import { formatCount, formatDb, formatNumber, formatPercent, formatShape } from '../shared/format';
import type { ThemeColors } from '../shared/theme';
import { HistogramChart, SqnrChart } from './charts';
import { hasFiniteWeights } from './tableModel';

export class DetailPane {
  readonly element: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly facts: HTMLElement;
  private readonly warnings: HTMLElement;
  private readonly stats: HTMLElement;
  private readonly sqnrTable: HTMLTableSectionElement;
  private readonly charts: HTMLElement;
  private readonly logToggle: HTMLInputElement;
  private readonly histogram: HistogramChart;
  private readonly sqnr: SqnrChart;
  private layer: LayerRecord | undefined;

  constructor(colors: ThemeColors, logScale: boolean, onLogScale: (on: boolean) => void) {
    this.heading = h('h2', { className: 'detail-name' });
    this.facts = h('div', { className: 'detail-facts' });
    this.warnings = h('div', { className: 'detail-warnings', attrs: { role: 'alert' } });
    this.stats = h('dl', { className: 'stats' });
    const histogramCanvas = h('canvas', { attrs: { role: 'img', 'aria-label': 'weight histogram' } });
    const sqnrCanvas = h('canvas', { attrs: { role: 'img', 'aria-label': 'SQNR versus bits' } });
    this.logToggle = h('input', { attrs: { type: 'checkbox', id: 'log-scale' } });
    this.logToggle.checked = logScale;
    this.logToggle.addEventListener('change', () => {
      onLogScale(this.logToggle.checked);
      if (this.layer) this.histogram.show(this.layer.stats.histogram, this.logToggle.checked);
    });
    this.sqnrTable = h('tbody');
    this.charts = h(
      'div',
      { className: 'detail-body' },
      this.facts,
      this.warnings,
      h('div', { className: 'section-head' }, h('h3', { text: 'Weight histogram' }), h('label', { className: 'toggle', attrs: { for: 'log-scale' } }, this.logToggle, 'log count')),
      h('div', { className: 'chart-box' }, histogramCanvas),
      h('h3', { text: 'Quantization error (symmetric, round-to-nearest)' }),
      h('div', { className: 'chart-box' }, sqnrCanvas),
      h(
        'table',
        { className: 'sqnr-table' },
        h('thead', {}, h('tr', {}, h('th', { text: 'bits' }), h('th', { text: 'per channel' }), h('th', { className: 'group-size-head', text: 'per group' }))),
        this.sqnrTable,
      ),
      h('h3', { text: 'Statistics' }),
      this.stats,
    );
    this.element = h('aside', { className: 'detail', attrs: { 'aria-label': 'Selected layer' } }, this.heading, this.charts);
    this.histogram = new HistogramChart(histogramCanvas, colors);
    this.sqnr = new SqnrChart(sqnrCanvas, colors);
    this.charts.hidden = true;
  }

  /** The pane shows nothing without a layer; the page hides it then. */
  show(layer: LayerRecord | undefined): void {
    // Called on every table refresh while layers stream in; redraw only when the layer changes.
    if (layer === this.layer) return;
    this.layer = layer;
    this.charts.hidden = !layer;
    this.heading.textContent = layer?.name ?? '';
    if (!layer) return;
    const s = layer.stats;
    this.facts.replaceChildren(
      h('span', { className: 'badge', text: layer.opType }),
      h('span', { className: 'chip', text: formatShape(layer.shape) }),
      h('span', { className: 'chip', text: layer.dtype }),
      h('span', { className: 'chip', text: `${formatCount(layer.params)} params` }),
      ...(layer.group.length ? [h('div', { className: 'muted group-path', text: layer.group.join(' › ') })] : []),
      ...(layer.weight !== layer.name ? [h('div', { className: 'muted' }, 'weight ', h('code', { text: layer.weight }))] : []),
    );
    this.warnings.replaceChildren(...s.warnings.map((warning) => h('div', { className: 'warning' }, icon('warning'), h('span', { text: warning }))));
    // Without a finite weight the record holds an empty tensor's numbers: show them as missing.
    const finite = hasFiniteWeights(layer);
    const number = (x: number) => formatNumber(finite ? x : null);
    const db = (x: number) => `${formatDb(finite ? x : null)} dB`;
    const kinds = ([[s.nan, 'NaN'], [s.posInf, '+Inf'], [s.negInf, '−Inf']] as const).filter(([n]) => n > 0);
    const entries: [string, string][] = [
      ['count', formatCount(s.count)],
      ['NaN / ±Inf', s.nonFinite === 0 ? '0' : `${formatCount(s.nonFinite)} (${kinds.map(([n, kind]) => `${formatCount(n)} ${kind}`).join(' · ')})`],
      ['min / max', `${number(s.min)} / ${number(s.max)}`],
      ['mean', number(s.mean)],
      ['std', number(s.std)],
      ['kurtosis', number(s.kurtosis)],
      ['absmax', number(s.absMax)],
      [`outliers (> ${formatNumber(s.outlierSigma)}σ)`, formatPercent(finite ? s.outlierShare : null)],
      ['output channels', String(s.channels)],
      ['channel absmax', `${number(s.channelAbsMax.min)} · ${number(s.channelAbsMax.median)} · ${number(s.channelAbsMax.max)} (min · median · max)`],
      ['channel spread', number(s.channelSpread)],
    ];
    this.stats.replaceChildren(...entries.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
    this.charts.querySelector('.group-size-head')!.textContent = `per group of ${s.quantError.groupSize}`;
    this.sqnrTable.replaceChildren(
      ...QUANT_BITS.map((b) =>
        h('tr', {}, h('td', { text: `W${b}` }), h('td', { className: 'num', text: db(s.quantError.perChannel[b]) }), h('td', { className: 'num', text: db(s.quantError.perGroup[b]) })),
      ),
    );
    this.histogram.show(s.histogram, this.logToggle.checked);
    const none = Object.fromEntries(QUANT_BITS.map((b) => [b, NaN])) as Record<QuantBits, number>;
    this.sqnr.show(finite ? s.quantError : { ...s.quantError, perChannel: none, perGroup: none });
  }

  recolor(colors: ThemeColors): void {
    this.histogram.recolor(colors);
    this.sqnr.recolor(colors);
  }
}
