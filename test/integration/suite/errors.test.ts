// Damaged files: the inspector shows a message naming the file, and the extension host carries on.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { FIXTURES } from '../fixtures';
import { expectedOnnxLayers, fixture, quantLensApi, VIEW_TYPE, waitFor, waitForRender } from './helpers';

suite('Bad files', () => {
  for (const [kind, name] of [
    ['random bytes', FIXTURES.corrupt],
    ['a truncated model', FIXTURES.truncated],
  ] as const) {
    test(`${kind} (${name}) show an error that names the file`, async () => {
      const api = await quantLensApi();
      const file = fixture(name);
      await vscode.commands.executeCommand('vscode.openWith', file, VIEW_TYPE);
      const message = await waitFor(
        `the error for ${name}`,
        () => api.inspectorError(file.fsPath),
        () => JSON.stringify(api.inspectorRendered(file.fsPath) ?? 'no render'),
      );
      assert.ok(message.includes(path.basename(file.fsPath)), `message does not name the file: ${message}`);
      assert.equal(api.inspectorRendered(file.fsPath)?.totalRows ?? 0, 0, 'a damaged file rendered rows');
    });
  }

  test('after the bad files the extension still inspects a good model', async () => {
    const api = await quantLensApi();
    const sample = fixture(FIXTURES.sampleAfterErrors);
    assert.equal(api.inspectorRendered(sample.fsPath), undefined, 'this copy was rendered before');
    await vscode.commands.executeCommand('quantlens.inspectModel', sample);
    const expected = expectedOnnxLayers(sample.fsPath).length;
    // Rows stream in: wait for the last one rather than the first render.
    const render = await waitForRender(api, sample, 'the sample after the bad files', (r) => r.totalRows === expected);
    assert.equal(render.totalRows, expected);
    assert.notEqual(api.enginePid(), undefined);
  });
});
