// Helpers for the tests that run inside the extension host.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import * as vscode from 'vscode';
import type { AnalysisRunState, InspectorRendered, QuantLensApi } from '../../../extension/protocol/testApi';
import { EXCHANGE, exchangePath, type HarnessInfo } from '../fixtures';

export const EXTENSION_ID = 'quantlens.quantlens';
export const VIEW_TYPE = 'quantlens.inspector';

export function workspaceRoot(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('the integration suite needs a workspace folder');
  return folder.uri.fsPath;
}

export function fixture(relative: string): vscode.Uri {
  return vscode.Uri.file(path.join(workspaceRoot(), relative));
}

export async function quantLensApi(): Promise<QuantLensApi> {
  const extension = vscode.extensions.getExtension<QuantLensApi>(EXTENSION_ID);
  if (!extension) throw new Error(`extension ${EXTENSION_ID} is not loaded`);
  const api = await extension.activate();
  if (!api || typeof api.inspectorRendered !== 'function') throw new Error(`${EXTENSION_ID} returned no test API`);
  return api;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns a value that is not undefined. The timeout only bounds a hang; its message says what
 * was last seen (`lastSeen`), so a wrong value reads as a wrong value rather than as slowness.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  lastSeen: () => string = () => 'nothing',
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last seen: ${lastSeen()}`);
    await sleep(100);
  }
}

/** Whether a browser harness watches this run (code-server): the e2e tests hold still for its checks and screenshots. */
export function harnessWatching(): boolean {
  const file = exchangePath(workspaceRoot(), EXCHANGE.harness);
  return fs.existsSync(file) && (JSON.parse(fs.readFileSync(file, 'utf8')) as HarnessInfo).screenshot === true;
}

/** The state of the newest analysis run whose record path `isThisRun` accepts, once it is no longer running. */
export function runEnded(api: QuantLensApi, isThisRun: (recordPath: string) => boolean): Promise<AnalysisRunState> {
  return waitFor(
    'the analysis to end',
    () => {
      const s = api.lastRunState();
      return s && isThisRun(s.recordPath) && s.status !== 'running' ? s : undefined;
    },
    () => JSON.stringify(api.lastRunState()),
    180_000,
  );
}

/** Waits until the inspector for `file` reported a table render that satisfies `accept`. */
export function waitForRender(
  api: QuantLensApi,
  file: vscode.Uri,
  what: string,
  accept: (render: InspectorRendered) => boolean = (render) => render.totalRows > 0,
  timeoutMs?: number,
): Promise<InspectorRendered> {
  return waitFor(
    `${what} (${path.basename(file.fsPath)})`,
    () => {
      const render = api.inspectorRendered(file.fsPath);
      return render && accept(render) ? render : undefined;
    },
    () => {
      const render = api.inspectorRendered(file.fsPath);
      const error = api.inspectorError(file.fsPath);
      return `${render ? JSON.stringify({ ...render, firstNames: render.firstNames.slice(0, 5) }) : 'no render'}` +
        `${error ? `, error: ${error}` : ''}`;
    },
    timeoutMs,
  );
}

export async function closeAllEditors(): Promise<void> {
  await vscode.commands.executeCommand('workbench.action.closeAllEditors');
}

/** The custom editor tab showing `file`, if one is open. */
export function inspectorTab(file: vscode.Uri): vscode.Tab | undefined {
  for (const group of vscode.window.tabGroups.all) {
    for (const tab of group.tabs) {
      const input = tab.input;
      if (input instanceof vscode.TabInputCustom && input.viewType === VIEW_TYPE && input.uri.fsPath === file.fsPath) {
        return tab;
      }
    }
  }
  return undefined;
}

const QUANTIZABLE_OPS = new Set(['Conv', 'ConvTranspose', 'Gemm', 'MatMul']);

/**
 * The sample's quantizable layers computed here, independently of the engine: Conv/ConvTranspose/Gemm/MatMul nodes
 * whose weight input (B / W, input 1) is constant — an initializer or a Constant node's output, possibly through a
 * Transpose or Cast. Names follow LayerInfo: the node's name, else the weight's.
 */
export function expectedOnnxLayers(file: string): string[] {
  const model = onnx.ModelProto.decode(fs.readFileSync(file));
  const graph = model.graph;
  if (!graph) throw new Error(`${file} has no graph`);
  const nodes = graph.node ?? [];
  const constants = new Set<string>((graph.initializer ?? []).map((t) => t.name ?? ''));
  const producers = new Map<string, onnx.INodeProto>();
  for (const node of nodes) {
    if (node.opType === 'Constant') for (const out of node.output ?? []) constants.add(out);
    for (const out of node.output ?? []) producers.set(out, node);
  }
  const constantSource = (name: string): string | undefined => {
    if (constants.has(name)) return name;
    const producer = producers.get(name);
    if (producer && (producer.opType === 'Transpose' || producer.opType === 'Cast') && producer.input?.[0]) {
      return constantSource(producer.input[0]);
    }
    return undefined;
  };
  const names: string[] = [];
  for (const node of nodes) {
    if (!QUANTIZABLE_OPS.has(node.opType ?? '')) continue;
    const weight = node.input?.[1] ? constantSource(node.input[1]) : undefined;
    if (weight !== undefined) names.push(node.name || weight);
  }
  return names;
}

/** The shape of each tensor of a safetensors checkpoint, in file order, read straight from its header. */
export function checkpointShapes(file: string): Map<string, number[]> {
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { shape?: number[] }>;
  return new Map(Object.entries(header).flatMap(([name, entry]) => (name !== '__metadata__' && entry.shape ? [[name, entry.shape]] : [])));
}

/** Names of the checkpoint's tensors of rank ≥ 2, read straight from its safetensors header. */
export function expectedCheckpointLayers(file: string): string[] {
  return [...checkpointShapes(file)].filter(([, shape]) => shape.length >= 2).map(([name]) => name);
}
