#!/usr/bin/env bash
# Runs every test of the workspace on the ndarray, flex and wgpu backends, and on CUDA when
# an NVIDIA GPU is present (the CUDA tests say why they are skipped otherwise).
#
# wgpu needs a Vulkan driver; on a machine without a GPU this script installs Mesa's software
# driver (lavapipe, Debian package mesa-vulkan-drivers) when it is missing, and selects the
# CPU adapter (INFLUENCE_WGPU_DEVICE=cpu) unless INFLUENCE_WGPU_DEVICE is already set.
set -euo pipefail
cd "$(dirname "$0")/.."
# libwayland, loaded with the Vulkan driver, prints "error: XDG_RUNTIME_DIR is invalid or not
# set in the environment." at every wgpu test where a login session has not set it: harmless,
# but it reads as a failure.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

gpu=false
for f in /dev/nvidia0 /dev/dri/renderD*; do [ -e "$f" ] && gpu=true; done
if [ -z "${INFLUENCE_WGPU_DEVICE:-}" ] && [ "$gpu" = false ]; then
  export INFLUENCE_WGPU_DEVICE=cpu
fi
# The CPU adapter is lavapipe; any adapter needs some Vulkan driver.
if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 ||
   { [ "${INFLUENCE_WGPU_DEVICE:-}" = cpu ] && ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; }; then
  echo "test.sh: installing Mesa's software Vulkan driver, lavapipe (mesa-vulkan-drivers)"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mesa-vulkan-drivers >/dev/null
fi
echo "test.sh: wgpu device: ${INFLUENCE_WGPU_DEVICE:-default}"

cargo test --workspace --features ndarray,flex,wgpu,cuda,remote-server,onnx "$@"
