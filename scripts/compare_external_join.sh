#!/usr/bin/env bash
# The point-in-time join of 10 outside columns onto bars, side by side on the same Parquet
# files in one run: Ratchet (crates/data/examples/external_join.rs: the bars read and
# validated as a universe, the source read and checked, then ExternalSource::join per symbol
# in parallel), polars' join_asof and pandas' merge_asof (both backward, inclusive, 5-day
# tolerance, like max_staleness = "5d"). Each tool runs as its own process under
# /usr/bin/time -v, three times; the best run's times and its peak memory are shown, with the
# sum of the joined values (equal sums: the same join).
#
#   1m_bars:   1,000,000 one-minute bars of one symbol; a market-wide source every 5 minutes
#              (200,001 rows).
#   universe:  500 symbols x 2,520 daily bars (1.26M); a per-symbol source, one row per symbol
#              and day, stamped 8 hours before the bar (1.26M rows).
#
#   scripts/compare_external_join.sh
#   KEEP_DIR=/tmp/join scripts/compare_external_join.sh    # and keep the files there
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
POLARS_VENV="${POLARS_VENV:-$HOME/.cache/ratchet/polars-venv}"
source scripts/venv.sh
ensure_venv "$POLARS_VENV" polars "polars==1.44.2"
pandas_python="$(bash scripts/feast_venv.sh)"
cargo build --quiet --release --workspace --example external_join
ratchet="$CARGO_TARGET_DIR/release/examples/external_join"
if [ -n "${KEEP_DIR:-}" ]; then
    WORK="$KEEP_DIR"  # keep the generated files there
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

"$pandas_python" - "$WORK" <<'PY'
import sys
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
rng = np.random.default_rng(7)
MINUTE, DAY = 60_000, 86_400_000
START = 1_577_836_800_000  # 2020-01-01

def ts(ms):
    return pa.array(ms, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))

def bars(symbols, times):
    n = len(times)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    opn = np.concatenate([[100.0], close[:-1]])
    return pa.table({
        "timestamp": ts(times), "symbol": pa.array(symbols),
        "open": opn, "high": np.maximum(opn, close) * 1.001, "low": np.minimum(opn, close) * 0.999,
        "close": close, "volume": rng.uniform(1e3, 2e3, n),
    })

def source(times, symbols=None):
    cols = {"event_timestamp": ts(times)}
    if symbols is not None:
        cols["symbol"] = pa.array(symbols)
    for i in range(10):
        cols[f"c{i}"] = rng.normal(0, 1, len(times))
    return pa.table(cols)

n = 1_000_000
t = START + np.arange(n, dtype=np.int64) * MINUTE
pq.write_table(bars(["S000"] * n, t), f"{out}/1m_bars.parquet")
# From 3 minutes before the first bar, every 5 minutes.
s = START - 3 * MINUTE + np.arange(200_001, dtype=np.int64) * 5 * MINUTE
pq.write_table(source(s), f"{out}/1m_source.parquet")

syms, days = 500, 2520
names = np.repeat([f"S{i:03}" for i in range(syms)], days)
t = np.tile(START + np.arange(days, dtype=np.int64) * DAY + 21 * 3_600_000, syms)
order = np.argsort(t, kind="stable")  # long format in time order, as a data vendor's file
pq.write_table(bars(names, t).take(order), f"{out}/universe_bars.parquet")
pq.write_table(source(t - 8 * 3_600_000, names).take(order), f"{out}/universe_source.parquet")
PY

cat > "$WORK/polars_join.py" <<'PY'
import sys, time
import polars as pl
bars_path, source_path, by = sys.argv[1], sys.argv[2], sys.argv[3] == "--by-symbol"
cols = [f"c{i}" for i in range(10)]
t = time.perf_counter()
bars = pl.read_parquet(bars_path)
source = pl.read_parquet(source_path)
read = time.perf_counter() - t
t = time.perf_counter()
out = bars.sort("timestamp").join_asof(
    source.sort("event_timestamp"), left_on="timestamp", right_on="event_timestamp",
    by="symbol" if by else None, strategy="backward", tolerance="5d")
join = time.perf_counter() - t
kept = out.filter(pl.col("c0").is_not_null())
total = sum(kept[c].sum() for c in cols)
print(f"read {read:.3f} s, join {join:.3f} s; {out.height} bars, {kept.height} kept, sum {total:.6e}")
PY

cat > "$WORK/pandas_join.py" <<'PY'
import sys, time
import pandas as pd
bars_path, source_path, by = sys.argv[1], sys.argv[2], sys.argv[3] == "--by-symbol"
cols = [f"c{i}" for i in range(10)]
t = time.perf_counter()
bars = pd.read_parquet(bars_path)
source = pd.read_parquet(source_path)
read = time.perf_counter() - t
t = time.perf_counter()
out = pd.merge_asof(
    bars.sort_values("timestamp", kind="stable"), source.sort_values("event_timestamp", kind="stable"),
    left_on="timestamp", right_on="event_timestamp", by="symbol" if by else None,
    direction="backward", tolerance=pd.Timedelta("5D"))
join = time.perf_counter() - t
kept = out[out["c0"].notna()]
total = sum(kept[c].sum() for c in cols)
print(f"read {read:.3f} s, join {join:.3f} s; {len(out)} bars, {len(kept)} kept, sum {total:.6e}")
PY

# run LABEL CMD...: three runs; the line of the one with the shortest join, and its peak RSS.
run() {
    local label="$1" best="" best_join=""
    shift
    for _ in 1 2 3; do
        /usr/bin/time -v "$@" >"$WORK/out" 2>"$WORK/time" || { cat "$WORK/out" "$WORK/time"; exit 1; }
        local line join rss
        line=$(tail -1 "$WORK/out")
        join=$(sed -n 's/.*join \([0-9.]*\) s.*/\1/p' <<<"$line")
        rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time")
        if [ -z "$best_join" ] || awk "BEGIN{exit !($join < $best_join)}"; then
            best_join=$join
            best="$line; peak $((rss / 1024)) MiB"
        fi
    done
    printf '  %-8s %s\n' "$label" "$best"
}

echo "== $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== polars $("$POLARS_VENV/bin/python" -c 'import polars; print(polars.__version__)'), pandas $("$pandas_python" -c 'import pandas; print(pandas.__version__)'); best of 3 runs each"
for case in 1m universe; do
    flag=""
    [ "$case" = universe ] && flag="--by-symbol"
    echo "== $case"
    run ratchet "$ratchet" "$WORK/${case}_bars.parquet" "$WORK/${case}_source.parquet" $flag
    run polars "$POLARS_VENV/bin/python" "$WORK/polars_join.py" "$WORK/${case}_bars.parquet" "$WORK/${case}_source.parquet" "${flag:-none}"
    run pandas "$pandas_python" "$WORK/pandas_join.py" "$WORK/${case}_bars.parquet" "$WORK/${case}_source.parquet" "${flag:-none}"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
