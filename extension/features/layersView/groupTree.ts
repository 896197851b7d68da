// Builds the Layers tree's shape from LayerInfo.group paths. Pure data, no vscode, so it is unit-tested.
import type { LayerInfo } from '../../protocol/records';

export interface GroupNode {
  kind: 'group';
  label: string;
  /** Group labels from the root down to this node; empty for the root. */
  path: string[];
  parent: GroupNode | undefined;
  /** Child groups and layers in the order they first appear in the file. */
  children: TreeChild[];
  /** Layers anywhere below this node. */
  layerCount: number;
  params: number;
}

export interface LayerLeaf {
  kind: 'layer';
  /** Index into the layers array the tree was built from. */
  index: number;
  parent: GroupNode;
}

export type TreeChild = GroupNode | LayerLeaf;

/** Groups nest by LayerInfo.group (['block 3', 'attn'] → block 3 › attn); layers without a group sit at the root. */
export function buildGroupTree(layers: readonly LayerInfo[]): GroupNode {
  const root: GroupNode = { kind: 'group', label: '', path: [], parent: undefined, children: [], layerCount: 0, params: 0 };
  // Keyed by the parent's identity and the label, so equal labels under different parents stay apart.
  const childGroups = new Map<GroupNode, Map<string, GroupNode>>();
  layers.forEach((layer, index) => {
    let node = root;
    node.layerCount++;
    node.params += layer.params;
    for (const label of layer.group) {
      let byLabel = childGroups.get(node);
      if (!byLabel) {
        byLabel = new Map();
        childGroups.set(node, byLabel);
      }
      let child = byLabel.get(label);
      if (!child) {
        child = { kind: 'group', label, path: [...node.path, label], parent: node, children: [], layerCount: 0, params: 0 };
        byLabel.set(label, child);
        node.children.push(child);
      }
      node = child;
      node.layerCount++;
      node.params += layer.params;
    }
    node.children.push({ kind: 'layer', index, parent: node });
  });
  return root;
}

/** Every leaf, depth first. */
export function* leaves(node: GroupNode): Generator<LayerLeaf> {
  for (const child of node.children) {
    if (child.kind === 'layer') yield child;
    else yield* leaves(child);
  }
}
