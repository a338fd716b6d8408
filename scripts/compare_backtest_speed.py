#!/usr/bin/env python3
"""The 1M-bar SMA(10/50) crossover backtest in vectorbt and in plain numpy, timed next to
ratchet's criterion figures (run by compare_backtest_speed.sh, which passes them in).

All three compute the same thing on the same prices: the signal (long while the 10-bar
SMA is above the 50-bar one), the fill at the next bar's open with 2 bps charged per unit
traded (ratchet's default 1 bps commission + 1 bps slippage), the equity curve and the
headline metrics. The prices are generated from the same counter-based hash as
benches/backtest.rs, so the results can be compared as well as the times.
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from criterion_estimates import median_seconds

BARS = 1_000_000
FAST, SLOW = 10, 50
COST = (1.0 + 1.0) / 1e4
PERIODS_PER_YEAR = 252 * 24  # hourly bars on weekdays, as ratchet infers for them


def uniform(stream):
    """splitmix64's output function over the counter 2t + stream + 1, as in the bench."""
    t = np.arange(BARS, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (np.uint64(2) * t + np.uint64(stream + 1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def prices():
    close = 100.0 * np.exp(np.cumsum(0.01 * (uniform(0) - 0.5)))
    open_ = np.empty(BARS)
    open_[0] = 100.0
    open_[1:] = close[:-1] * np.exp(0.001 * (uniform(1)[1:] - 0.5))
    return open_, close


def numpy_backtest(open_, close):
    """Signal, simulation and metrics in plain vectorised numpy."""
    csum = np.cumsum(close)

    def sma(window):
        out = np.full(BARS, np.nan)
        out[window - 1:] = (csum[window - 1:] - np.concatenate(([0.0], csum[:-window]))) / window
        return out

    signal = (sma(FAST) > sma(SLOW)).astype(np.float64)
    held = np.concatenate(([0.0], signal[:-1]))  # decided at a close, held from the next open
    old, new = held[:-1], held[1:]
    gap = 1.0 + old * (open_[1:] / close[:-1] - 1.0)
    fee = 1.0 - COST * np.abs(new - old)
    session = 1.0 + new * (close[1:] / open_[1:] - 1.0)
    factor = np.maximum(gap * fee * session, 0.0)
    equity = np.concatenate(([1.0], np.cumprod(factor)))
    r = factor - 1.0
    mean, std = r.mean(), r.std(ddof=1)
    downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    max_drawdown = (1.0 - equity / np.maximum.accumulate(equity)).max()
    entries = np.flatnonzero((new != 0) & (old == 0)) + 1
    exits = np.flatnonzero((new == 0) & (old != 0)) + 1
    start = equity[entries - 1]
    end = equity[exits - 1] * gap[exits - 1] * (1.0 - COST * np.abs(old[exits - 1]))
    if len(entries) > len(exits):
        end = np.concatenate((end, equity[-1:]))
    pnl = end - start
    return {
        "trades": len(entries),
        "final_equity": equity[-1],
        "sharpe": mean / std * np.sqrt(PERIODS_PER_YEAR),
        "sortino": mean / downside * np.sqrt(PERIODS_PER_YEAR),
        "max_drawdown": max_drawdown,
        "win_rate": (pnl > 0).mean(),
        "turnover": np.abs(new - old).sum(),
        "exposure": (new != 0).mean(),
    }


def vectorbt_backtest(vbt, pd, open_, close):
    """The same in vectorbt: MA indicator, signals shifted one bar and filled at the open."""
    close_s, open_s = pd.Series(close), pd.Series(open_)
    above = vbt.MA.run(close_s, FAST).ma_above(vbt.MA.run(close_s, SLOW))
    held = above.shift(1, fill_value=False)
    pf = vbt.Portfolio.from_signals(
        close_s, entries=held, exits=~held, price=open_s, fees=COST, freq="1h"
    )
    return {
        "trades": int(pf.trades.count()),
        "final_equity": float(pf.value().iloc[-1] / pf.init_cash),
        "sharpe": float(pf.sharpe_ratio()),
        "sortino": float(pf.sortino_ratio()),
        "max_drawdown": float(pf.max_drawdown()),
        "win_rate": float(pf.trades.win_rate()),
    }


def timed(fn, repeat):
    fn()  # warm-up (numba compiles vectorbt's kernels on first use)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--criterion-dir", type=Path, required=True,
                    help="criterion output folder of group sma_cross")
    ap.add_argument("--ratchet-result", default="", help="the bench's 'ratchet result' line")
    args = ap.parse_args()

    import pandas as pd
    import vectorbt as vbt

    vbt.settings.returns["year_freq"] = "252 days"  # with freq 1h: 6048 periods a year
    open_, close = prices()
    rows = []
    for name in ["one_shot", "sweep", "policy_path", "with_buy_and_hold"]:
        rows.append((f"ratchet {name}", median_seconds(args.criterion_dir / name), None))
    np_result, np_times = timed(lambda: numpy_backtest(open_, close), args.repeat)
    vbt_result, vbt_times = timed(lambda: vectorbt_backtest(vbt, pd, open_, close), args.repeat)
    rows.append(("numpy", statistics.median(np_times), min(np_times)))
    rows.append(("vectorbt " + vbt.__version__, statistics.median(vbt_times), min(vbt_times)))

    ours = rows[0][1]
    print(f"\n1M-bar SMA({FAST}/{SLOW}) crossover backtest: signal + simulation + metrics")
    print(f"{'':28}{'median':>10}{'bars/s':>14}{'ratchet one_shot is':>22}")
    for name, median_s, best in rows:
        ratio = "" if name.startswith("ratchet") else f"{median_s / ours:.1f}x faster"
        best_note = "" if best is None else f"  (best {BARS / best / 1e6:.1f}M/s)"
        print(f"{name:28}{median_s * 1e3:>8.1f}ms{BARS / median_s / 1e6:>11.1f}M/s{ratio:>22}{best_note}")

    print("\nresults (same prices, same fill rule):")
    print("  ratchet  ", args.ratchet_result.replace("ratchet result: ", ""))
    fmt = lambda d: " ".join(f"{k} {v:.6g}" for k, v in d.items())
    print("  numpy    ", fmt(np_result))
    print("  vectorbt ", fmt(vbt_result),
          "(buys cash / (price * (1 + fee)) shares: equity differs by ~fee^2 per trade)")


if __name__ == "__main__":
    main()
