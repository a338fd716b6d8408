#!/usr/bin/env bash
# Recomputes the reference values of crates/backtest/tests/stats.rs with numpy and scipy
# (scripts/stats_reference.py) and prints them as Rust constants, to paste into the test.
#
#   scripts/stats_reference.sh
#
# The venv (default $HOME/.cache/ratchet/stats-venv, override with STATS_VENV) is created
# on first use with numpy and scipy from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${STATS_VENV:-$HOME/.cache/ratchet/stats-venv}"
source scripts/venv.sh
ensure_venv "$venv" "numpy, scipy" 'numpy==2.4.6' 'scipy==1.17.1'
"$venv/bin/python" scripts/stats_reference.py
