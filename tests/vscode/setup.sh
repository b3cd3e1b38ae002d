#!/usr/bin/env bash
# Prepare the real-VS-Code test (tests/vscode/test_real_vscode.py): code-server, Debian's
# chromium, Playwright, and the extension's .vsix. Idempotent: what is there is kept.
#
#   sudo bash tests/vscode/setup.sh          # or as root in CI (.ci/run does it)
#
# Installs, all outside the repository:
# - apt (root only): chromium, ripgrep, libkrb5-dev (code-server's native modules build
#   against it), g++/make/python3 for node-gyp. Skipped when already installed.
# - code-server 4.100.3 from npm (VS Code 1.100.3, the newest whose engines allow Node 20)
#   into $CODEEXEC_VSCODE_CACHE/code-server-4.100.3, with no download outside the npm
#   registry (see shared notes: ripgrep from Debian, node headers from /usr/include/node).
# - Playwright from PyPI into its own venv, $CODEEXEC_VSCODE_CACHE/playwright-venv (it
#   drives /usr/bin/chromium: no browser download). The test runs its browser driver with
#   that venv's python, so the project's own environment needs nothing extra.
# - the .vsix: editors/vscode built and packaged (npm ci, compile, package).
#
# $CODEEXEC_VSCODE_CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/codeexec-vscode; the
# test looks in the same place. npm's cache and temporary files go there too.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CODE_SERVER_VERSION=4.100.3
CACHE="${CODEEXEC_VSCODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/codeexec-vscode}"
CODE_SERVER_DIR="$CACHE/code-server-$CODE_SERVER_VERSION"
PLAYWRIGHT_VENV="$CACHE/playwright-venv"
mkdir -p "$CACHE"
start=$(date +%s)
step() { echo "+ [$(( $(date +%s) - start ))s] $*"; }

# --- apt ----------------------------------------------------------------------------------
apt_wanted=()
command -v chromium >/dev/null 2>&1 || apt_wanted+=(chromium)
command -v rg >/dev/null 2>&1 || apt_wanted+=(ripgrep)
[ -e /usr/include/krb5.h ] || [ -e /usr/include/gssapi/gssapi.h ] || apt_wanted+=(libkrb5-dev)
command -v g++ >/dev/null 2>&1 || apt_wanted+=(g++)
command -v make >/dev/null 2>&1 || apt_wanted+=(make)
if [ ! -e /usr/include/node/node.h ]; then apt_wanted+=(libnode-dev); fi
if [ "${#apt_wanted[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/vscode/setup.sh: need root and apt-get to install: ${apt_wanted[*]}" >&2
    exit 1
  fi
  step "apt-get install ${apt_wanted[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_wanted[@]}" >/dev/null
fi

# --- code-server --------------------------------------------------------------------------
if [ -x "$CODE_SERVER_DIR/node_modules/.bin/code-server" ]; then
  step "code-server $CODE_SERVER_VERSION already in $CODE_SERVER_DIR"
else
  step "npm install code-server@$CODE_SERVER_VERSION into $CODE_SERVER_DIR"
  scratch="$CACHE/npm-tmp"
  mkdir -p "$scratch" "$CODE_SERVER_DIR"
  # @vscode/ripgrep's postinstall downloads rg from GitHub unless its cache has the
  # release archive: Debian's rg 13.0.0 is the same version.
  arch=$(uname -m)
  case "$arch" in
    x86_64) rg_target=x86_64-unknown-linux-musl ;;
    aarch64) rg_target=aarch64-unknown-linux-musl ;;
    *) echo "tests/vscode/setup.sh: no ripgrep mapping for $arch" >&2; exit 1 ;;
  esac
  rg_cache="$scratch/vscode-ripgrep-cache-1.15.11"
  mkdir -p "$rg_cache"
  tar -czf "$rg_cache/ripgrep-v13.0.0-10-$rg_target.tar.gz" -C "$(dirname "$(command -v rg)")" rg
  echo '{"private": true}' >"$CODE_SERVER_DIR/package.json"
  # Traps (shared notes): node headers from /usr, root postinstalls, npx without a prompt,
  # and every temporary/cache/config dir in the cache, not in HOME.
  (
    cd "$CODE_SERVER_DIR"
    TMPDIR="$scratch" XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" \
      XDG_CACHE_HOME="$scratch/cache" npm_config_cache="$CACHE/npm-cache" \
      npm_config_nodedir=/usr npm_config_unsafe_perm=true npm_config_yes=true \
      npm install --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION"
  )
  # Even --version writes a config file under XDG_CONFIG_HOME: keep it in the cache.
  XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" \
    "$CODE_SERVER_DIR/node_modules/.bin/code-server" --version
fi

# --- Playwright ---------------------------------------------------------------------------
if "$PLAYWRIGHT_VENV/bin/python" -c "import playwright.sync_api" >/dev/null 2>&1; then
  step "Playwright already in $PLAYWRIGHT_VENV"
else
  step "pip install playwright into $PLAYWRIGHT_VENV"
  "${PYTHON:-python3}" -m venv "$PLAYWRIGHT_VENV"
  "$PLAYWRIGHT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "playwright>=1.45"
fi

# --- the .vsix ----------------------------------------------------------------------------
step "build and package editors/vscode"
(
  cd "$REPO/editors/vscode"
  # node_modules as package-lock.json says (npm writes its copy last): no npm ci again
  if [ ! node_modules/.package-lock.json -nt package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error  # npm's own cache, as editors/vscode/ci.sh
  fi
  npm run --silent package  # its vscode:prepublish compiles (tsc, esbuild) first
)

step "ready: cache $CACHE"
echo "tests/vscode/setup.sh: done in $(( $(date +%s) - start )) s"
