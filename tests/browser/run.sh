#!/usr/bin/env bash
# Browser tests of parcel-hub's pages: headless Debian chromium driven by
# playwright-core, against a real hub binary.
#
# Usage: tests/browser/run.sh path/to/parcel-hub [artifacts-dir]
#
# Installs what it needs on a fresh Debian/Ubuntu machine (chromium from
# apt, the npm packages from package-lock.json), runs the test, and exits
# non-zero if any check failed. Screenshots go to tests/browser/artifacts/
# (or the given directory).
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 path/to/parcel-hub [artifacts-dir]" >&2
  exit 2
fi
binary=$(realpath "$1")
if [ ! -x "$binary" ]; then
  echo "no executable hub at $1 (build it first: cargo build)" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
artifacts=${2:-$here/artifacts}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (apt) =="
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if ! command -v node >/dev/null 2>&1; then
  echo "== installing node.js (apt) =="
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "playwright-core needs Node.js 20 or newer; this machine has $(node --version)" >&2
  exit 2
fi

echo "== npm ci (tests/browser) =="
(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

echo "== browser tests: pages =="
status=0
node "$here/pages.test.mjs" "$binary" "$artifacts" || status=1
echo "== browser tests: the official Socket.IO Admin UI =="
node "$here/admin-ui.test.mjs" "$binary" "$artifacts" || status=1
exit $status
