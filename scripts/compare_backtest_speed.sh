#!/usr/bin/env bash
# The 1M-bar SMA(10/50) crossover backtest in ratchet (criterion bench `backtest`), vectorbt
# and plain numpy, on the same prices, side by side: bars per second and ratios.
#
#   scripts/compare_backtest_speed.sh            # 10 timed runs of each peer
#   REPEAT=20 scripts/compare_backtest_speed.sh
#
# The peers live in their own venv (default $HOME/.cache/ratchet/backtest-peers-venv,
# override with BACKTEST_PEERS_VENV), created on first use with vectorbt and numpy from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same build as `cargo run --release` and scripts/test.sh: ./target unless set.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
venv="${BACKTEST_PEERS_VENV:-$HOME/.cache/ratchet/backtest-peers-venv}"
repeat="${REPEAT:-10}"

source scripts/venv.sh
ensure_venv "$venv" "vectorbt, numpy" 'vectorbt==1.2.0' numpy

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo bench --bench backtest -- --noplot sma_cross | tee "$log"
result="$(grep '^ratchet result:' "$log" | tail -1)"

PYTHONWARNINGS=ignore "$venv/bin/python" scripts/compare_backtest_speed.py \
    --repeat "$repeat" \
    --criterion-dir "$CARGO_TARGET_DIR/criterion/sma_cross" \
    --ratchet-result "$result"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
