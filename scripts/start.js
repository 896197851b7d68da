#!/usr/bin/env node
// `npm start`: builds what is missing or stale, then opens the sample model in a real VS Code with QuantLens loaded:
// desktop VS Code when `code` is on PATH, else code-server in the browser (the URL is printed; Ctrl+C stops it).
//   --code-server   use code-server even when desktop VS Code is installed
//   --port N        code-server port (default $QUANTLENS_PORT, else 8080 when free, else any free port)
//   --no-open       do not open the URL in the default browser
//   --smoke         (or QUANTLENS_START_SMOKE=1) start code-server, check in headless Chromium that the inspector
//                   shows the sample (screenshot in .test-output/screenshots/start.png), stop, exit 0 on success
'use strict';
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const REPO = path.resolve(__dirname, '..');
const SAMPLE = path.join(REPO, 'resources', 'sample', 'dit-sample.onnx');
const SAMPLE_LAYER = 'blocks.0.attn.qkv';
const BUILD_STAMP = 'dist/.start-build-stamp';
const args = process.argv.slice(2);
const smoke = args.includes('--smoke') || process.env.QUANTLENS_START_SMOKE === '1';
const portArg = args.includes('--port') ? Number(args[args.indexOf('--port') + 1]) : undefined;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';

function run(command, commandArgs, what) {
  console.log(`[start] ${what}`);
  const result = spawnSync(command, commandArgs, { cwd: REPO, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`[start] ${what} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

function onPath(name) {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

function newestMtime(entries) {
  let newest = 0;
  const visit = (p) => {
    if (!fs.existsSync(p)) return;
    const stat = fs.statSync(p);
    if (stat.isDirectory()) for (const child of fs.readdirSync(p)) visit(path.join(p, child));
    else newest = Math.max(newest, stat.mtimeMs);
  };
  entries.forEach((entry) => visit(path.join(REPO, entry)));
  return newest;
}

/** True when an output is missing or older than any of its sources. */
function stale(outputs, sources) {
  const outputTimes = outputs.map((o) => path.join(REPO, o)).map((o) => (fs.existsSync(o) ? fs.statSync(o).mtimeMs : 0));
  return Math.min(...outputTimes) < newestMtime(sources);
}

function build() {
  if (!fs.existsSync(path.join(REPO, 'node_modules'))) run(npm, ['install'], 'npm install');
  const configs = ['package.json', 'tsconfig.json', 'webpack.config.js'];
  // webpack leaves an output untouched when its content is unchanged, so a stamp records when the build last ran.
  const bundles = ['dist/extension.js', 'dist/engine.js', 'dist/cli.js', ...['inspector', 'analysis', 'search'].map((app) => `dist/webview/${app}.js`)];
  if (bundles.some((b) => !fs.existsSync(path.join(REPO, b))) || stale([BUILD_STAMP], ['extension', 'webview', ...configs])) {
    // `npm run build`, with webpack's output cut down to problems.
    run(npx, ['webpack', '--mode', 'production', '--stats', 'errors-warnings'], 'building the extension (webpack --mode production)');
    fs.writeFileSync(path.join(REPO, BUILD_STAMP), new Date().toISOString());
  }
  // The code-server launcher is TypeScript shared with the integration tests.
  if (stale(['out/test/integration/codeServer.js'], ['test/integration', ...configs])) {
    run(npm, ['run', 'compile', '--silent'], 'compiling (tsc)');
  }
  if (!fs.existsSync(SAMPLE)) run(npm, ['run', 'sample', '--silent'], 'generating the sample model');
}

function openDesktop(code) {
  const workspace = path.dirname(SAMPLE);
  console.log(`[start] opening ${path.relative(REPO, SAMPLE)} in desktop VS Code (${code}) with QuantLens loaded`);
  const child = spawn(code, [`--extensionDevelopmentPath=${REPO}`, '--new-window', workspace, SAMPLE], { stdio: 'inherit' });
  child.on('exit', (status) => process.exit(status ?? 0));
}

async function pickPort(codeServer) {
  if (portArg) return portArg;
  if (process.env.QUANTLENS_PORT) return Number(process.env.QUANTLENS_PORT);
  return (await codeServer.isPortFree(8080)) ? 8080 : codeServer.findFreePort();
}

async function openCodeServer() {
  run('bash', [path.join(REPO, 'scripts', 'install-code-server.sh')], 'checking code-server 4.96.4');
  const codeServer = require(path.join(REPO, 'out', 'test', 'integration', 'codeServer.js'));
  const workspace = path.dirname(SAMPLE);
  const server = await codeServer.startCodeServer({ workspace, port: await pickPort(codeServer) });
  const url = codeServer.workbenchUrl(server.port, workspace, { extensionDevelopmentPath: REPO });
  // Each window that connects (or reloads) gets the sample opened once its extension host is up. The window joins
  // code-server's session a moment after that, so a refused open is retried for a while.
  let windowsServed = 0;
  let refusals = 0;
  const opener = setInterval(() => {
    const launched = codeServer.extensionHostLaunches(server);
    if (launched <= windowsServed) return;
    try {
      codeServer.openInWindow(server, SAMPLE);
      windowsServed = launched;
      refusals = 0;
    } catch (err) {
      if (++refusals < 60) return;
      console.error(`[start] ${err.message}`);
      windowsServed = launched;
      refusals = 0;
    }
  }, 500);
  let exiting = false;
  const shutdown = async (code) => {
    if (exiting) return;
    exiting = true;
    clearInterval(opener);
    await server.stop();
    fs.rmSync(server.stateDir, { recursive: true, force: true });
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  server.exited.then((code) => {
    if (!exiting) {
      console.error(`[start] code-server exited (${code}); its log: ${server.logFile}`);
      process.exit(1);
    }
  });

  if (smoke) {
    const ok = await smokeCheck(codeServer, url).catch((err) => {
      console.error(`[start] smoke check failed: ${err.message}`);
      return false;
    });
    await shutdown(ok ? 0 : 1);
    return;
  }
  console.log('\nQuantLens is running in code-server (VS Code 1.96.4). Open this URL in a browser:\n');
  console.log(`  ${url}\n`);
  console.log(`code-server log: ${server.logFile}. Press Ctrl+C to stop.`);
  if (!args.includes('--no-open')) openInBrowser(url);
}

function openInBrowser(url) {
  const opener = process.platform === 'darwin' ? 'open' : process.env.DISPLAY || process.env.WAYLAND_DISPLAY ? 'xdg-open' : undefined;
  if (opener && onPath(opener)) spawn(opener, [url], { stdio: 'ignore', detached: true }).unref();
}

/** Loads the URL in headless Chromium and waits until the inspector webview's table shows the sample's layers. */
async function smokeCheck(codeServer, url) {
  await codeServer.waitForHttp(url, 30_000);
  console.log(`[start] ${url} answers; loading it in headless Chromium`);
  const browser = await codeServer.launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    const found = await codeServer.findWebviewFrameWithRow(page, SAMPLE_LAYER, 120_000);
    // Let the progress notification and the table settle for the picture.
    if (found) await new Promise((resolve) => setTimeout(resolve, 2000));
    const shot = path.join(REPO, '.test-output', 'screenshots', 'start.png');
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot });
    if (!found) {
      console.error(`[start] the inspector never showed ${SAMPLE_LAYER}; screenshot: ${path.relative(REPO, shot)}`);
      return false;
    }
    console.log(`[start] smoke check passed: the inspector shows the sample (${found.rows} table rows in the webview); screenshot: ${path.relative(REPO, shot)}`);
    return true;
  } finally {
    await browser.close();
  }
}

async function main() {
  build();
  const code = onPath('code');
  if (code && !smoke && !args.includes('--code-server')) openDesktop(code);
  else await openCodeServer();
}

main().catch((err) => {
  console.error(`[start] ${err.stack || err}`);
  process.exit(1);
});
