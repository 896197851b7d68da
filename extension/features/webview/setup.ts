// Points a webview at one of our app bundles (dist/webview/<app>.js, webview/<app>/<app>.css) with the shared shell.
import * as vscode from 'vscode';
import { makeNonce, webviewHtml } from './html';

export function setUpWebview(webview: vscode.Webview, extensionUri: vscode.Uri, app: 'inspector' | 'analysis' | 'search', title: string): void {
  const dist = vscode.Uri.joinPath(extensionUri, 'dist', 'webview');
  const codicons = vscode.Uri.joinPath(extensionUri, 'node_modules', '@vscode', 'codicons', 'dist');
  const styles = vscode.Uri.joinPath(extensionUri, 'webview', app);
  webview.options = { enableScripts: true, localResourceRoots: [dist, codicons, styles] };
  webview.html = webviewHtml({
    title,
    cspSource: webview.cspSource,
    nonce: makeNonce(),
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, `${app}.js`)).toString(),
    styleUri: webview.asWebviewUri(vscode.Uri.joinPath(styles, `${app}.css`)).toString(),
    codiconsUri: webview.asWebviewUri(vscode.Uri.joinPath(codicons, 'codicon.css')).toString(),
  });
}
