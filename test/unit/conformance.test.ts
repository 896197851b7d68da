// ONNX's backend conformance corpus (Debian's libonnx-testdata): every model either opens or is refused with a
// ModelError — never another exception.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { ModelError } from '../../extension/engine/errors';
import { openModel } from '../../extension/engine/model/open';

const CORPUS = '/usr/share/libonnx-testdata/data';

function findModels(folder: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
    const full = path.join(folder, entry.name);
    if (entry.isDirectory()) found.push(...findModels(full));
    else if (entry.name === 'model.onnx') found.push(full);
  }
  return found;
}

it('every model of the ONNX conformance corpus opens or is refused with a ModelError', {
  skip: !fs.existsSync(CORPUS) && `${CORPUS} is missing (apt-get install libonnx-testdata)`,
}, async () => {
  const models = findModels(CORPUS).sort();
  assert.ok(models.length > 500, `expected the full corpus, found ${models.length} models`);
  let opened = 0;
  let layers = 0;
  const refused = new Map<string, string[]>();
  for (const file of models) {
    try {
      const model = await openModel(file);
      opened++;
      layers += model.layers.length;
      await model.close();
    } catch (err) {
      if (!(err instanceof ModelError)) {
        throw new Error(`${file}: not a ModelError: ${err instanceof Error ? err.stack : String(err)}`);
      }
      // Group by the kind of problem: quoted names and numbers vary between files.
      const reason = err.problem.replace(/"[^"]*"/g, '"…"').replace(/\d+/g, 'N');
      refused.set(reason, [...(refused.get(reason) ?? []), path.relative(CORPUS, file)]);
    }
  }
  console.log(`ONNX conformance corpus: ${models.length} models, ${opened} opened (${layers} quantizable layers), ${models.length - opened} refused`);
  for (const [reason, files] of refused) console.log(`  refused ×${files.length}: ${reason} (e.g. ${files[0]})`);
  assert.ok(opened / models.length >= 0.95, `only ${opened} of ${models.length} opened`);
});
