#!/usr/bin/env bash
# Runs every test of the workspace on the ndarray, flex and wgpu backends, and on CUDA when
# an NVIDIA GPU is present (the CUDA tests say why they are skipped otherwise).
#
# wgpu needs a Vulkan driver; on a machine without a GPU this script installs Mesa's software
# driver (lavapipe, Debian package mesa-vulkan-drivers) when it is missing, and selects the
# CPU adapter (INFLUENCE_WGPU_DEVICE=cpu) unless INFLUENCE_WGPU_DEVICE is already set.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
  echo "test.sh: no Vulkan driver found; installing Mesa's lavapipe (mesa-vulkan-drivers)"
  sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -q mesa-vulkan-drivers >/dev/null
fi
if [ -z "${INFLUENCE_WGPU_DEVICE:-}" ] && ! ls /dev/nvidia* /dev/dri/renderD* >/dev/null 2>&1; then
  export INFLUENCE_WGPU_DEVICE=cpu
fi
echo "test.sh: wgpu device: ${INFLUENCE_WGPU_DEVICE:-default}"

cargo test --workspace --features ndarray,flex,wgpu,cuda "$@"
