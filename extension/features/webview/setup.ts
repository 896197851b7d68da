// Points a webview at one of our app bundles (dist/webview/<app>.js, webview/<app>/<app>.css) with the shared shell;
// every webview also gets webview/shared/base.css, the panels webview/shared/panel.css.
import * as vscode from 'vscode';
import { makeNonce, webviewHtml } from './html';

export function setUpWebview(webview: vscode.Webview, extensionUri: vscode.Uri, app: 'inspector' | 'analysis' | 'search', title: string): void {
  const dist = vscode.Uri.joinPath(extensionUri, 'dist', 'webview');
  const codicons = vscode.Uri.joinPath(extensionUri, 'node_modules', '@vscode', 'codicons', 'dist');
  const styles = vscode.Uri.joinPath(extensionUri, 'webview', app);
  const shared = vscode.Uri.joinPath(extensionUri, 'webview', 'shared');
  const sheets = [
    vscode.Uri.joinPath(shared, 'base.css'),
    ...(app === 'inspector' ? [] : [vscode.Uri.joinPath(shared, 'panel.css')]),
    vscode.Uri.joinPath(styles, `${app}.css`),
  ];
  webview.options = { enableScripts: true, localResourceRoots: [dist, codicons, styles, shared] };
  webview.html = webviewHtml({
    title,
    cspSource: webview.cspSource,
    nonce: makeNonce(),
    scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(dist, `${app}.js`)).toString(),
    styleUris: sheets.map((sheet) => webview.asWebviewUri(sheet).toString()),
    codiconsUri: webview.asWebviewUri(vscode.Uri.joinPath(codicons, 'codicon.css')).toString(),
  });
}
