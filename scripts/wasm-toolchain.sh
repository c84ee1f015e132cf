#!/usr/bin/env bash
# From the project's shared tools folder (shared/tools/wasm-toolchain.sh); only this line added.
# Build Rust code for wasm32-unknown-unknown on a Debian 12 machine whose rustup toolchain
# has no wasm32 standard library (and cannot download one).
#
# Route: Debian's own Rust 1.96 (packages rustc-web, cargo-web), its standard-library
# source (rust-web-src) and LLVM 22's linker (lld-22). The standard library is compiled
# for wasm32 by cargo's -Zbuild-std, which a stable compiler accepts with RUSTC_BOOTSTRAP=1.
# The first build compiles std (about 7 minutes on 2 cores); later builds reuse it.
#
# usage:
#   wasm-toolchain.sh install            # apt-get the four packages (idempotent)
#   wasm-toolchain.sh cargo ARGS...      # run Debian's cargo for wasm32, e.g.
#   wasm-toolchain.sh cargo build --release -p my-crate --lib
# Artifacts land in target/wasm32-unknown-unknown/.
set -euo pipefail
cmd=${1:-}; shift || true
case "$cmd" in
  install)
    if ! dpkg -s rustc-web cargo-web rust-web-src lld-22 >/dev/null 2>&1; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q rustc-web cargo-web rust-web-src lld-22 >/dev/null
    fi
    /usr/bin/rustc --version
    ;;
  cargo)
    # Debian's cargo and rustc, not the rustup proxies in ~/.cargo/bin.
    export PATH=/usr/bin:$PATH
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTUP_TOOLCHAIN=
    export RUSTC_BOOTSTRAP=1
    sub=${1:?cargo subcommand}; shift
    exec /usr/bin/cargo "$sub" -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown "$@"
    ;;
  *)
    sed -n '2,14p' "$0"; exit 2 ;;
esac
