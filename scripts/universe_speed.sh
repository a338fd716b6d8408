#!/usr/bin/env bash
# A universe at scale, side by side with one instrument in the same run: PPO training
# throughput (env steps per second) over a generated 500-symbol x 10-year daily universe
# (1.3M bars) against the bundled GOOGL file with the default config, the peak memory of
# each run, and from them the memory one more bar of a universe costs during training. The
# target (issue: universes): the universe at 90% or more of the single-instrument rate.
#
#   scripts/universe_speed.sh                    # 200k steps, 3 rounds
#   STEPS=100000 ROUNDS=2 scripts/universe_speed.sh
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
STEPS="${STEPS:-200000}"
ROUNDS="${ROUNDS:-3}"
cargo build --release --quiet
RATCHET="${RATCHET_BIN:-$CARGO_TARGET_DIR/release/ratchet}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export RATCHET_CACHE_DIR="$WORK/cache"

python3 scripts/make_universe_demo.py --symbols 500 --out "$WORK/u500.csv"
printf '[data]\nfiles = ["%s"]\n' "$WORK/u500.csv" >"$WORK/universe.toml"
universe_bars=$(($(wc -l <"$WORK/u500.csv") - 1))
single_bars=$(($(wc -l <data/STOCKS_GOOGL.csv) - 1))

echo "== $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== PPO, default config, $STEPS steps; single: $single_bars GOOGL bars; universe: 500 symbols, $universe_bars bars"
printf '%6s %10s %14s %12s %8s\n' round data "env steps/s" "peak RSS MB" "wall s"
declare -A best_rate best_rss
for round in $(seq "$ROUNDS"); do
    for data in single universe; do
        args=()
        [ "$data" = universe ] && args=(--config "$WORK/universe.toml")
        /usr/bin/time -f %M -o "$WORK/rss" \
            "$RATCHET" --tracking-uri "$WORK/store" train --steps "$STEPS" --json "${args[@]}" \
            >"$WORK/out.json" 2>"$WORK/err" || { cat "$WORK/err"; exit 1; }
        # The training loop's own rate (the run's time/steps_per_second, median over its
        # updates): not the data preparation, checkpoints or the final evaluation, which
        # grow with the universe and are reported apart (wall s).
        rate=$(python3 - "$WORK/out.json" "$WORK/store" <<'PY'
import glob, json, statistics, sys
run = json.load(open(sys.argv[1]))["run_id"]
[path] = glob.glob(f"{sys.argv[2]}/*/{run}/metrics/time/steps_per_second")
print(round(statistics.median(float(line.split()[1]) for line in open(path))))
PY
)
        wall=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["wall_time_s"], 1))' "$WORK/out.json")
        rss=$(($(cat "$WORK/rss") / 1024))
        printf '%6s %10s %14s %12s %8s\n' "$round" "$data" "$rate" "$rss" "$wall"
        if [ "${best_rate[$data]:-0}" -lt "$rate" ]; then best_rate[$data]=$rate; fi
        if [ -z "${best_rss[$data]:-}" ] || [ "${best_rss[$data]}" -gt "$rss" ]; then best_rss[$data]=$rss; fi
    done
done
python3 - "${best_rate[single]}" "${best_rate[universe]}" "${best_rss[single]}" "${best_rss[universe]}" "$single_bars" "$universe_bars" <<'PY'
import sys
rate_single, rate_universe, rss_single, rss_universe, bars_single, bars_universe = map(int, sys.argv[1:])
print(f"best rates: universe {rate_universe} / single {rate_single} = {rate_universe / rate_single:.1%}")
per_bar = (rss_universe - rss_single) * 1024 * 1024 / (bars_universe - bars_single)
print(f"memory per universe bar during training: ({rss_universe} - {rss_single} MB) / "
      f"{bars_universe - bars_single} bars = {per_bar:.0f} bytes")
PY
