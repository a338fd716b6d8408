#!/usr/bin/env bash
# A universe's features side by side with polars, on the same file in the same run: a
# generated 500-symbol x 10-year daily universe (1.3M bars, long-format CSV) read, checked
# and turned into the default features per symbol (nine indicators and a rolling z-score
# over 100 bars of each), by Ratchet (`cargo bench --bench universe`, the file via
# UNIVERSE_CSV) and by polars (read_csv, then over(symbol) rolling windows of the same
# shapes: returns, moving averages, RSI, MACD, volatility, ATR, z-scores, and the rolling
# normalisation). Then both add the cross-sectional features over 5-bar returns, normalised
# like the others: the universe's mean, each symbol's rank and its return minus the mean
# (polars: over the timestamp; Ratchet reads the other symbols' latest returns before it,
# in time order).
#
# The polars expressions have the same window lengths and the same kind of work as
# Ratchet's features but are not checked to give the same values (Wilder smoothing, seeds
# of the EMAs): the comparison is of speed. Target (issue: universes): at least as fast.
#
#   scripts/compare_universe_features.sh
#   SYMBOLS=100 scripts/compare_universe_features.sh
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${POLARS_VENV:-$HOME/.cache/ratchet/polars-venv}"
SYMBOLS="${SYMBOLS:-500}"
source scripts/venv.sh
ensure_venv "$VENV" polars "polars==1.44.2"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

python3 scripts/make_universe_demo.py --symbols "$SYMBOLS" --out "$WORK/universe.csv"
echo "== $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $SYMBOLS symbols, $(($(wc -l <"$WORK/universe.csv") - 1)) bars"

echo "== polars $("$VENV/bin/python" -c 'import polars; print(polars.__version__)'), best of 5"
"$VENV/bin/python" - "$WORK/universe.csv" <<'PY'
import sys, time
import polars as pl

path = sys.argv[1]

def features(df, cross=False):
    c, h, l, v = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("volume")
    by = "symbol"
    prev = c.shift(1).over(by)
    gain = (c - prev).clip(lower_bound=0)
    loss = (prev - c).clip(lower_bound=0)
    tr = pl.max_horizontal(h - l, (h - prev).abs(), (l - prev).abs())
    ema = lambda x, n: x.ewm_mean(span=n, adjust=False).over(by)
    macd = ema(c, 12) - ema(c, 26)
    raw = df.with_columns(
        (c / prev).log().alias("log_return_1"),
        (c / c.shift(5).over(by)).log().alias("log_return_5"),
        (c.rolling_mean(10).over(by) / c.rolling_mean(20).over(by) - 1).alias("sma_ratio"),
        (100 - 100 / (1 + gain.ewm_mean(alpha=1 / 14, adjust=False).over(by)
                      / loss.ewm_mean(alpha=1 / 14, adjust=False).over(by))).alias("rsi"),
        ((macd - macd.ewm_mean(span=9, adjust=False).over(by)) / c).alias("macd"),
        (c / prev).log().rolling_std(20).over(by).alias("volatility"),
        (tr.ewm_mean(alpha=1 / 14, adjust=False).over(by) / c).alias("atr"),
        ((c - c.rolling_mean(20).over(by)) / c.rolling_std(20).over(by)).alias("zscore_close"),
        ((v - v.rolling_mean(20).over(by)) / v.rolling_std(20).over(by)).alias("zscore_volume"),
    )
    names = ["log_return_1", "log_return_5", "sma_ratio", "rsi", "macd", "volatility", "atr",
             "zscore_close", "zscore_volume"]
    if cross:
        # The raw 5-bar return compared across the symbols at each timestamp, normalised
        # per symbol like every other column.
        r = pl.col("log_return_5")
        mean = r.mean().over("date")
        raw = raw.with_columns(
            mean.alias("universe_return"),
            ((r.rank() - 1) / (r.count() - 1)).over("date").alias("return_rank"),
            (r - mean).alias("excess_return"),
        )
        names += ["universe_return", "return_rank", "excess_return"]
    x = [pl.col(n) for n in names]
    return raw.with_columns(
        ((col - col.rolling_mean(100).over(by)) / col.rolling_std(100).over(by)).alias(n)
        for n, col in zip(names, x)
    ).drop_nulls()

def best(f, n=5):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return min(times), out

t_read, df = best(lambda: pl.read_csv(path, try_parse_dates=True).sort("symbol", "date"))
t_feat, feats = best(lambda: features(df))
t_cross, _ = best(lambda: features(df, cross=True))
print(f"read {t_read:.3f} s + features {t_feat:.3f} s = {t_read + t_feat:.3f} s "
      f"({feats.height} rows with every feature)")
print(f"with the cross-sectional features: read {t_read:.3f} s + features {t_cross:.3f} s = "
      f"{t_read + t_cross:.3f} s")
PY

echo "== Ratchet (cargo bench --bench universe, the same file)"
UNIVERSE_CSV="$WORK/universe.csv" cargo bench --quiet --workspace --bench universe -- '/file' 2>&1 \
    | grep -E '^universe/|time:' | grep -v '%' | sed 's/^/  /'
