#!/usr/bin/env bash
# Peak resident memory of `ratchet train --algo dqn` (the bundled GOOGL data and defaults: one
# environment, a replay buffer of 1,000,000 transitions) against the bytes its replay buffer
# stores, one run per fill level. The buffer's promise (crates/agents/README.md): peak RSS
# stays within the stored bytes plus 150 MB at any fill level, checkpoints included.
#
#   scripts/replay_rss.sh                          # 100k, 400k and 1M transitions
#   STEPS="50000 200000" scripts/replay_rss.sh
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
STEPS="${STEPS:-100000 400000 1000000}"
cargo build --release --quiet
RATCHET="$CARGO_TARGET_DIR/release/ratchet"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%12s %12s %14s %14s %10s\n' transitions "stored MB" "peak RSS MB" "RSS - stored" "wall s"
for steps in $STEPS; do
    start=$(date +%s.%N)
    /usr/bin/time -f %M -o "$WORK/rss" \
        "$RATCHET" train --algo dqn --steps "$steps" --tracking-uri "$WORK/store-$steps" \
        >"$WORK/log" 2>&1 || { cat "$WORK/log"; exit 1; }
    wall=$(echo "$(date +%s.%N) - $start" | bc)
    # The stored transitions, from the last checkpoint's replay tensors: n of them, each of
    # 8 * observation_size + 9 bytes in memory (crates/agents/src/replay.rs).
    state=$(find "$WORK/store-$steps" -name state.safetensors -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
    stored=$(python3 - "$state" <<'PY'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
count, k = header["replay.observations"]["shape"]
print(count * (8 * k + 9))
PY
)
    rss_kb=$(cat "$WORK/rss")
    awk -v t="$steps" -v s="$stored" -v r="$rss_kb" -v w="$wall" 'BEGIN {
        printf "%12d %12.1f %14.1f %14.1f %10.1f\n", t, s / 1e6, r * 1024 / 1e6, (r * 1024 - s) / 1e6, w }'
    rm -rf "$WORK/store-$steps"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
