// The sensitivity panel's HTML shell: the inspector's strict CSP (scripts by nonce only, no inline styles), its own
// script and style sheet. No vscode import, so it is unit-tested.
import { contentSecurityPolicy, escapeHtml } from '../inspector/html';

export interface AnalysisHtmlParts {
  /** webview.cspSource */
  cspSource: string;
  nonce: string;
  scriptUri: string;
  styleUri: string;
  codiconsUri: string;
}

export function analysisHtml(parts: AnalysisHtmlParts): string {
  const attr = escapeHtml;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(contentSecurityPolicy(parts.cspSource, parts.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${attr(parts.codiconsUri)}" id="vscode-codicon-stylesheet">
<link rel="stylesheet" href="${attr(parts.styleUri)}">
<title>QuantLens Sensitivity</title>
</head>
<body>
<div id="app"></div>
<script nonce="${attr(parts.nonce)}" src="${attr(parts.scriptUri)}"></script>
</body>
</html>`;
}
