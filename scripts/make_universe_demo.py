#!/usr/bin/env python3
"""Writes data/UNIVERSE_DEMO.csv: a seeded synthetic universe in long format (one row per
symbol and bar, a `symbol` column), for the universe example config and tests.

Four instruments on their own calendars, 2018-01-01 .. 2023-12-31, daily bars at midnight UTC:
AAA and BBB trade on weekdays, CCC on weekdays from 2019-07-01 (a later listing), XYZ every
day (a 24/7 market). Each daily return is a common market factor plus the instrument's own
noise, so the universe moves together without being one series. Regenerating gives the same
bytes (Python's `random` with a fixed seed).

With `--symbols N --out FILE` it writes instead a bigger universe for the speed scripts: N
weekday instruments over `--years` years (default 10) ending 2023-12-29, seeded the same way.
"""

import argparse
import datetime as dt
import random

parser = argparse.ArgumentParser()
parser.add_argument("--symbols", type=int)
parser.add_argument("--years", type=int, default=10)
parser.add_argument("--out", default="data/UNIVERSE_DEMO.csv")
args = parser.parse_args()

random.seed(20261206)

START, END = dt.date(2018, 1, 1), dt.date(2023, 12, 31)
SYMBOLS = {
    # symbol: (first day, weekdays only, start price, beta, own volatility)
    "AAA": (START, True, 50.0, 1.0, 0.012),
    "BBB": (START, True, 120.0, 0.6, 0.015),
    "CCC": (dt.date(2019, 7, 1), True, 20.0, 1.4, 0.02),
    "XYZ": (START, False, 8000.0, 1.8, 0.03),
}
if args.symbols:
    START = dt.date(END.year - args.years, 12, 31)
    SYMBOLS = {
        f"S{i:03d}": (START, True, random.uniform(10, 500), random.uniform(0.3, 1.8), random.uniform(0.008, 0.03))
        for i in range(args.symbols)
    }

days = [START + dt.timedelta(d) for d in range((END - START).days + 1)]
market = {day: random.gauss(0.0003, 0.009) for day in days}
price = {s: spec[2] for s, spec in SYMBOLS.items()}

rows = []
for day in days:
    for symbol, (first, weekdays, _, beta, vol) in SYMBOLS.items():
        if day < first or (weekdays and day.weekday() >= 5):
            continue
        prev = price[symbol]
        open_ = prev * (1.0 + random.gauss(0.0, vol / 4))
        close = open_ * (1.0 + beta * market[day] + random.gauss(0.0, vol))
        high = max(open_, close) * (1.0 + abs(random.gauss(0.0, vol / 2)))
        low = min(open_, close) * (1.0 - abs(random.gauss(0.0, vol / 2)))
        volume = int(random.uniform(1e5, 1e6))
        price[symbol] = close
        rows.append(f"{day.isoformat()},{symbol},{open_:.4f},{high:.4f},{low:.4f},{close:.4f},{volume}")

with open(args.out, "w") as f:
    f.write("date,symbol,open,high,low,close,volume\n")
    f.write("\n".join(rows) + "\n")
