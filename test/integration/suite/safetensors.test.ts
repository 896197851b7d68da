// A safetensors checkpoint in the inspector: every tensor of rank ≥ 2 is a layer row.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { FIXTURES } from '../fixtures';
import { expectedCheckpointLayers, fixture, quantLensApi, VIEW_TYPE, waitForRender } from './helpers';

suite('Safetensors', () => {
  test('the checkpoint opens and its rank ≥ 2 tensors are the rows', async () => {
    const api = await quantLensApi();
    const file = fixture(FIXTURES.checkpoint);
    const expected = expectedCheckpointLayers(file.fsPath);
    assert.ok(expected.length >= 3, 'the fixture should hold several rank ≥ 2 tensors');
    await vscode.commands.executeCommand('vscode.openWith', file, VIEW_TYPE);
    const render = await waitForRender(api, file, 'the checkpoint table', (r) => r.totalRows === expected.length);
    assert.equal(render.totalRows, expected.length);
    assert.deepEqual([...render.firstNames].sort(), [...expected].sort());
    assert.equal(api.inspectorError(file.fsPath), undefined);
  });
});
