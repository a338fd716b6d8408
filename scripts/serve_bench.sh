#!/usr/bin/env bash
# `ratchet serve` under load, side by side with `mlflow models serve`, in one run on this
# machine. The server under test runs on core 0 and wrk (one thread) on core 1 (`taskset`), so
# the load generator does not take the server's CPU; PIN=0 runs both unpinned (wrk with 2
# threads), as they would share a 2-core machine. Sections (SECTIONS, default all, in order):
#
#   single   single-bar POST /v1/bars at 64 connections (each request one symbol, one bar, one
#            decision), after a warm-up that fills every session's feature window, with the
#            server's RSS sampled every RSS_EVERY seconds;
#   batch    batched requests of BATCH_SYMBOLS symbols (one bar each) at 64 connections;
#   swap     swap latency: from `ratchet models promote` to the first decision by the new
#            version, with --poll-seconds 1;
#   slo      `single` again on a fresh server with an SLO file (60 s window, error rate and
#            p99 latency limits: scripts/serve_bench/slo.toml), RSS sampled the same way;
#   sessions the memory of a session: RSS of a fresh server before and after SESSIONS
#            symbols (default 10,000) each took 300 bars (a session's size stops growing after
#            about 250 with the default features), per session;
#   mlflow   `mlflow models serve` (its default single uvicorn worker) with an equivalent
#            pyfunc model (112 -> 64 -> 64 -> 3 MLP in numpy, scripts/serve_bench/mlp_model.py)
#            at 64 connections, one observation per request;
#   outside  `single` again on a version whose features also join an outside source (`vix`,
#            one column, market-wide, missing = "last"), each bar carrying its value in
#            `"external"`;
#   feast    `single` again on a version over a Feast view (`[[features.feast]]`) served with
#            --feast-online from a local `feast serve` (one worker, its default; not pinned)
#            that holds a row for every symbol, so every request asks Feast; then Feast's own
#            /get-online-features alone at the same load. Needs the Feast venv
#            (scripts/feast_venv.sh); skipped without it.
#
#   scripts/serve_bench.sh    # DURATION=20 CONNECTIONS=64 BATCH_SYMBOLS=100 RSS_EVERY=5
#   SECTIONS="single slo" DURATION=300 scripts/serve_bench.sh    # RSS over 5 minutes
#   RATCHET_BIN=/path/to/ratchet scripts/serve_bench.sh           # another build
# Needs wrk (apt-get install wrk) and the test venv (scripts/test.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-20}"
connections="${CONNECTIONS:-64}"
batch="${BATCH_SYMBOLS:-100}"
if [ "${PIN:-1}" = 1 ]; then
    server_cpu=(taskset -c 0) load_cpu=(taskset -c 1) threads=1
else
    server_cpu=() load_cpu=() threads=2
fi
load() { "${load_cpu[@]}" wrk -t"$threads" -c"$connections" "$@"; }
python="${RATCHET_PYTHON:-$HOME/.cache/ratchet/venv/bin/python}"
command -v wrk >/dev/null || { echo "error: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
# RATCHET_BIN: a ratchet binary to measure instead of building this checkout's.
if [ -z "${RATCHET_BIN:-}" ]; then cargo build --release --quiet; fi
ratchet="${RATCHET_BIN:-$PWD/target/release/ratchet}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
store="$work/mlruns"
r() { RUST_LOG=warn "$ratchet" --tracking-uri "$store" "$@"; }

sections=" ${SECTIONS:-single batch swap slo sessions mlflow outside feast} "
has() { [[ "$sections" == *" $1 "* ]]; }
rss_every="${RSS_EVERY:-5}"

echo "training two small versions to serve ..."
r train --steps 2048 --seed 1 --model-name bench --json > /dev/null 2>&1
r train --steps 2048 --seed 2 --model-name bench --json > /dev/null 2>&1
r models promote models:/bench/1 --alias production > /dev/null

start_server() { # LABEL ARGS...: starts `ratchet serve` on core 0; sets $url and $server_pid
    local label="$1" port
    shift
    port="$(free_port)"
    RUST_LOG=warn "${server_cpu[@]}" "$ratchet" --tracking-uri "$store" serve "${model:-models:/bench@production}" \
        --listen "127.0.0.1:$port" --poll-seconds 1 "$@" > "$work/$label.out" 2> "$work/$label.log" &
    server_pid=$!
    pids+=("$server_pid")
    until grep -q listening "$work/$label.out" 2>/dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/$label.log" >&2; exit 1; }
        sleep 0.1
    done
    url="http://127.0.0.1:$port"
}
report() { # LABEL DECISIONS_PER_REQUEST WRK_OUTPUT
    local rps p50 p99
    rps="$(awk '/Requests\/sec/ {print $2}' "$3")"
    p50="$(awk '$1 == "50%" {print $2}' "$3")"
    p99="$(awk '$1 == "99%" {print $2}' "$3")"
    printf '%-44s %12.0f req/s %12.0f decisions/s   p50 %-9s p99 %s\n' \
        "$1" "$rps" "$(echo "$rps * $2" | bc -l)" "$p50" "$p99"
    grep -E "Non-2xx|Socket errors" "$3" || true
}
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
sample_rss() { # PID OUT: the RSS in MB every $rss_every seconds until killed
    while kill -0 "$1" 2>/dev/null; do rss_mb "$1" >> "$2"; echo >> "$2"; sleep "$rss_every"; done
}
single_load() { # LABEL: warm-up, then the measured single-bar run with RSS samples
    SYMBOLS=200 load -d8s -s scripts/serve_bench/bars.lua "$url" > /dev/null
    : > "$work/$1.rss"
    sample_rss "$server_pid" "$work/$1.rss" &
    local sampler=$!
    SYMBOLS=200 load -d"${duration}s" --latency -s scripts/serve_bench/bars.lua "$url" > "$work/$1.txt"
    kill "$sampler"
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start_server plain
if has single; then
    echo "single-bar requests, no SLO ..."
    single_load single
fi
if has batch; then
    # Batches: each thread's symbols must outnumber the bars it has in flight (connections x
    # batch), so 8,000 symbols per thread, warmed up first (142 bars each, default features).
    echo "warming up 8000 sessions per wrk thread ..."
    SYMBOLS=8000 BATCH="$batch" load -d25s -s scripts/serve_bench/bars.lua "$url" > /dev/null
    SYMBOLS=8000 BATCH="$batch" load -d"${duration}s" --latency -s scripts/serve_bench/bars.lua "$url" > "$work/batch.txt"
fi
if has swap; then
    # Swap latency: promote version 2 and time the first decision that names it.
    bar_at() { # a bar of a gently oscillating price at time $1
        local p
        p="$(echo "100 + 5 * s($1 / 7)" | bc -l)"
        printf '{"symbol":"SWAP","bars":[{"timestamp":%d,"open":%.4f,"high":%.4f,"low":%.4f,"close":%.4f,"volume":1}]}' \
            "$((1500000000 + $1 * 60))" "$p" "$(echo "$p + 1" | bc -l)" "$(echo "$p - 1" | bc -l)" "$(echo "$p + 0.3" | bc -l)"
    }
    t=1
    until curl -s "$url/v1/bars" -d "$(bar_at $t)" | grep -q '"warming_up":false'; do
        t=$((t + 1))
        [ "$t" -lt 1000 ] || { echo "error: the SWAP session never finished warming up" >&2; exit 1; }
    done
    began=$(date +%s.%N)
    r models promote models:/bench/2 --alias production > /dev/null
    until curl -s "$url/v1/bars" -d "$(bar_at $t)" | grep -q '"version":2'; do
        t=$((t + 1))
        [ "$t" -lt 100000 ] || { echo "error: version 2 never answered" >&2; exit 1; }
    done
    swap_s="$(echo "$(date +%s.%N) - $began" | bc -l)"
fi
kill "$server_pid"

if has slo; then
    echo "single-bar requests, with an SLO ..."
    start_server slo --slo scripts/serve_bench/slo.toml
    single_load slo
    kill "$server_pid"
fi

if has sessions; then
    sessions="${SESSIONS:-10000}"
    echo "filling $sessions sessions with 300 bars each ..."
    start_server sessions --max-sessions "$sessions"
    before="$(rss_mb "$server_pid")"
    # 10 symbols x 300 bars per request (3,000 bars, about 350 KB: under the 1 MiB body limit).
    "$python" - "$url" "$sessions" <<'PY'
import json, math, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
def bars(s):
    out = []
    for t in range(300):
        p = 100 + 10 * math.sin(t / 50 + s)
        out.append({"timestamp": 1500000000 + 60 * t, "open": p, "high": p + 1, "low": p - 1, "close": p + 0.5, "volume": 1000})
    return out
for first in range(0, n, 10):
    body = json.dumps([{"symbol": f"M{s}", "bars": bars(s)} for s in range(first, min(first + 10, n))]).encode()
    urllib.request.urlopen(urllib.request.Request(url + "/v1/bars", body, {"Content-Type": "application/json"})).read()
PY
    sleep 1
    after="$(rss_mb "$server_pid")"
    curl -s "$url/v1/bars" -d '{"symbol":"ONE-TOO-MANY","bars":[{"timestamp":1,"open":1,"high":1,"low":1,"close":1,"volume":1}]}' \
        -o /dev/null -w '%{http_code}' > "$work/too_many.txt"
    kill "$server_pid"
fi

if has mlflow; then
    # The Python reference: mlflow models serve with an equivalent network.
    "$python" scripts/serve_bench/mlp_model.py "$work/mlp" > /dev/null 2>&1
    mport="$(free_port)"
    # The venv's bin on PATH: `mlflow models serve` starts `uvicorn` from there.
    PATH="$(dirname "$python"):$PATH" "${server_cpu[@]}" mlflow models serve -m "$work/mlp" --env-manager local \
        -h 127.0.0.1 -p "$mport" > "$work/mlflow.log" 2>&1 &
    pids+=($!)
    until curl -sf "http://127.0.0.1:$mport/ping" > /dev/null; do
        kill -0 "${pids[-1]}" 2>/dev/null || { tail "$work/mlflow.log" >&2; exit 1; }
        sleep 0.5
    done
    load -d5s -s scripts/serve_bench/invocations.lua "http://127.0.0.1:$mport" > /dev/null
    load -d"${duration}s" --latency -s scripts/serve_bench/invocations.lua "http://127.0.0.1:$mport" > "$work/mlflow.txt"
fi

if has outside; then
    echo "outside values: a version over a market-wide daily source, each bar carrying its value ..."
    awk 'BEGIN { print "timestamp,close"
                 for (d = 0; d < 3653; d++) printf "%d,%.4f\n", 1230768000 + d * 86400, 15 + 3 * sin(d / 20) }' > "$work/vix.csv"
    printf '[[features.external]]\nname = "vix"\nsource = "%s"\ntimestamp = "timestamp"\ncolumns = ["close"]\nmax_staleness = "5d"\nmissing = "last"\n' \
        "$work/vix.csv" > "$work/outside.toml"
    r train --config "$work/outside.toml" --steps 2048 --seed 1 --model-name bench-outside --json > /dev/null 2>&1
    r models promote models:/bench-outside/1 --alias production > /dev/null
    model=models:/bench-outside@production start_server outside
    export EXTERNAL=1
    single_load outside
    unset EXTERNAL
    kill "$server_pid"
fi

feast_python="${RATCHET_FEAST_PYTHON:-$HOME/.cache/ratchet/feast-venv/bin/python}"
if has feast && [ ! -x "$feast_python" ]; then
    echo "feast: skipped, no Feast venv at $feast_python (scripts/feast_venv.sh makes it)"
    sections="${sections/ feast / }"
fi
if has feast; then
    echo "--feast-online: a Feast repository, a version over its view, feast serve ..."
    awk 'BEGIN { print "symbol,event_ms,created_ms,score"
                 for (d = 0; d < 3653; d++) { t = (1230768000 + d * 86400) * 1000; printf "STOCKS_GOOGL,%.0f,%.0f,%.4f\n", t, t, sin(d / 20) } }' \
        > "$work/feast_rows.csv"
    "$feast_python" tests/feast/online.py "$work/feature_repo" "$work/feast_rows.csv"
    printf '[[features.feast]]\nrepo = "%s"\nviews = ["level:score"]\nmissing = "last"\n' "$work/feature_repo" > "$work/feast.toml"
    r train --config "$work/feast.toml" --steps 2048 --seed 1 --model-name bench-feast --json > /dev/null 2>&1
    r models promote models:/bench-feast/1 --alias production > /dev/null
    fport="$(free_port)"
    (cd "$work/feature_repo" && exec "$(dirname "$feast_python")/feast" serve -p "$fport" --no-access-log) > "$work/feast.log" 2>&1 &
    pids+=($!)
    until curl -sf "http://127.0.0.1:$fport/health" > /dev/null; do
        kill -0 "${pids[-1]}" 2>/dev/null || { tail "$work/feast.log" >&2; exit 1; }
        sleep 0.5
    done
    # A row for every symbol the load sends (T<thread>-<n>), stamped before its first bar.
    "$feast_python" - "http://127.0.0.1:$fport" "$threads" <<'PY'
import json, sys, urllib.request
url, threads = sys.argv[1], int(sys.argv[2])
symbols = [f"T{t}-{n}" for t in range(threads) for n in range(200)]
stamp = ["2020-01-01T00:00:00Z"] * len(symbols)
df = {"symbol": symbols, "event_timestamp": stamp, "created": stamp, "score": [0.5] * len(symbols)}
body = json.dumps({"feature_view_name": "level", "df": df}).encode()
urllib.request.urlopen(urllib.request.Request(url + "/write-to-online-store", body, {"Content-Type": "application/json"})).read()
PY
    model=models:/bench-feast@production start_server feast --feast-online "http://127.0.0.1:$fport" --feast-timeout 5s
    single_load feast
    # One connection: a request's own time, without the queue in front of Feast. bars.lua
    # stamps bars from the second it starts, so it starts in the next one.
    sleep 1
    SYMBOLS=200 "${load_cpu[@]}" wrk -t1 -c1 -d10s --latency -s scripts/serve_bench/bars.lua "$url" > "$work/feast_c1.txt"
    kill "$server_pid"
    # Feast alone: the question --feast-online asks for one bar (one symbol, one feature).
    printf '%s\n' 'wrk.method = "POST"' 'wrk.headers["Content-Type"] = "application/json"' \
        "wrk.body = '{\"features\":[\"level:score\"],\"entities\":{\"symbol\":[\"T0-1\"]},\"full_feature_names\":true}'" \
        > "$work/feast.lua"
    load -d5s -s "$work/feast.lua" "http://127.0.0.1:$fport/get-online-features" > /dev/null
    load -d"${duration}s" --latency -s "$work/feast.lua" "http://127.0.0.1:$fport/get-online-features" > "$work/feast_alone.txt"
    "${load_cpu[@]}" wrk -t1 -c1 -d10s --latency -s "$work/feast.lua" "http://127.0.0.1:$fport/get-online-features" > "$work/feast_alone_c1.txt"
fi

echo
echo "$(nproc) cores (pinned: ${PIN:-1}), $connections connections, ${duration}s each; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
has single && report "ratchet serve, 1 bar per request" 1 "$work/single.txt"
has slo && report "ratchet serve, 1 bar per request, with SLO" 1 "$work/slo.txt"
has batch && report "ratchet serve, $batch symbols per request" "$batch" "$work/batch.txt"
has mlflow && report "mlflow models serve, 1 observation/request" 1 "$work/mlflow.txt"
has outside && report "ratchet serve, 1 bar + \"external\" value/request" 1 "$work/outside.txt"
has feast && report "ratchet serve --feast-online, 1 bar/request" 1 "$work/feast.txt"
has feast && report "feast serve alone, 1 symbol x 1 feature/req" 1 "$work/feast_alone.txt"
has feast && report "ratchet serve --feast-online, 1 connection" 1 "$work/feast_c1.txt"
has feast && report "feast serve alone, 1 connection" 1 "$work/feast_alone_c1.txt"
if has single && has outside; then
    printf 'with "external" / plain: %.3f of the decisions/s\n' \
        "$(echo "$(awk '/Requests\/sec/ {print $2}' "$work/outside.txt") / $(awk '/Requests\/sec/ {print $2}' "$work/single.txt")" | bc -l)"
fi
has single && echo "RSS MB every ${rss_every}s, no SLO:   $(tr '\n' ' ' < "$work/single.rss")"
has slo && echo "RSS MB every ${rss_every}s, with SLO: $(tr '\n' ' ' < "$work/slo.rss")"
if has single && has slo; then
    printf 'with SLO / without: %.3f of the decisions/s\n' \
        "$(echo "$(awk '/Requests\/sec/ {print $2}' "$work/slo.txt") / $(awk '/Requests\/sec/ {print $2}' "$work/single.txt")" | bc -l)"
fi
if has sessions; then
    printf 'sessions: RSS %s MB before, %s MB with %s full sessions: %.1f KB per session; the next symbol got HTTP %s\n' \
        "$before" "$after" "$sessions" "$(echo "($after - $before) * 1024 / $sessions" | bc -l)" "$(cat "$work/too_many.txt")"
fi
if has single && has mlflow; then
    ratchet_rps="$(awk '/Requests\/sec/ {print $2}' "$work/single.txt")"
    mlflow_rps="$(awk '/Requests\/sec/ {print $2}' "$work/mlflow.txt")"
    printf 'single-request ratio ratchet / mlflow: %.1fx\n' "$(echo "$ratchet_rps / $mlflow_rps" | bc -l)"
fi
has swap && printf 'swap latency (promote -> first decision by the new version, --poll-seconds 1): %.2f s\n' "$swap_s"
exit 0
