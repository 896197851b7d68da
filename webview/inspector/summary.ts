// The summary header: what the file is and what it holds.
import type { ModelSummary, ValueInfo } from '../../extension/protocol/records';
import { h, icon } from '../shared/dom';
import { formatBytes, formatCount, formatDims } from '../shared/format';

/** Op chips shown before "+N more"; the rest are in the chip row's tooltip. */
const MAX_OP_CHIPS = 24;

export function renderSummary(summary: ModelSummary): HTMLElement {
  const title = h(
    'div',
    { className: 'summary-title' },
    icon('file-binary'),
    h('h1', { text: summary.fileName, title: summary.path }),
    h('span', { className: 'badge', text: summary.format === 'onnx' ? 'ONNX' : 'safetensors' }),
    h('span', { className: 'muted', text: formatBytes(summary.fileBytes) }),
  );

  const facts: [string, string][] = [];
  if (summary.irVersion !== undefined) facts.push(['IR', String(summary.irVersion)]);
  if (summary.opsets?.length) {
    facts.push(['opsets', summary.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).join(', ')]);
  }
  if (summary.producer) facts.push(['producer', summary.producer]);
  facts.push(
    ['parameters', `${formatCount(summary.parameterCount)} (${formatBytes(summary.parameterBytes)})`],
    ['layers', `${summary.layerCount} holding ${formatCount(summary.layerParameterCount)} params`],
    ['tensors', String(summary.tensorCount)],
  );
  if (summary.format === 'onnx') facts.push(['nodes', String(summary.nodeCount)]);
  if (summary.externalDataFiles.length) facts.push(['external data', summary.externalDataFiles.join(', ')]);

  const sections: HTMLElement[] = [
    title,
    h('div', { className: 'facts' }, ...facts.map(([k, v]) => h('span', { className: 'fact' }, h('span', { className: 'muted', text: `${k} ` }), v))),
  ];
  if (summary.inputs.length || summary.outputs.length) {
    sections.push(
      h('div', { className: 'io' }, ioList('inputs', 'arrow-right', summary.inputs), ioList('outputs', 'arrow-left', summary.outputs)),
    );
  }
  const ops = Object.entries(summary.opHistogram).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (ops.length) {
    const shown = ops.slice(0, MAX_OP_CHIPS);
    const chips = h(
      'div',
      { className: 'chips', attrs: { 'aria-label': 'operator histogram' } },
      ...shown.map(([op, n]) => h('span', { className: 'chip', title: `${n} ${op} nodes` }, op, h('span', { className: 'chip-count', text: String(n) }))),
    );
    if (ops.length > shown.length) {
      const rest = ops.slice(shown.length);
      chips.append(h('span', { className: 'chip muted', text: `+${rest.length} more`, title: rest.map(([op, n]) => `${op} ${n}`).join('\n') }));
    }
    sections.push(chips);
  }
  for (const warning of summary.warnings) {
    sections.push(h('div', { className: 'warning' }, icon('warning'), h('span', { text: warning })));
  }
  return h('header', { className: 'summary' }, ...sections);
}

function ioList(label: string, glyph: string, values: ValueInfo[]): HTMLElement {
  return h(
    'div',
    { className: 'io-list' },
    h('span', { className: 'muted', text: `${label}:` }),
    ...(values.length === 0
      ? [h('span', { className: 'muted', text: 'none' })]
      : values.map((v) =>
          h('span', { className: 'io-item', title: `${v.name}: ${v.dtype} ${formatDims(v.shape)}` }, icon(glyph), h('code', { text: v.name }), ` ${v.dtype} ${formatDims(v.shape)}`),
        )),
  );
}
