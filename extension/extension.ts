// Wires the features together. Cheap: the engine process starts on the first inspection, not here.
import * as vscode from 'vscode';
import type { QuantLensApi } from './protocol/testApi';
import { AnalysisFeature } from './features/analysis/analysisFeature';
import { registerCommands } from './features/commands';
import { EngineHost } from './features/engineHost';
import { INSPECTOR_VIEW_TYPE, InspectorProvider } from './features/inspector/inspectorProvider';
import { LayersTreeProvider } from './features/layersView/layersView';
import { SearchFeature } from './features/search/searchFeature';

let engineHost: EngineHost | undefined;

export function activate(context: vscode.ExtensionContext): QuantLensApi {
  const log = vscode.window.createOutputChannel('QuantLens', { log: true });
  const enginePath = vscode.Uri.joinPath(context.extensionUri, 'dist', 'engine.js').fsPath;
  const host = new EngineHost(enginePath, log);
  engineHost = host;
  const inspector = new InspectorProvider(context.extensionUri, host, log);
  const layers = new LayersTreeProvider(inspector);
  const analysis = new AnalysisFeature(context.extensionUri, host, inspector, log);
  const search = new SearchFeature(context.extensionUri, host, log);
  context.subscriptions.push(
    log,
    host,
    inspector,
    layers,
    vscode.window.registerCustomEditorProvider(INSPECTOR_VIEW_TYPE, inspector, {
      supportsMultipleEditorsPerDocument: true,
    }),
    ...registerCommands(inspector, log, context.globalStorageUri),
    analysis,
    ...analysis.register(),
    search,
    ...search.register(),
  );
  log.info(`QuantLens ${context.extension.packageJSON.version as string} activated`);

  return {
    inspectorRendered: (fsPath) => inspector.lastRendered(fsPath),
    inspectorError: (fsPath) => inspector.lastError(fsPath),
    layersTreeLabels: async () => layers.labels(),
    layersTreeSelection: () => layers.selectionLabels(),
    layersTreeVisible: () => layers.view.visible,
    enginePid: () => host.pid,
    analysisRendered: () => analysis.analysisRendered(),
    lastRunPath: () => analysis.lastRunPath(),
    lastRunState: () => analysis.lastRunState(),
    searchRendered: () => search.searchRendered(),
    lastAllocationPath: () => search.lastAllocationPath(),
    lastSearchState: () => search.lastSearchState(),
  };
}

export function deactivate(): void {
  engineHost?.dispose();
  engineHost = undefined;
}
