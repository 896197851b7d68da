#!/usr/bin/env node
// `npm run package`: a production webpack build, then one VSIX per platform onnxruntime-node ships binaries for,
// each carrying only its own platform's binaries, written to dist-vsix/. Prints every VSIX's size and checks that
// it holds nothing outside what .vscodeignore lets in. The README's relative links (docs/*.md) stay relative: the
// docs travel in the VSIX, and no repository URL is published to rewrite them against.
//   --target T     only this target (repeatable), e.g. --target linux-x64
//   --no-build     reuse the bundles in dist/
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
const OUT_DIR = path.join(REPO, 'dist-vsix');
const BINARIES = 'node_modules/onnxruntime-node/bin/napi-v6';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

/** vsce target → onnxruntime-node's folder (process.platform/process.arch, which its binding.js loads from). */
const TARGETS = {
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'darwin-arm64': 'darwin/arm64',
  'win32-x64': 'win32/x64',
  'win32-arm64': 'win32/arm64',
};

/**
 * The files of one platform's binary folder the VSIX needs. macOS ships libonnxruntime.1.30.0.dylib and an identical
 * libonnxruntime.1.dylib; the binding links @rpath/libonnxruntime.1.dylib, so the versioned copy (44 MB) stays out.
 */
function platformBinaries(folder) {
  const dir = path.join(REPO, BINARIES, folder);
  if (!fs.existsSync(dir)) throw new Error(`${path.relative(REPO, dir)} is missing: reinstall onnxruntime-node`);
  return fs
    .readdirSync(dir)
    .filter((name) => !/^libonnxruntime\.\d+\.\d+\.\d+\.dylib$/.test(name))
    .map((name) => `${BINARIES}/${folder}/${name}`);
}

function run(command, args, what) {
  console.log(`[package] ${what}`);
  const result = spawnSync(command, args, { cwd: REPO, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${what} failed (exit ${result.status ?? result.signal})`);
}

/** Entry names of a zip file, read from its central directory (a VSIX is a zip). */
function zipEntries(file) {
  const data = fs.readFileSync(file);
  const eocd = data.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error(`${file}: not a zip file`);
  const count = data.readUInt16LE(eocd + 10);
  let at = data.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    const nameLength = data.readUInt16LE(at + 28);
    const extraLength = data.readUInt16LE(at + 30);
    const commentLength = data.readUInt16LE(at + 32);
    entries.push({ name: data.toString('utf8', at + 46, at + 46 + nameLength), size: data.readUInt32LE(at + 24) });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** What a VSIX may hold under extension/ besides its target's `binaries`: everything else is a packaging mistake. */
function unexpectedEntries(entries, binaries) {
  const allowed = [
    /^extension\/(package\.json|readme\.md|changelog\.md|LICENSE\.txt)$/i,
    /^extension\/dist\/[^/]+\.js$/,
    /^extension\/dist\/webview\/[^/]+\.js(\.LICENSE\.txt)?$/,
    /^extension\/webview\/[^/]+\/[^/]+\.css$/,
    /^extension\/resources\//,
    /^extension\/docs\/[^/]+\.md$/,
    /^extension\/docs\/screenshots\/[^/]+\.png$/,
    /^extension\/node_modules\/@vscode\/codicons\/(dist\/codicon\.(css|ttf)|LICENSE)$/,
    /^extension\/node_modules\/onnxruntime-node\/(package\.json|dist\/[^/]+\.js)$/,
    /^extension\/node_modules\/onnxruntime-common\/(package\.json|dist\/cjs\/[^/]+\.js|dist\/cjs\/package\.json)$/,
  ];
  return entries
    .map((e) => e.name)
    .filter((name) => name.startsWith('extension/'))
    .filter((name) => !binaries.includes(name) && !allowed.some((pattern) => pattern.test(name)));
}

function packageTarget(target, version) {
  const binaries = platformBinaries(TARGETS[target]);
  const base = fs.readFileSync(path.join(REPO, '.vscodeignore'), 'utf8');
  const ignoreFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-vsce-')), '.vscodeignore');
  fs.writeFileSync(ignoreFile, `${base}\n${binaries.map((f) => `!${f}`).join('\n')}\n`);
  const out = path.join(OUT_DIR, `quantlens-${version}-${target}.vsix`);
  fs.rmSync(out, { force: true });
  try {
    run(
      npx,
      ['vsce', 'package', '--target', target, '--ignoreFile', ignoreFile, '--out', out, '--allow-missing-repository', '--no-rewrite-relative-links'],
      `vsce package --target ${target}`,
    );
  } finally {
    fs.rmSync(path.dirname(ignoreFile), { recursive: true, force: true });
  }
  const entries = zipEntries(out);
  const packedBinaries = binaries.map((f) => `extension/${f}`);
  const unexpected = unexpectedEntries(entries, packedBinaries);
  if (unexpected.length) throw new Error(`${path.relative(REPO, out)} holds files it should not:\n  ${unexpected.join('\n  ')}`);
  const missing = ['extension/dist/extension.js', 'extension/dist/engine.js', ...packedBinaries].filter(
    (name) => !entries.some((e) => e.name === name),
  );
  if (missing.length) throw new Error(`${path.relative(REPO, out)} lacks ${missing.join(', ')}`);
  return { target, file: out, bytes: fs.statSync(out).size, files: entries.filter((e) => e.name.startsWith('extension/')).length };
}

function main() {
  const args = process.argv.slice(2);
  const targets = args.flatMap((arg, i) => (args[i - 1] === '--target' ? [arg] : []));
  for (const target of targets) {
    if (!TARGETS[target]) throw new Error(`unknown target ${target}; known: ${Object.keys(TARGETS).join(', ')}`);
  }
  if (!args.includes('--no-build')) run(npx, ['webpack', '--mode', 'production', '--stats', 'errors-warnings'], 'webpack --mode production');
  const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const built = (targets.length ? targets : Object.keys(TARGETS)).map((target) => packageTarget(target, version));
  console.log('\n[package] VSIX files:');
  for (const { file, bytes, files } of built) {
    console.log(`  ${path.relative(REPO, file)}  ${(bytes / 1024 / 1024).toFixed(1)} MB, ${files} files`);
  }
}

try {
  main();
} catch (err) {
  console.error(`[package] ${err.message}`);
  process.exit(1);
}
