#!/usr/bin/env node
// `npm test`: unit tests (node's test runner), the integration suite in code-server (with the e2e screenshot), the
// packaged VSIX installed into code-server, and the same suite in desktop VS Code where one is installed; then one
// combined `N passed, N failed` line.
'use strict';
const { spawn, spawnSync } = require('child_process');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/** Runs a command, streaming its output through, and resolves with the output and exit status. */
function runStreaming(command, args) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
      process.stderr.write(chunk);
    });
    child.on('close', (status, signal) => resolve({ output, status: status ?? (signal ? 1 : 0) }));
  });
}

/** node --test's summary: `ℹ pass N` (spec reporter) or `# pass N` (TAP). */
function nodeTestCounts(output) {
  const count = (word) => {
    const matches = [...output.matchAll(new RegExp(`^[ℹ#] ${word} (\\d+)\\s*$`, 'gmu'))];
    return matches.length ? Number(matches[matches.length - 1][1]) : undefined;
  };
  const passed = count('pass');
  const failed = count('fail');
  return passed === undefined || failed === undefined ? undefined : { passed, failed };
}

/** The integration runners' last line: `N passed, N failed`. */
function suiteCounts(output) {
  const matches = [...output.matchAll(/^(\d+) passed, (\d+) failed\s*$/gm)];
  const last = matches[matches.length - 1];
  return last ? { passed: Number(last[1]), failed: Number(last[2]) } : undefined;
}

/** A step that is not a test (install, compile): counts nothing when it succeeds, one failure when it does not. */
function setupStepCounts(_output, status) {
  return { passed: 0, failed: status === 0 ? 0 : 1 };
}

/** A check without its own test counts: one test, passed when it exits 0. */
function exitStatusCounts(_output, status) {
  return status === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 };
}

function desktopVSCodeInstalled() {
  return Boolean(process.env.VSCODE_PATH) || spawnSync('sh', ['-c', 'command -v code'], { stdio: 'ignore' }).status === 0;
}

async function main() {
  const steps = [
    // The real VS Code the integration tests drive: installed once into ~/.cache/quantlens, a no-op afterwards.
    { name: 'code-server 4.96.4', command: 'bash', args: ['scripts/install-code-server.sh'], parse: setupStepCounts },
    { name: 'compile', command: npm, args: ['run', 'compile', '--silent'], parse: setupStepCounts },
    // `npm run test:unit` without its tsc (the compile step above ran it): given a folder, --test runs its *.test.js.
    { name: 'unit', command: 'node', args: ['--test', '--test-reporter=spec', 'out/test/unit/'], parse: nodeTestCounts },
    { name: 'integration (code-server)', command: npm, args: ['run', 'test:integration', '--silent'], parse: suiteCounts },
    // What a user gets: the linux-x64 VSIX of the bundles the integration step built, installed into code-server.
    { name: 'install (VSIX in code-server)', command: 'node', args: ['out/test/integration/installVsix.js', '--no-build'], parse: suiteCounts },
    // `npm start` in its CI mode: starts code-server and checks in Chromium that the inspector shows the sample.
    { name: 'npm start (smoke)', command: 'node', args: ['scripts/start.js', '--smoke'], parse: exitStatusCounts },
  ];
  if (desktopVSCodeInstalled()) {
    // Built by the integration step.
    steps.push({ name: 'integration (desktop VS Code)', command: 'node', args: ['out/test/integration/runElectron.js'], parse: suiteCounts });
  } else {
    console.log('[test] desktop VS Code not installed: the test-electron run is skipped (code-server runs the suite)');
  }
  const lines = [];
  const total = { passed: 0, failed: 0 };
  for (const step of steps) {
    const started = Date.now();
    console.log(`\n[test] ${step.name}: ${step.command} ${step.args.join(' ')}`);
    const { output, status } = await runStreaming(step.command, step.args);
    const counts = step.parse(output, status);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (!counts) {
      // It died before reporting (a compile error, a crash): that is a failure of its own.
      total.failed += 1;
      lines.push(`${step.name}: no test summary (exit ${status}), counted as 1 failure, ${seconds} s`);
      continue;
    }
    const extra = status !== 0 && counts.failed === 0 ? 1 : 0;
    total.passed += counts.passed;
    total.failed += counts.failed + extra;
    const outcome = counts.passed + counts.failed === 0 ? 'ok' : `${counts.passed} passed, ${counts.failed} failed`;
    lines.push(
      `${step.name}: ${outcome}` +
        (extra ? ` (and exit ${status}, counted as 1 failure)` : '') +
        `, ${seconds} s`,
    );
  }
  console.log('\n[test] summary');
  for (const line of lines) console.log(`  ${line}`);
  console.log(`${total.passed} passed, ${total.failed} failed`);
  return total.failed > 0 ? 1 : 0;
}

main().then((code) => process.exit(code));
