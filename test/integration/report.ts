// One line per test and the final `N passed, N failed` line, the same for every runner of the suite.
import type { TestResult } from './fixtures';

export function printResults(tests: readonly TestResult[]): { passed: number; failed: number } {
  for (const test of tests) {
    const mark = test.state === 'passed' ? 'ok  ' : test.state === 'skipped' ? 'skip' : 'FAIL';
    const time = test.durationMs !== undefined ? ` (${test.durationMs} ms)` : '';
    console.log(`${mark} ${test.title}${time}`);
    if (test.error) console.log(indent(test.error));
  }
  const passed = tests.filter((t) => t.state === 'passed').length;
  const failed = tests.filter((t) => t.state === 'failed').length;
  return { passed, failed };
}

export function summaryLine(counts: { passed: number; failed: number }): string {
  return `${counts.passed} passed, ${counts.failed} failed`;
}

export function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `      ${line}`)
    .join('\n');
}
