// Workspace trust: inspection only reads files, but analysis, search and export run models through onnxruntime with
// settings and calibration files the workspace supplies, so in an untrusted workspace they ask for trust first.
import * as vscode from 'vscode';

const MANAGE_TRUST = 'Manage Workspace Trust';

/**
 * True when the workspace is trusted. Otherwise explains, in a modal message, why `action` (e.g. "Sensitivity
 * analysis") needs trust, offers the trust editor, and resolves to false: the caller stops.
 */
export async function requireTrust(action: string): Promise<boolean> {
  if (vscode.workspace.isTrusted) return true;
  const choice = await vscode.window.showWarningMessage(
    `QuantLens: ${action} runs the model and reads this workspace's settings and calibration files, so it needs a trusted workspace. Inspection works without trust.`,
    { modal: true },
    MANAGE_TRUST,
  );
  if (choice === MANAGE_TRUST) await vscode.commands.executeCommand('workbench.trust.manage');
  return false;
}
