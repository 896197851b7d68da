// The "QuantLens Layers" tree: the active inspector's model → groups (from LayerInfo.group) → layers.
// Clicking a layer selects it in the inspector; selecting a row in the inspector reveals it here.
import * as vscode from 'vscode';
import type { LayerRecord } from '../../protocol/records';
import { formatCount, formatDb, formatNumber, formatShape } from '../../../webview/shared/format';
import { describeFailure, type Inspection } from '../inspection';
import type { ActiveModel, InspectorDocument, InspectorProvider } from '../inspector/inspectorProvider';
import { buildGroupTree, leaves, type GroupNode, type LayerLeaf, type TreeChild } from './groupTree';

export const LAYERS_VIEW_ID = 'quantlens.layers';
export const REVEAL_LAYER_COMMAND = 'quantlens.revealLayer';

/** While layers stream in, rebuild the tree at most this often. */
const REBUILD_DELAY_MS = 250;

interface Shown {
  document: InspectorDocument;
  inspection: Inspection | undefined;
  layers: LayerRecord[];
  root: GroupNode;
  byName: Map<string, LayerLeaf>;
}

export class LayersTreeProvider implements vscode.TreeDataProvider<TreeChild>, vscode.Disposable {
  private shown: Shown | undefined;
  /** Bumped on every model switch, so a slow inspection lookup for an older model is ignored. */
  private generation = 0;
  private subscription: { dispose(): void } | undefined;
  private rebuildTimer: NodeJS.Timeout | undefined;
  private readonly changed = new vscode.EventEmitter<TreeChild | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly view: vscode.TreeView<TreeChild>;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly inspector: InspectorProvider) {
    this.view = vscode.window.createTreeView(LAYERS_VIEW_ID, { treeDataProvider: this, showCollapseAll: true });
    this.disposables.push(
      this.view,
      this.changed,
      inspector.onDidChangeActiveModel((model) => void this.follow(model)),
      inspector.onDidSelectLayer(({ document, name }) => this.reveal(document, name)),
      // Selections made while the view was hidden (or before their layer had arrived) are shown when it can.
      this.view.onDidChangeVisibility(({ visible }) => {
        if (visible) this.revealActiveSelection();
      }),
    );
    void this.follow(inspector.activeModel);
  }

  getTreeItem(node: TreeChild): vscode.TreeItem {
    const shown = this.shown;
    if (!shown) return new vscode.TreeItem('');
    const fsPath = shown.document.uri.fsPath;
    if (node.kind === 'layer') {
      const layer = shown.layers[node.index];
      const item = new vscode.TreeItem(layer.name, vscode.TreeItemCollapsibleState.None);
      item.id = `layer:${fsPath}:${node.index}`;
      item.description = `${layer.opType} ${formatShape(layer.shape)}`;
      item.tooltip = layerTooltip(layer);
      // NaN/±Inf weights: the same warning the inspector's row shows.
      item.iconPath = layer.stats.nonFinite > 0 ? new vscode.ThemeIcon('warning', new vscode.ThemeColor('list.warningForeground')) : new vscode.ThemeIcon('symbol-field');
      item.contextValue = 'quantlens.layer';
      item.command = { command: REVEAL_LAYER_COMMAND, title: 'Select Layer in Inspector', arguments: [layer.name] };
      return item;
    }
    if (node === shown.root) {
      const item = new vscode.TreeItem(shown.document.fileName, vscode.TreeItemCollapsibleState.Expanded);
      item.id = `model:${fsPath}`;
      item.description = modelDescription(shown);
      item.tooltip = fsPath;
      item.iconPath = new vscode.ThemeIcon('file-binary');
      item.contextValue = 'quantlens.model';
      return item;
    }
    const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.Collapsed);
    item.id = `group:${fsPath}:${JSON.stringify(node.path)}`;
    item.description = `${node.layerCount} ${node.layerCount === 1 ? 'layer' : 'layers'} · ${formatCount(node.params)}`;
    item.tooltip = `${node.path.join(' › ')}\n${node.layerCount} layers, ${formatCount(node.params)} parameters`;
    item.iconPath = new vscode.ThemeIcon('symbol-namespace');
    item.contextValue = 'quantlens.group';
    return item;
  }

  getChildren(node?: TreeChild): TreeChild[] {
    if (!this.shown) return [];
    if (!node) return [this.shown.root];
    return node.kind === 'group' ? node.children : [];
  }

  getParent(node: TreeChild): TreeChild | undefined {
    return node.parent;
  }

  /** Labels of the tree's selected items (the test API). */
  selectionLabels(): string[] {
    const shown = this.shown;
    if (!shown) return [];
    return this.view.selection.map((node) => {
      if (node.kind === 'layer') return shown.layers[node.index]?.name ?? '';
      return node === shown.root ? shown.document.fileName : node.label;
    });
  }

  /** Labels depth first, two spaces per level, as the provider serves them now (the test API); " ⚠" marks a warning icon. */
  labels(): string[] {
    this.flushRebuild();
    const out: string[] = [];
    const walk = (node: TreeChild | undefined, depth: number) => {
      for (const child of this.getChildren(node)) {
        const item = this.getTreeItem(child);
        const label = typeof item.label === 'string' ? item.label : (item.label?.label ?? '');
        const warns = item.iconPath instanceof vscode.ThemeIcon && item.iconPath.id === 'warning';
        out.push('  '.repeat(depth) + label + (warns ? ' ⚠' : ''));
        walk(child, depth + 1);
      }
    };
    walk(undefined, 0);
    return out;
  }

  dispose(): void {
    clearTimeout(this.rebuildTimer);
    this.subscription?.dispose();
    this.disposables.forEach((d) => d.dispose());
  }

  private async follow(model: ActiveModel | undefined): Promise<void> {
    const generation = ++this.generation;
    this.subscription?.dispose();
    this.subscription = undefined;
    clearTimeout(this.rebuildTimer);
    this.rebuildTimer = undefined;
    if (!model) {
      this.shown = undefined;
      this.view.message = undefined;
      this.changed.fire(undefined);
      return;
    }
    this.show(model.document, undefined);
    const inspection = await model.inspection;
    if (generation !== this.generation) return;
    this.show(model.document, inspection);
    this.subscription = inspection.subscribe((update) => {
      if (update.kind === 'done' || update.kind === 'failed') {
        this.flushRebuild(true);
        this.revealActiveSelection();
      } else {
        this.scheduleRebuild();
      }
    }, false);
    if (!inspection.running) this.revealActiveSelection();
  }

  private show(document: InspectorDocument, inspection: Inspection | undefined): void {
    const layers = inspection ? inspection.layers.slice() : [];
    const root = buildGroupTree(layers);
    const byName = new Map<string, LayerLeaf>();
    for (const leaf of leaves(root)) if (!byName.has(layers[leaf.index].name)) byName.set(layers[leaf.index].name, leaf);
    this.shown = { document, inspection, layers, root, byName };
    this.view.message = inspection?.failure ? describeFailure(inspection.failure, document.fileName) : undefined;
    this.changed.fire(undefined);
  }

  private scheduleRebuild(): void {
    this.rebuildTimer ??= setTimeout(() => this.flushRebuild(true), REBUILD_DELAY_MS);
  }

  /** Rebuilds now if a rebuild is pending (or `force`), from everything the inspection has so far. */
  private flushRebuild(force = false): void {
    if (!this.rebuildTimer && !force) return;
    clearTimeout(this.rebuildTimer);
    this.rebuildTimer = undefined;
    if (this.shown) this.show(this.shown.document, this.shown.inspection);
  }

  private revealActiveSelection(): void {
    const selection = this.inspector.activeSelection;
    if (selection) this.reveal(selection.document, selection.name);
  }

  private reveal(document: InspectorDocument, name: string): void {
    this.flushRebuild();
    const leaf = this.shown?.document === document ? this.shown.byName.get(name) : undefined;
    // Revealing in a hidden view would open the sidebar; only follow along when the user can see the tree.
    if (!leaf || !this.view.visible) return;
    void this.view.reveal(leaf, { select: true, focus: false }).then(undefined, () => undefined);
  }
}

function modelDescription(shown: Shown): string {
  const inspection = shown.inspection;
  if (inspection?.failure && shown.layers.length === 0) return 'could not be inspected';
  const summary = inspection?.summary;
  const count = `${shown.layers.length} ${shown.layers.length === 1 ? 'layer' : 'layers'}`;
  if (!inspection || inspection.running) {
    const progress = inspection?.progress;
    return progress ? `inspecting… ${progress.done}/${progress.total}` : 'inspecting…';
  }
  return summary ? `${count} · ${formatCount(summary.parameterCount)} params` : count;
}

function layerTooltip(layer: LayerRecord): string {
  const s = layer.stats;
  return [
    layer.name,
    `${layer.opType} · ${formatShape(layer.shape)} · ${layer.dtype}`,
    `weight: ${layer.weight}`,
    `params: ${formatCount(layer.params)}`,
    `absmax ${formatNumber(s.absMax)} · std ${formatNumber(s.std)} · kurtosis ${formatNumber(s.kurtosis)}`,
    `SQNR W4: ${formatDb(s.quantError.perChannel[4])} dB per channel, ${formatDb(s.quantError.perGroup[4])} dB per group of ${s.quantError.groupSize}`,
    ...s.warnings.map((warning) => `⚠ ${warning}`),
  ].join('\n');
}
