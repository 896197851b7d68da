#!/usr/bin/env bash
# Installs code-server 4.96.4 (a real VS Code 1.96.4: web client + Node extension host) into a cache folder outside
# the repo, the way RECIPES.md describes: its own postinstall cannot work here (root check, a GitHub dependency in
# its shrinkwrap, a ripgrep download). Prints the binary's path. Idempotent: a marker written last means "done".
set -Eeuo pipefail

VERSION=4.96.4
CACHE_ROOT="${QUANTLENS_CACHE:-$HOME/.cache/quantlens}"
DEST="$CACHE_ROOT/code-server-$VERSION"
MARKER="$DEST/.quantlens-install-complete"
BIN="$DEST/node_modules/.bin/code-server"

if [[ -f "$MARKER" && -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

log() { echo "[install-code-server] $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
trap 'status=$?; fail "\"$BASH_COMMAND\" exited with status $status"' ERR

# A half-finished earlier attempt is discarded rather than patched.
rm -rf "$DEST"
mkdir -p "$DEST"
cd "$DEST"
echo '{ "name": "quantlens-code-server", "private": true }' > package.json

npm_quiet() { npm --no-audit --no-fund --loglevel=error "$@" >&2; }

log "npm install code-server@$VERSION (scripts skipped) into $DEST"
npm_quiet install --ignore-scripts "code-server@$VERSION"

cd node_modules/code-server/lib/vscode
# The shrinkwrap pins @vscode/proxy-agent to a GitHub URL this machine cannot reach: resolve it from the registry.
rm -f npm-shrinkwrap.json
log "installing VS Code's own dependencies"
npm_quiet install --omit=dev --ignore-scripts
# kerberos is left out: it needs gssapi headers and only serves proxy authentication.
log "building native modules"
npm_quiet rebuild @parcel/watcher @vscode/spdlog node-pty native-watchdog @vscode/deviceid
ln -sfn node_modules node_modules.asar
log "installing built-in extensions' dependencies"
(cd extensions && npm_quiet install --omit=dev --ignore-scripts)
cd "$DEST"
npm_quiet rebuild argon2

[[ -x "$BIN" ]] || fail "$BIN missing after install"
"$BIN" --version >/dev/null 2>&1 || fail "$BIN --version does not run"
touch "$MARKER"
trap - ERR
log "installed code-server $VERSION"
echo "$BIN"
