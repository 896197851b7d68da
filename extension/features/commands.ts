// The palette and context-menu commands.
import * as path from 'path';
import * as vscode from 'vscode';
import { INSPECTOR_VIEW_TYPE, type InspectorProvider } from './inspector/inspectorProvider';
import { REVEAL_LAYER_COMMAND } from './layersView/layersView';
import { fromWalkthrough } from './walkthrough';

export const INSPECT_MODEL_COMMAND = 'quantlens.inspectModel';
export const SHOW_LOG_COMMAND = 'quantlens.showLog';
export const OPEN_SAMPLE_COMMAND = 'quantlens.openSample';
/** publisher.name: the same for the installed extension and the one under development. */
const EXTENSION_ID = 'quantlens.quantlens';

const MODEL_EXTENSIONS = ['onnx', 'safetensors'];

/** `storage`: the extension's global storage folder, where the sample is copied to. */
export function registerCommands(inspector: InspectorProvider, log: vscode.LogOutputChannel, storage: vscode.Uri): vscode.Disposable[] {
  return [
    // From the explorer's context menu VS Code passes the clicked file and the whole selection.
    vscode.commands.registerCommand(INSPECT_MODEL_COMMAND, async (clicked?: unknown, selection?: unknown) => {
      const chosen = Array.isArray(selection) && selection.length > 0 ? selection : clicked ? [clicked] : [];
      const uris = chosen.filter((u): u is vscode.Uri => u instanceof vscode.Uri);
      if (uris.length === 0) {
        const picked = await pickModel();
        if (picked) uris.push(picked);
      }
      for (const uri of uris) await vscode.commands.executeCommand('vscode.openWith', uri, INSPECTOR_VIEW_TYPE);
    }),
    vscode.commands.registerCommand(REVEAL_LAYER_COMMAND, (name: unknown) => {
      if (typeof name === 'string') return inspector.selectLayer(name);
      return false;
    }),
    vscode.commands.registerCommand(SHOW_LOG_COMMAND, () => log.show()),
    // The walkthrough's first step (the DiT sample), or from the palette either sample. The samples are copied out of
    // the extension's folder, which may be read-only and is replaced on update, so that runs and exports saved beside
    // them (when no folder is open) survive. Tests pass { sample: 'llm' }.
    vscode.commands.registerCommand(OPEN_SAMPLE_COMMAND, async (arg?: unknown) => {
      const extensionUri = vscode.extensions.getExtension(EXTENSION_ID)?.extensionUri;
      if (!extensionUri) throw new Error(`QuantLens: extension ${EXTENSION_ID} not found`);
      const asked = (arg as { sample?: unknown } | undefined)?.sample;
      const choice = fromWalkthrough(arg) ? SAMPLES[0] : (SAMPLES.find((s) => s.id === asked) ?? (await pickSample()));
      if (!choice) return;
      const folder = await copySamples(vscode.Uri.joinPath(extensionUri, 'resources', 'sample'), vscode.Uri.joinPath(storage, 'sample'));
      const column = fromWalkthrough(arg) ? vscode.ViewColumn.Beside : vscode.ViewColumn.Active;
      await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.joinPath(folder, choice.file), INSPECTOR_VIEW_TYPE, column);
    }),
  ];
}

/** A quick pick of the workspace's models, with a file dialog for anything else. */
async function pickModel(): Promise<vscode.Uri | undefined> {
  const files = await vscode.workspace.findFiles(`**/*.{${MODEL_EXTENSIONS.join(',')}}`, '**/node_modules/**', 1000);
  if (files.length === 0) return browseForModel();
  const browse: vscode.QuickPickItem = { label: '$(folder-opened) Browse…', alwaysShow: true };
  const items = files
    .map((uri) => ({ label: path.basename(uri.fsPath), description: vscode.workspace.asRelativePath(uri), uri }))
    .sort((a, b) => a.description.localeCompare(b.description));
  const choice = await vscode.window.showQuickPick<vscode.QuickPickItem & { uri?: vscode.Uri }>([...items, browse], {
    title: 'QuantLens: Inspect Model',
    placeHolder: 'Choose an ONNX or safetensors model',
    matchOnDescription: true,
  });
  if (!choice) return undefined;
  return choice.uri ?? browseForModel();
}

async function browseForModel(): Promise<vscode.Uri | undefined> {
  const picked = await vscode.window.showOpenDialog({
    title: 'QuantLens: Inspect Model',
    canSelectMany: false,
    filters: { Models: MODEL_EXTENSIONS },
    openLabel: 'Inspect',
  });
  return picked?.[0];
}

const SAMPLES = [
  { id: 'dit', file: 'dit-sample.onnx', label: 'DiT sample', detail: 'A diffusion transformer with a timestep input: per-timestep sensitivity' },
  { id: 'llm', file: 'llm-sample.onnx', label: 'LLM sample', detail: 'A LLaMA-shaped decoder: weight-only, activation and KV-cache quantization' },
] as const;

async function pickSample(): Promise<(typeof SAMPLES)[number] | undefined> {
  return vscode.window.showQuickPick([...SAMPLES], { title: 'QuantLens: Open Sample Model', placeHolder: 'Which sample model?' });
}

/** Copies the samples and their README into `to` unless a copy at least as new and of the same size is there. */
async function copySamples(from: vscode.Uri, to: vscode.Uri): Promise<vscode.Uri> {
  await vscode.workspace.fs.createDirectory(to);
  for (const name of [...SAMPLES.map((sample) => sample.file), 'README.md']) {
    const source = vscode.Uri.joinPath(from, name);
    const target = vscode.Uri.joinPath(to, name);
    const [sourceStat, targetStat] = await Promise.all([vscode.workspace.fs.stat(source), vscode.workspace.fs.stat(target).then((s) => s, () => undefined)]);
    const current = targetStat && targetStat.size === sourceStat.size && targetStat.mtime >= sourceStat.mtime;
    if (!current) await vscode.workspace.fs.copy(source, target, { overwrite: true });
  }
  return to;
}
