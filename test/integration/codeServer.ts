// Runs a real VS Code (code-server 4.96.4, see RECIPES.md) with an extension under development, and drives it from a
// headless Chromium through playwright-core. Shared by the integration harness and `npm start`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Frame, Page } from 'playwright-core';

export const CODE_SERVER_VERSION = '4.96.4';

/** Where scripts/install-code-server.sh puts code-server. */
export function codeServerInstallDir(): string {
  const cacheRoot = process.env.QUANTLENS_CACHE || path.join(os.homedir(), '.cache', 'quantlens');
  return path.join(cacheRoot, `code-server-${CODE_SERVER_VERSION}`);
}

/** The code-server binary: $CODE_SERVER_PATH, else the installer's cache folder. Throws with the fix when absent. */
export function findCodeServer(): string {
  const fromEnv = process.env.CODE_SERVER_PATH;
  if (fromEnv) return fromEnv;
  const bin = path.join(codeServerInstallDir(), 'node_modules', '.bin', 'code-server');
  if (!fs.existsSync(path.join(codeServerInstallDir(), '.quantlens-install-complete')) || !fs.existsSync(bin)) {
    throw new Error(`code-server ${CODE_SERVER_VERSION} is not installed; run scripts/install-code-server.sh`);
  }
  return bin;
}

/** Debian's chromium (or $CHROMIUM_PATH): Playwright's own browser download cannot work here. */
export function findChromium(): string {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) return fromEnv;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  }
  throw new Error('Chromium not found: install it (apt-get install -y chromium) or set CHROMIUM_PATH');
}

export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** User settings for a quiet, repeatable window: no welcome page, telemetry, trust prompt or restored editors. */
export const QUIET_USER_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'telemetry.telemetryLevel': 'off',
  'security.workspace.trust.enabled': false,
  'window.restoreWindows': 'none',
  'workbench.editor.restoreViewState': false,
  'files.hotExit': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'git.enabled': false,
  'git.openRepositoryInParentFolders': 'never',
};

export interface CodeServerOptions {
  /** Folder the window opens. */
  workspace: string;
  /** Fixed port; a free one when absent. */
  port?: number;
  /** Extra user settings merged over QUIET_USER_SETTINGS. */
  settings?: Record<string, unknown>;
  /** Extensions folder (e.g. one a VSIX was installed into); a fresh empty one in the state folder when absent. */
  extensionsDir?: string;
  /** Workspace trust on, the folder untrusted and no prompt: the window opens in Restricted Mode. */
  restricted?: boolean;
}

export interface CodeServer {
  port: number;
  pid: number;
  /** Temp folder holding user-data-dir, extensions-dir and code-server.log. */
  stateDir: string;
  /** code-server's own config file (kept out of ~/.config). */
  configFile: string;
  logFile: string;
  /** The server's and its children's log folder (extension host output included). */
  userDataDir: string;
  /** Stops the server and every process it started (its process group); idempotent. */
  stop(): Promise<void>;
  /** Resolves when the server process exits, whatever the reason. */
  exited: Promise<number | null>;
}

const liveGroups = new Set<number>();

// Last resort: the harness dying (error, Ctrl+C) must not leave a server and its extension host behind.
process.on('exit', () => {
  for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL');
});

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startCodeServer(options: CodeServerOptions): Promise<CodeServer> {
  const bin = findCodeServer();
  const port = options.port ?? (await findFreePort());
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantlens-code-server-'));
  const userDataDir = path.join(stateDir, 'user-data');
  const extensionsDir = options.extensionsDir ?? path.join(stateDir, 'extensions');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  const trust = options.restricted
    ? { 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'never', 'security.workspace.trust.untrustedFiles': 'open' }
    : {};
  fs.writeFileSync(
    path.join(userDataDir, 'User', 'settings.json'),
    JSON.stringify({ ...QUIET_USER_SETTINGS, ...trust, ...options.settings }, null, 2),
  );
  // Its own config file, so code-server does not create one under ~/.config.
  const configFile = path.join(stateDir, 'config.yaml');
  fs.writeFileSync(configFile, 'auth: none\n');
  const logFile = path.join(stateDir, 'code-server.log');
  const logFd = fs.openSync(logFile, 'a');
  const args = [
    '--config', configFile,
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--user-data-dir', userDataDir,
    '--extensions-dir', extensionsDir,
    '--disable-telemetry',
    '--disable-update-check',
    ...(options.restricted ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override',
    options.workspace,
  ];
  // Its own process group, so stop() reaches the extension host and whatever the extension spawned.
  const child: ChildProcess = spawn(bin, args, { detached: true, stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${bin}`);
  liveGroups.add(pid);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    killGroup(pid, 'SIGTERM');
    for (let i = 0; i < 50 && groupAlive(pid); i++) await sleep(100);
    if (groupAlive(pid)) killGroup(pid, 'SIGKILL');
    liveGroups.delete(pid);
  };
  const server: CodeServer = { port, pid, stateDir, configFile, logFile, userDataDir, stop, exited };
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000, exited);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- code-server log ---\n${tailOf(logFile, 4000)}`);
  }
  return server;
}

/** Polls until the URL answers with a status below 500; fails early if `abort` settles first. */
export async function waitForHttp(url: string, timeoutMs: number, abort?: Promise<unknown>): Promise<void> {
  let aborted = false;
  void abort?.then(() => (aborted = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (aborted) throw new Error(`process serving ${url} exited before answering`);
    const status = await new Promise<number>((resolve) => {
      const req = http.get(url, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
      req.setTimeout(2000, () => req.destroy());
    });
    if (status > 0 && status < 500) return;
    await sleep(250);
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000} s`);
}

export interface WorkbenchPayload {
  extensionDevelopmentPath: string;
  /** The suite's index.js: VS Code calls its run() in the extension host. */
  extensionTestsPath?: string;
}

/** The workbench URL for a folder, with the extension-development payload (RECIPES.md). */
export function workbenchUrl(port: number, workspace: string, payload: WorkbenchPayload): string {
  const remote = (p: string) => `vscode-remote://127.0.0.1:${port}${encodeURI(path.resolve(p))}`;
  const entries: [string, string][] = [['extensionDevelopmentPath', remote(payload.extensionDevelopmentPath)]];
  if (payload.extensionTestsPath) entries.push(['extensionTestsPath', remote(payload.extensionTestsPath)]);
  return (
    `http://127.0.0.1:${port}/?folder=${encodeURIComponent(path.resolve(workspace))}` +
    `&payload=${encodeURIComponent(JSON.stringify(entries))}`
  );
}

/** How many extension hosts code-server has launched: one per browser window that connected (or reloaded). */
export function extensionHostLaunches(server: CodeServer): number {
  return fs.readFileSync(server.logFile, 'utf8').split('Launched Extension Host Process').length - 1;
}

/**
 * Opens a file in the browser window that was active last, through code-server's CLI and its session socket. Unlike
 * the payload's `openFile`, which the workbench resolves before a development extension's custom editors are
 * registered (the file then opens as text), this runs once the window is up, so the file gets its default editor.
 */
export function openInWindow(server: CodeServer, file: string): void {
  const args = ['--config', server.configFile, '--user-data-dir', server.userDataDir, '--reuse-window', file];
  const result = spawnSync(findCodeServer(), args, {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (result.status !== 0) throw new Error(`code-server could not open ${file}: ${result.stderr || result.error}`);
}

/** openInWindow, retried for up to 30 s while the browser window has not joined the session yet. */
export async function openWhenJoined(server: CodeServer, file: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      openInWindow(server, file);
      return;
    } catch (err) {
      if (attempt >= 60) throw err;
      await sleep(500);
    }
  }
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: findChromium(), headless: true, args: CHROMIUM_ARGS });
}

/**
 * The webview frame (webviews nest: iframe.webview → #active-frame) whose table has a row containing `text`, and how
 * many rows its DOM holds; undefined if none appears within the timeout.
 */
export async function findWebviewFrameWithRow(
  page: Page,
  text: string,
  timeoutMs: number,
): Promise<{ frame: Frame; rows: number } | undefined> {
  const deadline = Date.now() + timeoutMs;
  do {
    for (const frame of page.frames()) {
      if (frame === page.mainFrame()) continue;
      // A frame can navigate or go away between listing and evaluating: that is just "not this one".
      const found = await frame.evaluate(countRowsWith, text).catch(() => undefined);
      if (found?.hasText) return { frame, rows: found.rows };
    }
    await sleep(250);
  } while (Date.now() < deadline);
  return undefined;
}

// Runs inside a frame of the page.
function countRowsWith(text: string): { rows: number; hasText: boolean } {
  const rows = Array.from(document.querySelectorAll('tr, [role="row"]'));
  return { rows: rows.length, hasText: rows.some((row) => (row.textContent ?? '').includes(text)) };
}

export function tailOf(file: string, chars: number): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.length > chars ? `…${text.slice(-chars)}` : text;
  } catch {
    return `(no ${file})`;
  }
}

/** Every *.log under a folder (the server's exthost and remote agent logs live in user-data/logs). */
export function findLogs(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.log')) found.push(full);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return found;
}
