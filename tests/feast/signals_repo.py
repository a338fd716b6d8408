"""Writes (or grows) a Feast repository of a desk's daily signal for one symbol
(tests/feast_versions.rs).

    python signals_repo.py REPO BARS_CSV SYMBOL TRACKING_URI [--restate ROW]

The offline source REPO/data/signals.parquet gets one row per date of BARS_CSV (its first
column): `ticker` (SYMBOL), `event_timestamp` (the date, UTC), `created` (the same) and
`momentum` (float32, a function of the row's number, so a longer file only appends rows).
`--restate ROW` changes the value of row ROW. The first call also writes feature_store.yaml
(the MLflow integration on, for the store at TRACKING_URI) and the definitions (entity
`instrument` with join key `ticker`, view `signals` with a 5-day TTL, service `desk`) and runs `feast apply`; later calls
only rewrite the source, as a desk appending its new days would.
"""

import argparse
import math
import os
import sys

import numpy as np
import pandas as pd
from local_repo import feast, write_store_yaml

parser = argparse.ArgumentParser()
parser.add_argument("repo")
parser.add_argument("bars")
parser.add_argument("symbol")
parser.add_argument("tracking_uri")
parser.add_argument("--restate", type=int)
args = parser.parse_args()

dates = pd.read_csv(args.bars, usecols=[0]).iloc[:, 0]
times = pd.to_datetime(dates, utc=True)
values = np.asarray([1.0 + math.sin(i * 0.07) for i in range(len(times))], dtype=np.float32)
if args.restate is not None:
    values[args.restate] += np.float32(0.5)
os.makedirs(os.path.join(args.repo, "data"), exist_ok=True)
pd.DataFrame({
    "ticker": [args.symbol] * len(times),
    "event_timestamp": times,
    "created": times,
    "momentum": values,
}).to_parquet(os.path.join(args.repo, "data/signals.parquet"), index=False)

store_yaml = os.path.join(args.repo, "feature_store.yaml")
if os.path.exists(store_yaml):
    sys.exit(0)
write_store_yaml(args.repo, "desk_signals",
                 f'mlflow:\n  enabled: true\n  tracking_uri: "{args.tracking_uri}"\n')
with open(os.path.join(args.repo, "definitions.py"), "w") as f:
    f.write('''from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32

instrument = Entity(name="instrument", join_keys=["ticker"], value_type=ValueType.STRING)
signals = FeatureView(
    name="signals",
    entities=[instrument],
    ttl=timedelta(days=5),
    schema=[Field(name="momentum", dtype=Float32)],
    source=FileSource(
        path="data/signals.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)
desk = FeatureService(name="desk", features=[signals])
''')
feast(args.repo, "apply")
