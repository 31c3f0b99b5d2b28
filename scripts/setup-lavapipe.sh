#!/usr/bin/env bash
# Makes Mesa's lavapipe (llvmpipe's Vulkan driver: a real, conformant Vulkan device that runs on
# the CPU) available, so the GPU backend and its tests run on machines without a GPU, e.g. CI.
# Lavapipe is for correctness only: timings on it say nothing about a GPU.
#
# Usage:
#   scripts/setup-lavapipe.sh          install if missing, then print what to export (human-readable)
#   scripts/setup-lavapipe.sh --env    install if missing, then print only KEY=VALUE lines, e.g.
#                                        eval "$(scripts/setup-lavapipe.sh --env | sed 's/^/export /')"
#                                        scripts/setup-lavapipe.sh --env >> "$GITHUB_ENV"
#
# How the device is selected (set by the printed lines):
#   VK_DRIVER_FILES / VK_ICD_FILENAMES  restrict the Vulkan loader to the lavapipe ICD json (the
#                                       first is read by loaders >= 1.3.207, the second by older ones)
#   WGPU_BACKEND=vulkan                 wgpu looks at Vulkan only
#   BACKPROP_ADAPTER=llvmpipe           backprop picks the adapter whose name contains "llvmpipe"
#   BACKPROP_REQUIRE_GPU=1              GPU tests fail instead of skipping when no adapter is found
set -euo pipefail

env_only=0
[[ "${1:-}" == "--env" ]] && env_only=1
say() { if [[ $env_only == 0 ]]; then echo "$@"; else echo "$@" >&2; fi; }

find_icd() {
    local d f
    for d in /usr/share/vulkan/icd.d /usr/local/share/vulkan/icd.d /etc/vulkan/icd.d; do
        for f in "$d"/lvp_icd*.json; do
            [[ -e "$f" ]] && { echo "$f"; return 0; }
        done
    done
    return 1
}

have_loader() { ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; }

if ! find_icd >/dev/null || ! have_loader; then
    say "lavapipe or the Vulkan loader is missing: installing mesa-vulkan-drivers libvulkan1"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "error: not root and no sudo; install mesa-vulkan-drivers libvulkan1" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >&2
fi

icd=$(find_icd) || { echo "error: no lvp_icd*.json found after installing mesa-vulkan-drivers" >&2; exit 1; }
have_loader || { echo "error: libvulkan.so.1 not found after installing libvulkan1" >&2; exit 1; }

# Mesa's window-system code complains (harmlessly) when XDG_RUNTIME_DIR is unset; give it one.
xdg="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$xdg" && chmod 700 "$xdg"

lines=(
    "VK_DRIVER_FILES=$icd"
    "VK_ICD_FILENAMES=$icd"
    "WGPU_BACKEND=vulkan"
    "BACKPROP_ADAPTER=llvmpipe"
    "BACKPROP_REQUIRE_GPU=1"
    "XDG_RUNTIME_DIR=$xdg"
)
if [[ $env_only == 1 ]]; then
    printf '%s\n' "${lines[@]}"
else
    echo "lavapipe Vulkan ICD: $icd"
    echo "export these to run the GPU tests on it:"
    printf '  export %s\n' "${lines[@]}"
fi
