#!/usr/bin/env bash
# Makes ~/.cache/ratchet/feast-venv (or $1) with the pinned Feast and MLflow client of
# scripts/requirements-feast.txt (its own venv: Feast pins another pandas than MLflow; about a
# minute on first use, nothing when it is already there) and prints its python. The Feast
# tests (tests/feast.rs, tests/feast_consume.rs, tests/feast_mlflow.rs) and
# scripts/compare_external_join.sh (pandas) run on it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
venv="${1:-$HOME/.cache/ratchet/feast-venv}"
ensure_venv "$venv" "feast, mlflow, pandas, pyarrow" -r scripts/requirements-feast.txt
echo "$venv/bin/python"
