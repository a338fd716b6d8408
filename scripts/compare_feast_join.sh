#!/usr/bin/env bash
# Feast's own point-in-time join (`get_historical_features`, Feast 0.67's file offline store)
# beside Ratchet's (crates/data/examples/external_join.rs) on the same Parquet files, at sizes
# growing until Feast stops. One per-symbol source of 10 float columns, a row per symbol and
# day stamped 8 hours before that day's bar; the entity frame is the bars' (symbol, time);
# the view's TTL and Ratchet's max_staleness are both 5 days. Each tool runs as its own process
# under /usr/bin/time -v; Feast under `ulimit -v` (FEAST_MEMORY_GB, default 16) and `timeout`
# (FEAST_TIMEOUT, default 300 s) so that a size it cannot do fails instead of taking the
# machine. Equal sums of the joined values: the same join.
#
#   scripts/compare_feast_join.sh                    # sizes 4x2000, 4x5000, 20x5000, 500x2520
#   SIZES="4x2000 8x2500" scripts/compare_feast_join.sh
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
feast_python="$(bash scripts/feast_venv.sh)"
cargo build --quiet --release --workspace --example external_join
ratchet="$CARGO_TARGET_DIR/release/examples/external_join"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SIZES="${SIZES:-4x2000 4x5000 20x5000 500x2520}"
FEAST_MEMORY_GB="${FEAST_MEMORY_GB:-16}"
FEAST_TIMEOUT="${FEAST_TIMEOUT:-300}"

# make.py DIR SYMBOLS DAYS: bars.parquet, source.parquet and a Feast repository in DIR.
cat > "$WORK/make.py" <<'PY'
import os, subprocess, sys
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
out, syms, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(11)
DAY, START = 86_400_000, 1_577_836_800_000  # 2020-01-01
names = np.repeat([f"S{i:03}" for i in range(syms)], days)
t = np.tile(START + np.arange(days, dtype=np.int64) * DAY + 21 * 3_600_000, syms)
order = np.argsort(t, kind="stable")
n = len(t)
ts = lambda ms: pa.array(ms, type=pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
opn = np.concatenate([[100.0], close[:-1]])
bars = pa.table({
    "timestamp": ts(t), "symbol": pa.array(names),
    "open": opn, "high": np.maximum(opn, close) * 1.001, "low": np.minimum(opn, close) * 0.999,
    "close": close, "volume": rng.uniform(1e3, 2e3, n),
}).take(order)
pq.write_table(bars, f"{out}/bars.parquet")
cols = {"symbol": pa.array(names), "event_timestamp": ts(t - 8 * 3_600_000)}
for i in range(10):
    cols[f"c{i}"] = rng.normal(0, 1, n)
pq.write_table(pa.table(cols).take(order), f"{out}/source.parquet")
repo = f"{out}/repo"
os.makedirs(repo)
with open(f"{repo}/feature_store.yaml", "w") as f:
    f.write("project: join_speed\nprovider: local\nregistry: registry.db\n"
            "online_store:\n  type: sqlite\n  path: online.db\noffline_store:\n  type: file\n"
            "entity_key_serialization_version: 3\n")
with open(f"{repo}/definitions.py", "w") as f:
    f.write(f'''from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64
instrument = Entity(name="instrument", join_keys=["symbol"], value_type=ValueType.STRING)
x = FeatureView(name="x", entities=[instrument], ttl=timedelta(days=5),
    schema=[Field(name=f"c{{i}}", dtype=Float64) for i in range(10)],
    source=FileSource(path="{out}/source.parquet", timestamp_field="event_timestamp"))
''')
feast_cli = os.path.join(os.path.dirname(sys.executable), "feast")
subprocess.run([feast_cli, "apply"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
PY

cat > "$WORK/feast_join.py" <<'PY'
import sys, time
import pandas as pd
from feast import FeatureStore
out = sys.argv[1]
t = time.perf_counter()
bars = pd.read_parquet(f"{out}/bars.parquet", columns=["symbol", "timestamp"])
entity_df = bars.rename(columns={"timestamp": "event_timestamp"})
store = FeatureStore(repo_path=f"{out}/repo")
read = time.perf_counter() - t
t = time.perf_counter()
got = store.get_historical_features(
    entity_df=entity_df, features=[f"x:c{i}" for i in range(10)]).to_df()
join = time.perf_counter() - t
kept = got[got["c0"].notna()]
total = sum(kept[f"c{i}"].sum() for i in range(10))
print(f"read {read:.3f} s, join {join:.3f} s; {len(got)} bars, {len(kept)} kept, sum {total:.6e}")
PY

# timed LABEL CMD...: one run; its last line and peak RSS, or why it stopped.
timed() {
    local label="$1" rc=0
    shift
    /usr/bin/time -v "$@" >"$WORK/out" 2>"$WORK/time" || rc=$?
    local rss
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time")
    if [ "$rc" = 0 ]; then
        printf '  %-8s %s; peak %s MiB\n' "$label" "$(tail -1 "$WORK/out")" "$((rss / 1024))"
    elif [ "$rc" = 124 ]; then
        printf '  %-8s stopped after %s s (timeout); peak %s MiB\n' "$label" "$FEAST_TIMEOUT" "$((rss / 1024))"
    else
        printf '  %-8s failed (exit %s): %s; peak %s MiB\n' "$label" "$rc" \
            "$(grep -E 'Error|error' "$WORK/out" "$WORK/time" | grep -v 'Exit status' | tail -1 | cut -c1-160)" \
            "$((rss / 1024))"
    fi
}

echo "== $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== feast $("$feast_python" -c 'import feast; print(feast.__version__)'); Feast capped at ${FEAST_MEMORY_GB} GiB and ${FEAST_TIMEOUT} s"
for size in $SIZES; do
    syms=${size%x*}
    days=${size#*x}
    dir="$WORK/$size"
    mkdir -p "$dir"
    "$feast_python" "$WORK/make.py" "$dir" "$syms" "$days"
    echo "$size: $((syms * days)) entity rows over $((syms * days)) source rows ($syms symbols)"
    timed Ratchet "$ratchet" "$dir/bars.parquet" "$dir/source.parquet" --by-symbol
    timed Feast bash -c "ulimit -v $((FEAST_MEMORY_GB * 1024 * 1024)); exec timeout $FEAST_TIMEOUT \"\$@\"" _ \
        "$feast_python" "$WORK/feast_join.py" "$dir"
    rm -rf "$dir"
done
