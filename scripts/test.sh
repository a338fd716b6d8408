#!/usr/bin/env bash
# Runs Ratchet's whole test suite on a fresh machine: installs what the tests need
# (a Python venv with the real MLflow client, Chromium for the HTML report, a software
# Vulkan adapter for the wgpu test), then `cargo test --release --workspace`.
#
# Environment:
#   CARGO_TARGET_DIR   build cache (default: ~/.cache/ratchet-target, shared with benches)
#   RATCHET_PYTHON     python with mlflow + safetensors (default: ~/.cache/ratchet/venv/bin/python)
#   CHROMIUM           headless browser for the report test (default: /usr/bin/chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ratchet-target}"
venv="$HOME/.cache/ratchet/venv"
export RATCHET_PYTHON="${RATCHET_PYTHON:-$venv/bin/python}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

step() { printf '\n==> %s\n' "$*"; }

# System packages: Chromium (report rendering test) and Mesa's lavapipe (software Vulkan,
# so the wgpu test has an adapter without a GPU).
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers libvulkan1)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Python venv with the real MLflow client and the safetensors reader.
# (About 2 minutes on first use.)
if ! "$RATCHET_PYTHON" -c 'import mlflow, safetensors, numpy' >/dev/null 2>&1; then
    source scripts/venv.sh
    ensure_venv "$venv" "mlflow, safetensors, numpy" mlflow safetensors numpy
    export RATCHET_PYTHON="$venv/bin/python"
fi

step "cargo test --release --workspace (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
cargo test --release --workspace --locked
