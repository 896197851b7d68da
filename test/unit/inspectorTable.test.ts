// The layer table's layout data: where long names are shortened, the SQNR caption's columns, measured widths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COLUMNS, columnGroups, gridTemplate, minTableWidth, splitName } from '../../webview/inspector/tableModel';

test('long names keep their start and their last short parts; the pieces always join back to the name', () => {
  const cases: [string, string, string][] = [
    ['blocks.12.adaLN_modulation.1.weight', 'blocks.12.adaLN_modulation', '.1.weight'],
    ['transformer_blocks.27.attn.to_out.0.weight', 'transformer_blocks.27.attn.to_out', '.0.weight'],
    ['model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight',
      'model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2', '.to_k.weight'],
    ['blocks.0.adaLN_modulation.1', 'blocks.0.adaLN_modulation', '.1'],
    // Nothing to keep: no dot, a last part longer than the limit, a name that would be all tail.
    ['conv1', 'conv1', ''],
    ['encoder.a_very_long_last_component_name', 'encoder.a_very_long_last_component_name', ''],
    ['.weight', '.weight', ''],
  ];
  for (const [name, head, tail] of cases) {
    assert.deepEqual(splitName(name), { head, tail }, name);
    assert.equal(head + tail, name);
  }
});

test('the SQNR columns share one caption, in one run at the end of the table', () => {
  const groups = columnGroups(COLUMNS);
  assert.equal(groups.length, 1);
  const [sqnr] = groups;
  assert.deepEqual(COLUMNS.slice(sqnr!.start, sqnr!.end).map((c) => c.key), ['w8', 'w4', 'w3', 'w4g']);
  assert.equal(sqnr!.end, COLUMNS.length);
  assert.match(sqnr!.label, /SQNR/);
  // Runs break where the caption changes or a column has none.
  const fake = [{ group: 'a' }, { group: 'a' }, {}, { group: 'a' }, { group: 'b' }] as unknown as typeof COLUMNS;
  assert.deepEqual(columnGroups(fake), [
    { label: 'a', start: 0, end: 2 },
    { label: 'a', start: 3, end: 4 },
    { label: 'b', start: 4, end: 5 },
  ]);
});

test('measured minimum widths replace the columns\' own in the grid and in the table width', () => {
  const measured = COLUMNS.map((_, i) => 100 + i);
  const tracks = gridTemplate(COLUMNS, measured).split(' minmax').length;
  assert.equal(tracks, COLUMNS.length);
  assert.match(gridTemplate(COLUMNS, measured), /^minmax\(100px, 3fr\) minmax\(101px, /);
  assert.equal(minTableWidth(COLUMNS, measured), measured.reduce((a, b) => a + b, 0));
  assert.equal(minTableWidth(COLUMNS), COLUMNS.reduce((a, c) => a + c.minWidth, 0));
  for (const column of COLUMNS.filter((c) => c.numeric)) assert.ok(column.widest, `${column.key} has no widest sample`);
});
