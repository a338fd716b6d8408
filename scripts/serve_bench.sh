#!/usr/bin/env bash
# `ratchet serve` under load, side by side with `mlflow models serve`, in one run on this
# machine (wrk, the load generator, shares the cores with the server under test):
#
#   1. single-bar POST /v1/bars at 64 connections (each request one symbol, one bar, one
#      decision), after a warm-up that fills every session's feature window;
#   2. batched requests of BATCH_SYMBOLS symbols (one bar each) at 64 connections;
#   3. swap latency: from `ratchet models promote` to the first decision by the new version,
#      with --poll-seconds 1;
#   4. `mlflow models serve` (its default single uvicorn worker) with an equivalent pyfunc
#      model (112 -> 64 -> 64 -> 3 MLP in numpy, scripts/serve_bench/mlp_model.py) at 64
#      connections, one observation per request.
#
#   scripts/serve_bench.sh            # DURATION=20 CONNECTIONS=64 BATCH_SYMBOLS=100
# Needs wrk (apt-get install wrk) and the test venv (scripts/test.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-20}"
connections="${CONNECTIONS:-64}"
batch="${BATCH_SYMBOLS:-100}"
python="${RATCHET_PYTHON:-$HOME/.cache/ratchet/venv/bin/python}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
ratchet="$PWD/target/release/ratchet"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
store="$work/mlruns"
r() { RUST_LOG=warn "$ratchet" --tracking-uri "$store" "$@"; }

echo "training two small versions to serve ..."
r train --steps 2048 --seed 1 --model-name bench --json > /dev/null 2>&1
r train --steps 2048 --seed 2 --model-name bench --json > /dev/null 2>&1
r models promote models:/bench/1 --alias production > /dev/null
port="$(free_port)"
r serve models:/bench@production --listen "127.0.0.1:$port" --poll-seconds 1 > "$work/serve.out" 2> "$work/serve.log" &
pids+=($!)
until grep -q listening "$work/serve.out" 2>/dev/null; do sleep 0.1; done
url="http://127.0.0.1:$port"

report() { # LABEL DECISIONS_PER_REQUEST WRK_OUTPUT
    local rps p50 p99
    rps="$(awk '/Requests\/sec/ {print $2}' "$3")"
    p50="$(awk '$1 == "50.000%" {print $2}' "$3")"
    p99="$(awk '$1 == "99.000%" {print $2}' "$3")"
    printf '%-44s %12.0f req/s %12.0f decisions/s   p50 %-9s p99 %s\n' \
        "$1" "$rps" "$(echo "$rps * $2" | bc -l)" "$p50" "$p99"
    grep -E "Non-2xx|Socket errors" "$3" || true
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "warming up 2 x 200 sessions ..."
SYMBOLS=200 wrk -t2 -c"$connections" -d8s -s scripts/serve_bench/bars.lua "$url" > /dev/null
SYMBOLS=200 wrk -t2 -c"$connections" -d"${duration}s" --latency -s scripts/serve_bench/bars.lua "$url" > "$work/single.txt"
SYMBOLS=1000 BATCH="$batch" wrk -t2 -c"$connections" -d8s -s scripts/serve_bench/bars.lua "$url" > /dev/null
SYMBOLS=1000 BATCH="$batch" wrk -t2 -c"$connections" -d"${duration}s" --latency -s scripts/serve_bench/bars.lua "$url" > "$work/batch.txt"

# Swap latency: promote version 2 and time the first decision that names it.
bar_at() { printf '{"symbol":"SWAP","bars":[{"timestamp":%d,"open":100,"high":101,"low":99,"close":100.5,"volume":1}]}' "$1"; }
t=1
while ! curl -s "$url/v1/bars" -d "$(bar_at $t)" | grep -q '"warming_up":false'; do t=$((t + 1)); done
began=$(date +%s.%N)
r models promote models:/bench/2 --alias production > /dev/null
until curl -s "$url/v1/bars" -d "$(bar_at $t)" | grep -q '"version":2'; do t=$((t + 1)); done
swap_s="$(echo "$(date +%s.%N) - $began" | bc -l)"
kill "${pids[0]}"

# The Python reference: mlflow models serve with an equivalent network.
"$python" scripts/serve_bench/mlp_model.py "$work/mlp" > /dev/null 2>&1
mport="$(free_port)"
"$(dirname "$python")/mlflow" models serve -m "$work/mlp" --env-manager local -h 127.0.0.1 -p "$mport" > "$work/mlflow.log" 2>&1 &
pids+=($!)
until curl -sf "http://127.0.0.1:$mport/ping" > /dev/null; do sleep 0.5; done
wrk -t2 -c"$connections" -d5s -s scripts/serve_bench/invocations.lua "http://127.0.0.1:$mport" > /dev/null
wrk -t2 -c"$connections" -d"${duration}s" --latency -s scripts/serve_bench/invocations.lua "http://127.0.0.1:$mport" > "$work/mlflow.txt"

echo
echo "$(nproc) cores, $connections connections, ${duration}s each; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
report "ratchet serve, 1 bar per request" 1 "$work/single.txt"
report "ratchet serve, $batch symbols per request" "$batch" "$work/batch.txt"
report "mlflow models serve, 1 observation/request" 1 "$work/mlflow.txt"
ratchet_rps="$(awk '/Requests\/sec/ {print $2}' "$work/single.txt")"
mlflow_rps="$(awk '/Requests\/sec/ {print $2}' "$work/mlflow.txt")"
printf 'single-request ratio ratchet / mlflow: %.1fx\n' "$(echo "$ratchet_rps / $mlflow_rps" | bc -l)"
printf 'swap latency (promote -> first decision by the new version, --poll-seconds 1): %.2f s\n' "$swap_s"
