// `npm run test:electron`: the same integration suite in a desktop VS Code through @vscode/test-electron, where one
// is installed (VSCODE_PATH = its executable, or `code` on PATH). Nothing is downloaded. Without one: skipped, exit 0.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';
import { EXCHANGE, exchangePath, writeWorkspace, type SuiteResults } from './fixtures';
import { printResults, summaryLine } from './report';

const REPO = path.resolve(__dirname, '..', '..', '..');
const SAMPLE = path.join(REPO, 'resources', 'sample', 'dit-sample.onnx');
const SUITE = path.join(REPO, 'out', 'test', 'integration', 'suite', 'index.js');

/** The VS Code executable (Electron, not the `code` CLI script) from VSCODE_PATH or the `code` on PATH. */
function findDesktopVSCode(): string | undefined {
  if (process.env.VSCODE_PATH) return process.env.VSCODE_PATH;
  const lookup =
    process.platform === 'win32'
      ? spawnSync('where', ['code'], { encoding: 'utf8' })
      : spawnSync('sh', ['-c', 'command -v code'], { encoding: 'utf8' });
  const cli = lookup.status === 0 ? lookup.stdout.split(/\r?\n/)[0]?.trim() : undefined;
  if (!cli) return undefined;
  // The CLI script lives in <install>/bin (Linux, Windows) or <App>/Contents/Resources/app/bin (macOS).
  const binDir = path.dirname(fs.realpathSync(cli));
  const candidates =
    process.platform === 'darwin'
      ? [path.resolve(binDir, '..', '..', '..', 'MacOS', 'Electron')]
      : process.platform === 'win32'
        ? [path.resolve(binDir, '..', 'Code.exe')]
        : [path.resolve(binDir, '..', 'code')];
  return candidates.find((candidate) => fs.existsSync(candidate));
}

async function main(): Promise<number> {
  const vscodeExecutablePath = findDesktopVSCode();
  if (!vscodeExecutablePath) {
    console.log('Desktop VS Code is not installed here (set VSCODE_PATH to its executable or put `code` on PATH):');
    console.log('test:electron skipped, no tests run. `npm run test:integration` runs the same suite in code-server.');
    return 0;
  }
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-electron-'));
  const workspace = path.join(scratch, 'workspace');
  fs.mkdirSync(workspace);
  writeWorkspace(workspace, SAMPLE, { screenshot: false });
  try {
    await runTests({
      vscodeExecutablePath,
      extensionDevelopmentPath: REPO,
      extensionTestsPath: SUITE,
      launchArgs: [
        workspace,
        '--disable-extensions',
        '--disable-workspace-trust',
        '--skip-welcome',
        '--skip-release-notes',
        '--user-data-dir',
        path.join(scratch, 'user-data'),
      ],
    }).catch((err: Error) => console.log(`VS Code exited with a failure: ${err.message}`));
    const resultsFile = exchangePath(workspace, EXCHANGE.results);
    if (!fs.existsSync(resultsFile)) {
      console.log(`the suite wrote no results (${vscodeExecutablePath})`);
      console.log(summaryLine({ passed: 0, failed: 1 }));
      return 1;
    }
    const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as SuiteResults;
    console.log(`VS Code ${results.vscodeVersion} (desktop, ${vscodeExecutablePath})`);
    const counts = printResults(results.tests);
    console.log(summaryLine(counts));
    return counts.failed > 0 || counts.passed === 0 ? 1 : 0;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
