#!/usr/bin/env bash
# Makes ~/.cache/ratchet/ray-venv (or $1) with the pinned Ray of scripts/requirements-ray.txt
# (about 400 MB, two minutes on first use; nothing when it is already there) and prints its
# python. The Ray test of `ratchet sweep` (tests/sweep_ray.rs) runs against it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
venv="${1:-$HOME/.cache/ratchet/ray-venv}"
ensure_venv "$venv" "ray.dashboard" -r scripts/requirements-ray.txt
echo "$venv/bin/python"
