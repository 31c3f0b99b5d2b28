#!/usr/bin/env bash
# Installs what the viz tests need beyond Python packages, when missing: Graphviz (`dot`, which
# draws bp.viz.graph), headless Chromium (tests/test_viz_report.py renders the explain reports
# in it: screenshot, console errors, requests) and a font for both (Debian/Ubuntu, apt).
#
# Usage:
#   scripts/setup-viz-tools.sh          install if missing, then say what was found
#   scripts/setup-viz-tools.sh --env    the same, then print only KEY=VALUE lines to export:
#                                         BACKPROP_CHROMIUM=<path>   the browser the tests start
#                                         BACKPROP_REQUIRE_VIZ=1     viz tests fail (not skip) without a tool
set -euo pipefail

env_only=0
[[ "${1:-}" == "--env" ]] && env_only=1
say() { if [[ $env_only == 0 ]]; then echo "$@"; else echo "$@" >&2; fi; }

find_chromium() {
    local n
    if [[ -n "${BACKPROP_CHROMIUM:-}" && -x "${BACKPROP_CHROMIUM}" ]]; then echo "$BACKPROP_CHROMIUM"; return 0; fi
    for n in chromium chromium-browser google-chrome google-chrome-stable headless_shell; do
        if command -v "$n" >/dev/null 2>&1; then command -v "$n"; return 0; fi
    done
    return 1
}

have_font() { fc-list 2>/dev/null | grep -q .; }

pkgs=()
command -v dot >/dev/null 2>&1 || pkgs+=(graphviz)
find_chromium >/dev/null || pkgs+=(chromium)
have_font || pkgs+=(fonts-dejavu-core fontconfig)

if [[ ${#pkgs[@]} -gt 0 ]]; then
    say "viz tools missing: installing ${pkgs[*]}"
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "error: not root and no sudo; install ${pkgs[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    # Debian names the browser `chromium`; on Ubuntu that package is a snap shim that does not
    # run in containers: set BACKPROP_CHROMIUM to a Chrome/Chromium binary there instead.
    $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
fi

command -v dot >/dev/null || { echo "error: Graphviz's dot not found after installing graphviz" >&2; exit 1; }
chromium=$(find_chromium) || { echo "error: no Chromium found after installing chromium (set BACKPROP_CHROMIUM)" >&2; exit 1; }

lines=("BACKPROP_CHROMIUM=$chromium" "BACKPROP_REQUIRE_VIZ=1")
if [[ $env_only == 1 ]]; then
    printf '%s\n' "${lines[@]}"
else
    echo "Graphviz: $(command -v dot); Chromium: $chromium"
    echo "export these to make the viz tests required:"
    printf '  export %s\n' "${lines[@]}"
fi
