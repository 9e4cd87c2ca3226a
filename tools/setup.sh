#!/usr/bin/env bash
# Installs what building and testing quantize needs, skipping whatever is already there:
#   - Debian packages for the Swift build: libopenblas-dev libzstd-dev pkg-config
#   - <repo>/.venv, a Python virtual environment with the oracle packages pinned in
#     tools/requirements.txt (rebuilt when that file changes; python3-venv is installed if needed)
# Safe to run again: when everything is present it only checks (well under 2 seconds).
# Run it from any directory. apt-get needs root; sudo is not used.
# Environment: PYTHON=/path/to/python3 picks the interpreter for the venv (default: python3).
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tools/requirements.txt"
STAMP="$VENV/.requirements.sha256"
SYSTEM_PACKAGES=(libopenblas-dev libzstd-dev pkg-config)
PYTHON="${PYTHON:-python3}"

log() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

is_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

apt_updated=0
apt_install() {
    [ "$(id -u)" -eq 0 ] ||
        fail "missing Debian packages: $*. Run this script as root, or install them: apt-get install $*"
    command -v apt-get >/dev/null 2>&1 ||
        fail "apt-get not found; install these packages with your system's package manager: $*"
    local output
    output="$(mktemp)"
    if [ "$apt_updated" -eq 0 ]; then
        if ! DEBIAN_FRONTEND=noninteractive apt-get update -q >"$output" 2>&1; then
            tail -n 20 "$output" >&2
            rm -f "$output"
            fail "apt-get update failed (last lines above); check the network and /etc/apt/sources.list"
        fi
        apt_updated=1
    fi
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
            >"$output" 2>&1; then
        tail -n 20 "$output" >&2
        rm -f "$output"
        fail "apt-get install $* failed (last lines above)"
    fi
    rm -f "$output"
    local package
    for package in "$@"; do
        log "installed $package (apt)"
    done
}

# 1. System packages.
missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
    is_installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# 2. Python virtual environment, rebuilt when tools/requirements.txt changes.
[ -f "$REQUIREMENTS" ] || fail "$REQUIREMENTS is missing; run this script from a full checkout"
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null || true)" = "$wanted" ] &&
        "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    : # up to date
else
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        [ "$PYTHON" = python3 ] || fail "PYTHON=$PYTHON was not found"
        apt_install python3 python3-venv
    fi
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        is_installed python3-venv || apt_install python3-venv
        "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 ||
            fail "$("$PYTHON" -c 'import sys; print(sys.executable)' 2>/dev/null || echo "$PYTHON") cannot create virtual environments (no ensurepip); install its venv module, or set PYTHON to an interpreter that has one"
    fi
    rm -rf -- "$VENV"
    "$PYTHON" -m venv "$VENV" || fail "'$PYTHON -m venv $VENV' failed"
    output="$(mktemp)"
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
            "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS" >"$output" 2>&1; then
        tail -n 20 "$output" >&2
        rm -f "$output"
        fail "pip could not install tools/requirements.txt into .venv (last lines above); check the network or the pins"
    fi
    rm -f "$output"
    printf '%s\n' "$wanted" >"$STAMP"
    pins="$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$REQUIREMENTS" | tr '\n' ' ')"
    log "installed .venv ($("$VENV/bin/python" -c 'import platform; print("Python", platform.python_version())')): ${pins% }"
fi

command -v swift >/dev/null 2>&1 ||
    printf 'setup: warning: swift is not on PATH; install a Swift 6 toolchain to build quantize\n' >&2
exit 0
