// The walkthrough's later steps complete when the work finished, not when a command merely opened a form: each feature
// sets a context key on success, and package.json's completionEvents wait for it (`onContext:quantlens.walkthrough.*`).
// VS Code remembers a completed step, so the keys need not outlive the window.
import * as vscode from 'vscode';

export type WalkthroughMilestone = 'analyzed' | 'searched' | 'exported';

export function reachedMilestone(milestone: WalkthroughMilestone): void {
  void vscode.commands.executeCommand('setContext', `quantlens.walkthrough.${milestone}`, true);
}

/**
 * The walkthrough's links pass `{ "from": "walkthrough" }`: what they open goes beside the walkthrough, which stays in
 * view. (The walkthrough's own `toSide:` links lose that race: the command reaches the extension host after the
 * editor group the walkthrough made for it has lost focus again.)
 */
export function fromWalkthrough(arg: unknown): boolean {
  return typeof arg === 'object' && arg !== null && (arg as { from?: unknown }).from === 'walkthrough';
}
