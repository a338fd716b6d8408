#!/usr/bin/env python3
"""Reference values for crates/backtest/tests/stats.rs and tests/reports.rs, computed with
numpy and scipy independently of the Rust code (run by stats_reference.sh).

Prints Rust constants; the tests hold a copy of them. Formulas:
- Sharpe ratio per period: mean / std(ddof=1); skewness scipy.stats.skew (biased),
  kurtosis scipy.stats.kurtosis(fisher=False, biased).
- Standard error (Mertens 2002 in Bailey & Lopez de Prado's T-1 form):
  sqrt((1 - skew*SR + (kurt-1)/4*SR^2) / (T-1)); PSR(b) = Phi((SR - b) / SE).
- Expected maximum Sharpe ratio of N trials with variance V (Bailey & Lopez de Prado 2014):
  sqrt(V) * ((1-g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), g Euler-Mascheroni;
  DSR = PSR(that).
- PBO by CSCV: rows cut into S blocks (T mod S earliest rows dropped); for each choice of
  S/2 in-sample blocks (in increasing order of their bit mask), the in-sample best trial's
  out-of-sample rank (scipy.stats.rankdata, average ties) over N+1, its logit; PBO = share
  of logits <= 0.
"""

import itertools
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
MASK64 = (1 << 64) - 1


def lcg_uniforms(seed, n):
    """Uniforms in [0, 1) from a 64-bit LCG (Knuth's MMIX constants), top 53 bits; the
    Rust test generates the same numbers."""
    out, state = [], seed
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK64
        out.append((state >> 11) / float(1 << 53))
    return np.array(out)


def fat_tailed_returns(seed, n):
    """Small uniform noise with a rare large loss: negatively skewed, fat-tailed."""
    u = lcg_uniforms(seed, n)
    return 0.0004 + 0.01 * (u - 0.5) - 0.05 * (u < 0.01)


def sharpe_stats(r):
    sr = r.mean() / r.std(ddof=1)
    skew = stats.skew(r)
    kurt = stats.kurtosis(r, fisher=False)
    se = np.sqrt((1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr) / (len(r) - 1))
    return sr, skew, kurt, se


def psr(sr, se, benchmark):
    return stats.norm.cdf((sr - benchmark) / se)


def expected_max_sharpe(n, variance):
    g = np.euler_gamma
    return np.sqrt(variance) * (
        (1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * np.e))
    )


def cscv_ranks(matrix, partitions):
    """Doubled out-of-sample ranks of the in-sample best, one per split, and the PBO."""
    rows, trials = matrix.shape
    block = rows // partitions
    skip = rows % partitions
    blocks = [np.arange(skip + s * block, skip + (s + 1) * block) for s in range(partitions)]
    masks = [m for m in range(1 << partitions) if bin(m).count("1") == partitions // 2]
    ranks, logits = [], []
    for mask in masks:
        inside = np.concatenate([blocks[s] for s in range(partitions) if mask >> s & 1])
        outside = np.concatenate([blocks[s] for s in range(partitions) if not mask >> s & 1])

        def sharpe(idx):
            x = matrix[idx]
            return x.mean(axis=0) / x.std(axis=0, ddof=1)

        best = int(np.argmax(sharpe(inside)))
        rank = stats.rankdata(sharpe(outside))[best]
        w = rank / (trials + 1)
        ranks.append(int(round(2 * rank)))
        logits.append(np.log(w / (1 - w)))
    return ranks, float(np.mean(np.array(logits) <= 0))


def sma_crossover_returns(open_, close, cost):
    """GOOGL SMA(10/50) crossover (long while SMA10 > SMA50) and buy-and-hold under the
    fill-at-next-open rule, charging `cost` per unit traded: per-bar returns of both."""
    def sma(w):
        out = np.full(len(close), np.nan)  # no position before the slow window fills
        out[w - 1:] = np.convolve(close, np.ones(w) / w, mode="valid")
        return out

    def returns(decided):
        old = np.concatenate(([0.0], decided[:-2]))  # held into bar t's open
        new = decided[:-1]  # held from bar t's open
        gap = 1 + old * (open_[1:] / close[:-1] - 1)
        session = 1 + new * (close[1:] / open_[1:] - 1)
        return gap * (1 - cost * np.abs(new - old)) * session - 1

    signal = (sma(10) > sma(50)).astype(float)
    return returns(signal), returns(np.ones(len(close)))


def rust(name, value):
    print(f"const {name}: f64 = {float(value)!r};")


def main():
    print("// tests/stats.rs: the ten returns of SMALL")
    small = np.array([0.012, -0.008, 0.021, -0.015, 0.004, 0.009, -0.003, 0.017, -0.011, 0.006])
    sr, skew, kurt, se = sharpe_stats(small)
    for name, v in [("SMALL_SHARPE", sr), ("SMALL_SKEWNESS", skew), ("SMALL_KURTOSIS", kurt),
                    ("SMALL_SE", se), ("SMALL_PSR_0", psr(sr, se, 0.0)),
                    ("SMALL_PSR_0_1", psr(sr, se, 0.1)),
                    ("SMALL_SR0_10_TRIALS", expected_max_sharpe(10, 0.01)),
                    ("SMALL_DSR_10_TRIALS", psr(sr, se, expected_max_sharpe(10, 0.01)))]:
        rust(name, v)

    print("// tests/stats.rs: fat_tailed_returns(7, 5000)")
    sr, skew, kurt, se = sharpe_stats(fat_tailed_returns(7, 5000))
    for name, v in [("LONG_SHARPE", sr), ("LONG_SKEWNESS", skew), ("LONG_KURTOSIS", kurt),
                    ("LONG_SE", se), ("LONG_PSR_0", psr(sr, se, 0.0))]:
        rust(name, v)

    print("// tests/stats.rs: expected maximum Sharpe of N trials with variance 1")
    values = [expected_max_sharpe(n, 1.0) for n in (2, 10, 100, 1000)]
    print(f"const EXPECTED_MAX: [f64; 4] = [{', '.join(repr(float(v)) for v in values)}];")

    print("// tests/stats.rs: CSCV over 6 trials x 1003 rows, 8 partitions")
    u = [lcg_uniforms(100 + k, 1003) for k in range(6)]
    drift = np.where(np.arange(1003) < 500, 1.0, -1.0)
    matrix = np.stack(
        [0.01 * (u[k] - 0.5) + 0.0001 * k * (drift if k % 2 else 1.0) / 5 for k in range(6)],
        axis=1,
    )
    ranks, pbo = cscv_ranks(matrix, 8)
    print(f"const CSCV_RANKS_X2: [u32; {len(ranks)}] = {ranks};")
    rust("CSCV_PBO", pbo)

    print("// tests/metrics.rs: the six-bar series, 20 bps a unit, 252 a year")
    f = [(1 - 0.002) * (103 / 101), (104 / 103) * (102 / 104),
         (101 / 102) * (1 - 0.004) * (1 + (1 - 99 / 101)), (1 - (100 / 99 - 1)) * (1 - 0.002),
         (1 - 0.002) * (104 / 103)]
    hold = [(1 - 0.002) * (103 / 101), 102 / 103, 99 / 102, 101 / 99, 104 / 101]
    sr, skew, kurt, se = sharpe_stats(np.array(f) - 1)
    h_sr = sharpe_stats(np.array(hold) - 1)[0]
    for name, v in [("SIX_BAR_SE", se * np.sqrt(252)), ("SIX_BAR_PSR_0", psr(sr, se, 0.0)),
                    ("SIX_BAR_PSR_HOLD", psr(sr, se, h_sr))]:
        rust(name, v)

    print("// tests/reports.rs: GOOGL SMA(10/50), default costs (2 bps a unit), 252 a year")
    data = np.genfromtxt(ROOT / "data/STOCKS_GOOGL.csv", delimiter=",", skip_header=1,
                         usecols=(1, 4))
    strategy, hold = sma_crossover_returns(data[:, 0], data[:, 1], 2e-4)
    s_sr, s_skew, s_kurt, s_se = sharpe_stats(strategy)
    h_sr, h_skew, h_kurt, h_se = sharpe_stats(hold)
    root = np.sqrt(252.0)
    for name, v in [("GOOGL_SHARPE", s_sr * root), ("GOOGL_SE", s_se * root),
                    ("GOOGL_SKEWNESS", s_skew), ("GOOGL_KURTOSIS", s_kurt),
                    ("GOOGL_PSR_0", psr(s_sr, s_se, 0.0)),
                    ("GOOGL_PSR_HOLD", psr(s_sr, s_se, h_sr)),
                    ("GOOGL_DSR_40", psr(s_sr, s_se, expected_max_sharpe(40, 0.25 / 252))),
                    ("HOLD_SHARPE", h_sr * root), ("HOLD_SE", h_se * root),
                    ("HOLD_SKEWNESS", h_skew), ("HOLD_KURTOSIS", h_kurt),
                    ("HOLD_PSR_0", psr(h_sr, h_se, 0.0))]:
        rust(name, v)


if __name__ == "__main__":
    main()
