#!/usr/bin/env bash
# Builds the web demo: influence-web for wasm32-unknown-unknown (Debian's Rust with
# -Zbuild-std, see scripts/wasm-toolchain.sh) in the size-oriented `web` profile, then
# wasm-bindgen (installed from crates.io at the exact version of the wasm-bindgen crate in
# Cargo.lock; JavaScript glue and TypeScript declarations, no name or producers section) into
# crates/influence-web/www/pkg, and the model record into crates/influence-web/www/models.
# Prints the module's size, raw and gzipped. (No wasm-opt: Debian's binaryen 108 shrinks the
# raw module but not the gzipped one, and its output fails to instantiate; docs/web.md.)
# Serve crates/influence-web/www with any static server afterwards, e.g.
#   python3 -m http.server -d crates/influence-web/www 8000
#
# env: CARGO_TARGET_DIR (default target/), WEB_FEATURES (default "webgpu"; "" for flex only),
#      WEB_PROFILE (cargo profile, default "web")
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-$root/target}
features=${WEB_FEATURES-webgpu}
profile=${WEB_PROFILE:-web}
www=crates/influence-web/www
t0=$(date +%s)
step() { echo "build-web.sh: [$(( $(date +%s) - t0 ))s] $*"; }

step "toolchain for wasm32"
bash scripts/wasm-toolchain.sh install

step "building influence-web for wasm32 (features: ${features:-none}, profile $profile)"
CARGO_TARGET_DIR="$target/wasm" bash scripts/wasm-toolchain.sh cargo build --profile "$profile" -p influence-web --lib \
  ${features:+--features "$features"}
# (Its own target directory: Debian's rustc must not share build artifacts with rustup's.)
dir=$profile; [ "$profile" = dev ] && dir=debug
wasm="$target/wasm/wasm32-unknown-unknown/$dir/influence_web.wasm"

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $version\$"; then
  step "installing wasm-bindgen-cli $version (the version of the wasm-bindgen crate)"
  # Not --locked: its lock file pins a webpki-roots release this registry does not carry.
  cargo install -q wasm-bindgen-cli --version "$version"
fi
step "wasm-bindgen $version"
rm -rf "$www/pkg"
wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir "$www/pkg" "$wasm"
out="$www/pkg/influence_web_bg.wasm"
size() { echo "$(stat -c %s "$1") bytes raw, $(gzip -9 -c "$1" | wc -c) bytes gzipped"; }
step "module: $(size "$out")"
mkdir -p "$www/models"
cp crates/influence-web/assets/digits_cnn.mpk "$www/models/"
ls -l "$www/pkg" "$www/models"

step "built $www/pkg"
