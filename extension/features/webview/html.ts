// The HTML shell every QuantLens webview gets: a strict CSP that admits only our script (by nonce), our style sheets
// and fonts. No vscode import, so the policy is unit-tested.
import { randomBytes } from 'crypto';

export interface WebviewHtmlParts {
  title: string;
  /** webview.cspSource */
  cspSource: string;
  nonce: string;
  scriptUri: string;
  /** Style sheets, in cascade order. */
  styleUris: string[];
  codiconsUri: string;
}

export function makeNonce(): string {
  return randomBytes(18).toString('base64');
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    `default-src 'none'`,
    `img-src ${cspSource} data:`,
    `style-src ${cspSource}`,
    `font-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
}

export function webviewHtml(parts: WebviewHtmlParts): string {
  const attr = escapeHtml;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(contentSecurityPolicy(parts.cspSource, parts.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${attr(parts.codiconsUri)}" id="vscode-codicon-stylesheet">
${parts.styleUris.map((uri) => `<link rel="stylesheet" href="${attr(uri)}">`).join('\n')}
<title>${attr(parts.title)}</title>
</head>
<body>
<div id="app"></div>
<script nonce="${attr(parts.nonce)}" src="${attr(parts.scriptUri)}"></script>
</body>
</html>`;
}
