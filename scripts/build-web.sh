#!/usr/bin/env bash
# Builds the web demo: influence-web for wasm32-unknown-unknown (Debian's Rust with
# -Zbuild-std, see scripts/wasm-toolchain.sh), then wasm-bindgen (installed from crates.io at
# the exact version of the wasm-bindgen crate in Cargo.lock) into crates/influence-web/www/pkg.
# Serve crates/influence-web/www with any static server afterwards, e.g.
#   python3 -m http.server -d crates/influence-web/www 8000
#
# env: CARGO_TARGET_DIR (default target/), WEB_FEATURES (default "webgpu"; "" for flex only)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
features=${WEB_FEATURES-webgpu}
www=crates/influence-web/www
t0=$(date +%s)
step() { echo "build-web.sh: [$(( $(date +%s) - t0 ))s] $*"; }

step "toolchain for wasm32"
bash scripts/wasm-toolchain.sh install

step "building influence-web for wasm32 (features: ${features:-none})"
CARGO_TARGET_DIR="$target/wasm" bash scripts/wasm-toolchain.sh cargo build --release -p influence-web --lib \
  ${features:+--features "$features"}
# (Its own target directory: Debian's rustc must not share build artifacts with rustup's.)
wasm="$target/wasm/wasm32-unknown-unknown/release/influence_web.wasm"

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $version\$"; then
  step "installing wasm-bindgen-cli $version (the version of the wasm-bindgen crate)"
  # Not --locked: its lock file pins a webpki-roots release this registry does not carry.
  cargo install -q wasm-bindgen-cli --version "$version"
fi
step "wasm-bindgen $version"
rm -rf "$www/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$www/pkg" "$wasm"
ls -l "$www/pkg"

step "built $www/pkg"
