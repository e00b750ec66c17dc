#!/usr/bin/env bash
# Installs what dockless needs on a fresh Debian 12 machine (as root) and builds it:
# busybox-static (the quickstart's and tests' image), a C toolchain for the native
# addon, and the registry/image tools the tests use as real peers. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v busybox >/dev/null || [ -x /bin/busybox ] || need+=(busybox-static)
command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v zstd >/dev/null || need+=(zstd)
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
command -v htpasswd >/dev/null || need+=(apache2-utils)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -f /usr/lib/aarch64-linux-gnu/libc.a ] || need+=(libc6-dev)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("dockless needs Node.js 20 or newer"); process.exit(1) }'
# npm ci runs the package's install script, which builds the native addon with node-gyp.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # Some registry mirrors omit other platforms' optional packages (rollup's,
  # esbuild's) from the lock file, which `npm ci` then refuses: `npm install`
  # installs the same locked versions without that check.
  npm ci --no-audit --no-fund || npm install --no-audit --no-fund
fi
[ -f build/Release/dockless.node ] || npx node-gyp rebuild
