// Entry point VS Code calls inside the extension host (extensionTestsPath): runs the *.test.js files next to this one
// with mocha and writes every test's outcome to the workspace, where the harness (or test-electron runner) reads it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';
import * as vscode from 'vscode';
import { EXCHANGE, exchangePath, writeFileAtomic, type SuiteResults, type TestResult } from '../fixtures';
import { workspaceRoot } from './helpers';

export async function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'tdd', timeout: 120_000, color: false, reporter: 'spec' });
  for (const file of fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort()) {
    mocha.addFile(path.join(__dirname, file));
  }
  const results: TestResult[] = [];
  await new Promise<void>((resolve) => {
    const runner = mocha.run(() => resolve());
    runner.on('pass', (test) => results.push({ title: test.fullTitle(), state: 'passed', durationMs: test.duration }));
    // Also fires for failing hooks, which then stand for the tests they kept from running.
    runner.on('fail', (test, err: Error) =>
      results.push({ title: test.fullTitle(), state: 'failed', durationMs: test.duration, error: describe(err) }),
    );
    runner.on('pending', (test) => results.push({ title: test.fullTitle(), state: 'skipped' }));
  });
  const report: SuiteResults = { vscodeVersion: vscode.version, tests: results };
  writeFileAtomic(exchangePath(workspaceRoot(), EXCHANGE.results), JSON.stringify(report, null, 2));
  // test-electron reports a rejected run() as a failed exit code.
  const failed = results.filter((r) => r.state === 'failed').length;
  if (failed > 0) throw new Error(`${failed} integration test(s) failed`);
}

function describe(err: Error): string {
  const frames = (err.stack ?? '')
    .split('\n')
    .filter((line) => line.trim().startsWith('at '))
    .slice(0, 3);
  return [err.message, ...frames].join('\n');
}
