#!/usr/bin/env node
// `npm run screenshots`: copies the panels' screenshots that the last `npm test` took from .test-output/screenshots/
// into docs/screenshots/, which the README shows. The tests take them on every run; committing them is a deliberate
// step (run after a UI change), so a test run never dirties the working tree. A unit test checks that every image
// the README shows is one of these and that a test writes it.
'use strict';
const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
const FROM = path.join(REPO, '.test-output', 'screenshots');
const TO = path.join(REPO, 'docs', 'screenshots');

/** The README's screenshots and the test that takes each one. */
const SCREENSHOTS = {
  'inspector.png': 'npm run test:integration (inspector on the sample, a layer selected)',
  'analysis.png': 'npm run test:integration (sensitivity panel after a per-timestep run)',
  'search.png': 'npm run test:integration (search panel after a 5-bit search)',
  'walkthrough.png': 'npm run test:install (the walkthrough clicked through in the installed VSIX)',
};

function main() {
  const missing = Object.keys(SCREENSHOTS).filter((name) => !fs.existsSync(path.join(FROM, name)));
  if (missing.length) {
    for (const name of missing) console.error(`screenshots: ${path.join(path.relative(REPO, FROM), name)} is missing: run ${SCREENSHOTS[name].split(' (')[0]}`);
    process.exit(1);
  }
  fs.mkdirSync(TO, { recursive: true });
  for (const [name, source] of Object.entries(SCREENSHOTS)) {
    const from = path.join(FROM, name);
    fs.copyFileSync(from, path.join(TO, name));
    const taken = fs.statSync(from).mtime.toISOString().slice(0, 16).replace('T', ' ');
    console.log(`docs/screenshots/${name}  ← ${source}, taken ${taken}`);
  }
}

if (require.main === module) main();
module.exports = { SCREENSHOTS };
