// The README's screenshots are the tests' own: each image it shows is in docs/screenshots/, is one that
// `npm run screenshots` copies, and a test under test/integration/ writes a file of that name.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const REPO = path.resolve(__dirname, '..', '..', '..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { SCREENSHOTS } = require(path.join(REPO, 'scripts', 'screenshots.js')) as { SCREENSHOTS: Record<string, string> };

const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
const shown = [...readme.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)].map((match) => match[1]!);

function integrationSources(): string {
  const dir = path.join(REPO, 'test', 'integration');
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => fs.readFileSync(path.join(dir, name), 'utf8'))
    .join('\n');
}

test('the README shows a screenshot of each panel and the walkthrough', () => {
  assert.deepEqual(shown.map((image) => path.basename(image)).sort(), Object.keys(SCREENSHOTS).sort());
});

test('every image the README shows is a tracked file in docs/screenshots/, copied from the tests', () => {
  for (const image of shown) {
    assert.equal(path.dirname(image), 'docs/screenshots', `${image} is not under docs/screenshots/`);
    const file = path.join(REPO, image);
    assert.ok(fs.existsSync(file), `${image} is missing: run npm test, then npm run screenshots`);
    const png = fs.readFileSync(file);
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG', `${image} is not a PNG`);
    // A real screenshot at the tests' viewport, not a placeholder: IHDR width and height.
    assert.ok(png.readUInt32BE(16) >= 600 && png.readUInt32BE(20) >= 400, `${image} is ${png.readUInt32BE(16)}×${png.readUInt32BE(20)}`);
  }
});

test('a test under test/integration/ writes each screenshot', () => {
  const sources = integrationSources();
  for (const name of Object.keys(SCREENSHOTS)) {
    assert.ok(sources.includes(`'${name}'`), `no integration test source writes '${name}'`);
  }
});
