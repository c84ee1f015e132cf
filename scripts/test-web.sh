#!/usr/bin/env bash
# Builds the web demo (scripts/build-web.sh) and tests it in a real headless browser:
# Debian's Chromium driven by playwright-core loads the page from localhost, explains the
# fixture digits, and the numbers are compared with the native ones (1e-4 relative).
# Exits non-zero on any failure. Installs what it needs: Debian's Rust for wasm (see
# scripts/wasm-toolchain.sh), wasm-bindgen-cli at the version in Cargo.lock, chromium,
# playwright-core (npm; never a downloaded browser).
#
# env: CARGO_TARGET_DIR (shared with the native build), PORT (default 8731),
#      WEB_FEATURES (cargo features of influence-web for wasm, default "webgpu")
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
port=${PORT:-8731}
features=${WEB_FEATURES-webgpu}
www=crates/influence-web/www
t0=$(date +%s)
step() { echo "test-web.sh: [$(( $(date +%s) - t0 ))s] $*"; }

bash scripts/build-web.sh

step "native reference (flex)"
cargo build -q --workspace --features ndarray,flex,wgpu,cuda --bin native-reference
native=$(mktemp)
"$target/debug/native-reference" 32 > "$native"

if [ ! -x /usr/bin/chromium ]; then
  step "installing chromium"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q chromium >/dev/null
fi
step "playwright-core (npm)"
(cd crates/influence-web/test && npm install --silent --no-audit --no-fund)

step "serving $www on localhost:$port"
python3 -m http.server "$port" --bind 127.0.0.1 -d "$www" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$native"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done

step "browser test"
node crates/influence-web/test/browser-test.mjs "http://127.0.0.1:$port/index.html" "$native" 32
step "done"
