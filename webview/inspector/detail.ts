// The detail pane for the selected layer: its facts, statistics, weight histogram and quantization error per bit-width.
import { QUANT_BITS, type LayerRecord } from '../../extension/protocol/records';
import { h } from '../shared/dom';
import { formatCount, formatDb, formatNumber, formatPercent, formatShape } from '../shared/format';
import type { ThemeColors } from '../shared/theme';
import { HistogramChart, SqnrChart } from './charts';

export class DetailPane {
  readonly element: HTMLElement;
  private readonly heading: HTMLElement;
  private readonly facts: HTMLElement;
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
    const entries: [string, string][] = [
      ['count', formatCount(s.count)],
      ['min / max', `${formatNumber(s.min)} / ${formatNumber(s.max)}`],
      ['mean', formatNumber(s.mean)],
      ['std', formatNumber(s.std)],
      ['kurtosis', formatNumber(s.kurtosis)],
      ['absmax', formatNumber(s.absMax)],
      [`outliers (> ${formatNumber(s.outlierSigma)}σ)`, formatPercent(s.outlierShare)],
      ['output channels', String(s.channels)],
      ['channel absmax', `${formatNumber(s.channelAbsMax.min)} · ${formatNumber(s.channelAbsMax.median)} · ${formatNumber(s.channelAbsMax.max)} (min · median · max)`],
      ['channel spread', formatNumber(s.channelSpread)],
    ];
    this.stats.replaceChildren(...entries.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
    this.charts.querySelector('.group-size-head')!.textContent = `per group of ${s.quantError.groupSize}`;
    this.sqnrTable.replaceChildren(
      ...QUANT_BITS.map((b) =>
        h('tr', {}, h('td', { text: `W${b}` }), h('td', { className: 'num', text: `${formatDb(s.quantError.perChannel[b])} dB` }), h('td', { className: 'num', text: `${formatDb(s.quantError.perGroup[b])} dB` })),
      ),
    );
    this.histogram.show(s.histogram, this.logToggle.checked);
    this.sqnr.show(s.quantError);
  }

  recolor(colors: ThemeColors): void {
    this.histogram.recolor(colors);
    this.sqnr.recolor(colors);
  }
}
