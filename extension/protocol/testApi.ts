// What the extension's activate() returns. Integration tests read it to check what the webviews really showed;
// every value here comes from a message the webview itself sent.
import type { InspectorToHost } from './inspector';

export type InspectorRendered = Extract<InspectorToHost, { type: 'rendered' }>;

export interface QuantLensApi {
  /** Last table render the inspector webview reported for this file (absolute fs path), if any. */
  inspectorRendered(fsPath: string): InspectorRendered | undefined;
  /** Last error message the inspector webview reported showing for this file, if any. */
  inspectorError(fsPath: string): string | undefined;
  /** Labels of the QuantLens Layers tree, depth first, as the tree provider serves them now ("  " per level). */
  layersTreeLabels(): Promise<string[]>;
  /** Process id of the running engine process, or undefined when none runs. */
  enginePid(): number | undefined;
}
