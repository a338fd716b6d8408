#!/usr/bin/env bash
# Throughput and per-trial overhead of `ratchet sweep`: the same sweep of TRIALS CartPole PPO
# trials (STEPS steps each) run sequentially (--workers 1) and on WORKERS workers (default:
# the number of cores), each into a fresh file store. Prints trials per minute for both and
# the overhead per trial beyond its own training: the time the sweep saw a trial take
# (process start to exit, as `summary.finished[].elapsed_s`) minus the training time
# `ratchet train` reported (`train_s`: first step to registration), i.e. process start,
# config parsing, store writes, the final evaluation and output. Target: under 200 ms.
#
# With RAY_ADDRESS=http://HEAD:8265 the sweep also runs through Ray's Jobs API, for the
# per-job overhead of that path.
#
#   scripts/sweep_overhead.sh                 # TRIALS=8 STEPS=2048 WORKERS=$(nproc)
#   RATCHET_BIN=target/release/ratchet scripts/sweep_overhead.sh   # an already built binary
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${TRIALS:-8}"
steps="${STEPS:-2048}"
workers="${WORKERS:-$(nproc)}"
if [ -n "${RATCHET_BIN:-}" ]; then
    ratchet="$(realpath "$RATCHET_BIN")"
else
    cargo build --release --quiet
    ratchet="$PWD/target/release/ratchet"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

seeds="$(seq -s, 0 $((trials - 1)))"
cat > "$work/overhead.toml" <<TOML
metric = "val/mean_return"
seeds = [$seeds]
[base]
run = { algo = "ppo", env = "cartpole", steps = $steps, experiment = "overhead" }
ppo = { n_steps = 256, n_epochs = 4 }
TOML

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
sweep() { # NAME ARGS...: runs the sweep into its own store, saves its JSON
    local name="$1"; shift
    local began ended
    began=$(date +%s.%N)
    "$ratchet" --tracking-uri "$work/$name" sweep "$work/overhead.toml" --json "$@" \
        > "$work/$name.json" 2> "$work/$name.log"
    ended=$(date +%s.%N)
    python3 - "$work/$name.json" "$began" "$ended" "$name" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
done = result["summary"]["finished"]
overhead = sorted(t["elapsed_s"] - t["train_s"] for t in done)
train = sum(t["train_s"] for t in done) / len(done)
print(f"{sys.argv[4]:>12}: {len(done)} trials in {wall:6.2f} s = {60 * len(done) / wall:6.1f} trials/min; "
      f"training {train * 1000:6.0f} ms a trial, overhead median {overhead[len(overhead) // 2] * 1000:5.0f} ms "
      f"(min {overhead[0] * 1000:.0f}, max {overhead[-1] * 1000:.0f})")
PY
}
process_start() {
    local began ended
    began=$(date +%s.%N)
    for _ in 1 2 3 4 5 6 7 8 9 10; do "$ratchet" --version > /dev/null; done
    ended=$(date +%s.%N)
    awk -v a="$began" -v b="$ended" 'BEGIN { printf "process start alone (ratchet --version): %.1f ms\n", (b - a) * 100 }'
}
sweep sequential --workers 1
sweep "workers-$workers" --workers "$workers"
if [ -n "${RAY_ADDRESS:-}" ]; then
    sweep ray --ray "$RAY_ADDRESS"
fi
process_start
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
