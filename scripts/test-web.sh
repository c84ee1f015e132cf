#!/usr/bin/env bash
# Builds the web demo (scripts/build-web.sh) and tests it in a real headless browser, twice:
# Debian's Chromium driven by playwright-core loads the page from localhost, explains the
# fixture digits, and the numbers are compared with the native ones (1e-4 relative); once on
# flex (wasm, CPU) and once on WebGPU (Chromium's WebGPU on SwiftShader, its CPU Vulkan
# implementation: --enable-unsafe-webgpu --use-webgpu-adapter=swiftshader). The WebGPU run
# is skipped when WEB_FEATURES leaves out "webgpu".
# Exits non-zero on any failure. Installs what it needs: Debian's Rust for wasm (see
# scripts/wasm-toolchain.sh), wasm-bindgen-cli at the version in Cargo.lock, chromium,
# playwright-core (npm; never a downloaded browser).
#
# env: CARGO_TARGET_DIR (shared with the native build), PORT (default 8731),
#      WEB_FEATURES (cargo features of influence-web for wasm, default "webgpu"; used by
#      build-web.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
port=${PORT:-8731}
www=crates/influence-web/www
t0=$(date +%s)
step() { echo "test-web.sh: [$(( $(date +%s) - t0 ))s] $*"; }

bash scripts/build-web.sh

step "native reference (flex)"
# With every target, as `cargo test` (scripts/test.sh) builds them: the same feature
# resolution (dev-dependencies included), so the Burn crates it built are reused. A
# `--bin`-only build resolves features without dev-dependencies and rebuilt them (~10 min).
cargo build -q --workspace --all-targets --features ndarray,flex,wgpu,cuda,remote-server,onnx
native=$(mktemp)
onnx_native=$(mktemp)
server=""
trap '[ -z "$server" ] || kill $server 2>/dev/null; rm -f "$native" "$onnx_native"; rm -rf "$www/test-onnx"' EXIT
"$target/debug/native-reference" 32 > "$native"
# "Open your ONNX model": the fixture models, served beside the page for the test only.
"$target/debug/native-reference" --onnx tests/fixtures/onnx > "$onnx_native"
mkdir -p "$www/test-onnx"
cp tests/fixtures/onnx/resnet18.dynamo.onnx tests/fixtures/onnx/resnet18.dynamo.onnx.data \
   tests/fixtures/onnx/vit.torchscript.onnx "$www/test-onnx/"
onnx_args=("$onnx_native" "$root/tests/fixtures/onnx" "$root/docs/digits-class-3.png")

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
step "playwright-core (npm ci, from package-lock.json)"
(cd crates/influence-web/test && npm ci --silent --no-audit --no-fund)

if curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1; then
  echo "test-web.sh: port $port is already in use; set PORT to a free one" >&2
  exit 1
fi
step "serving $www on localhost:$port"
python3 -m http.server "$port" --bind 127.0.0.1 -d "$www" >/dev/null 2>&1 &
server=$!
up=false
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && { up=true; break; }; sleep 0.1; done
[ "$up" = true ] || { echo "test-web.sh: the static server did not start on port $port" >&2; exit 1; }

step "browser test, flex"
node crates/influence-web/test/browser-test.mjs "http://127.0.0.1:$port/index.html" "$native" 32 flex "${onnx_args[@]}"
if [[ ",${WEB_FEATURES-webgpu}," == *,webgpu,* ]]; then
  step "browser test, WebGPU (SwiftShader)"
  node crates/influence-web/test/browser-test.mjs "http://127.0.0.1:$port/index.html" "$native" 32 webgpu "${onnx_args[@]}"
else
  step "browser test, WebGPU: skipped (WEB_FEATURES='${WEB_FEATURES-}' has no webgpu)"
fi
step "done"
