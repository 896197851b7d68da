// Four bundles: the extension host, the engine process, the CLI (all Node) and the webviews (browser).
// `vscode` is provided by the host; onnxruntime-node is a native module shipped beside the bundle, never bundled.
'use strict';
const path = require('path');
const webpack = require('webpack');

const tsRule = {
  test: /\.ts$/,
  exclude: /node_modules/,
  use: [{ loader: 'ts-loader', options: { transpileOnly: true } }],
};

const nodeBundle = (name, entry, extra = {}) => ({
  name,
  target: 'node20',
  entry,
  output: { path: path.resolve(__dirname, 'dist'), filename: `${name}.js`, libraryTarget: 'commonjs2' },
  externals: { vscode: 'commonjs vscode', 'onnxruntime-node': 'commonjs onnxruntime-node' },
  resolve: { extensions: ['.ts', '.js'] },
  module: { rules: [tsRule] },
  devtool: 'nosources-source-map',
  node: { __dirname: false, __filename: false },
  // protobufjs probes for optional modules through an eval'd require; that is intended and harmless here.
  ignoreWarnings: [{ module: /@protobufjs[\\/]inquire/ }],
  ...extra,
});

module.exports = [
  nodeBundle('extension', './extension/extension.ts'),
  nodeBundle('engine', './extension/process/main.ts'),
  nodeBundle('cli', './extension/cli.ts', {
    plugins: [new webpack.BannerPlugin({ banner: '#!/usr/bin/env node', raw: true })],
  }),
  {
    name: 'webview',
    target: 'web',
    entry: { inspector: './webview/inspector/main.ts', analysis: './webview/analysis/main.ts', search: './webview/search/main.ts' },
    output: { path: path.resolve(__dirname, 'dist', 'webview'), filename: '[name].js' },
    resolve: { extensions: ['.ts', '.js'] },
    module: { rules: [tsRule] },
    devtool: 'nosources-source-map',
    performance: { hints: false },
  },
];
