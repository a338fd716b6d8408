#!/usr/bin/env bash
# How long `ratchet retrain` takes to find that there is nothing to do on a model with
# VERSIONS versions (default 1,000), whole process included: (a) the same inputs again,
# found by the retrain key among the versions' tags (the matching version is the newest, so
# every version is listed), and (b) a data file with no bar past the source's last one.
# Neither may load a checkpoint.
#
#   scripts/retrain_nothing_new.sh                     # 1,000 versions, 20 timed calls of each
#   VERSIONS=100 RUNS=5 scripts/retrain_nothing_new.sh
#   STORE=/tmp/retrain-1k scripts/retrain_nothing_new.sh   # keep (and reuse) the store
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VERSIONS="${VERSIONS:-1000}"
RUNS="${RUNS:-20}"
cargo build --release --quiet
RATCHET="$CARGO_TARGET_DIR/release/ratchet"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STORE="${STORE:-$WORK/store}"
export RATCHET_CACHE_DIR="$WORK/cache"
export MLFLOW_TRACKING_URI="$STORE/mlruns"

# The bundled GOOGL bars cut in two: the versions know the first 1,800 bars.
mkdir -p "$STORE"
head -1801 data/STOCKS_GOOGL.csv >"$STORE/part.csv"
cp data/STOCKS_GOOGL.csv "$STORE/whole.csv"
printf '[retrain]\nvalidation_bars = 200\ntest_bars = 100\n' >"$STORE/retrain.toml"
retrain() {
    "$RATCHET" retrain models:/g@production --data "$1" --config "$STORE/retrain.toml" --steps 2048 --json
}

if [ ! -e "$STORE/.complete" ]; then
    echo "building a store with $VERSIONS versions of model g (once)…" >&2
    "$RATCHET" train --data "$STORE/part.csv" --steps 2048 --model-name g >/dev/null 2>&1
    "$RATCHET" models promote models:/g/1 >/dev/null
    for _ in $(seq 2 $((VERSIONS - 1))); do
        "$RATCHET" train --from models:/g/1 --data "$STORE/part.csv" --steps 2048 >/dev/null 2>&1
    done
    set +e
    retrain "$STORE/whole.csv" >/dev/null 2>&1
    code=$?
    set -e
    [ "$code" = 0 ] || [ "$code" = 4 ] || { echo "the retrain that makes the last version exited $code" >&2; exit 1; }
    touch "$STORE/.complete"
fi
count=$("$RATCHET" models list g --json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))')

cpu="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1) (family $(sed -n 's/^cpu family\s*: //p' /proc/cpuinfo | head -1) model $(sed -n 's/^model\s*: //p' /proc/cpuinfo | head -1)), $(nproc) cores"
echo "== $cpu, load average $(cut -d' ' -f1-3 /proc/loadavg), $count versions"
for case in "same inputs again:$STORE/whole.csv" "no new bar:$STORE/part.csv"; do
    name=${case%%:*}
    data=${case#*:}
    times=()
    for _ in $(seq "$RUNS"); do
        start=$(date +%s%N)
        set +e
        retrain "$data" >"$WORK/out.json" 2>"$WORK/err"
        code=$?
        set -e
        end=$(date +%s%N)
        [ "$code" = 3 ] || { echo "$name: exit $code, expected 3 (nothing new)"; cat "$WORK/err"; exit 1; }
        times+=($(((end - start) / 1000)))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" -v runs="$RUNS" '
        { t[NR] = $1 }
        END { printf "%-18s %d calls: median %.1f ms, min %.1f ms, max %.1f ms\n", name, runs, t[int((NR + 1) / 2)] / 1000, t[1] / 1000, t[NR] / 1000 }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
