"""Makes a Feast repository for serving with `ratchet serve --feast-online` (tests/serve.rs).

    python online.py REPO ROWS_CSV

ROWS_CSV has the header `symbol,event_ms,created_ms,score` (times in epoch milliseconds).
REPO (a new directory) gets them as its Parquet source (`event_timestamp` and `created` as
UTC datetimes, `score` as float64), two feature views over it keyed by the entity `ticker`
(join key `symbol`): `signal` with a TTL of 10 days and `level` without one, a SQLite online
store, and `feast apply`. The online store starts empty; the test writes rows into it through
the feature server.
"""

import csv
import os
import sys

import numpy as np
import pandas as pd
from local_repo import feast, write_store_yaml

repo, rows_path = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(repo, "data"))

with open(rows_path, newline="") as f:
    rows = list(csv.DictReader(f))


def utc(column):
    return pd.to_datetime([int(r[column]) for r in rows], unit="ms", utc=True)


pd.DataFrame({
    "symbol": [r["symbol"] for r in rows],
    "event_timestamp": utc("event_ms"),
    "created": utc("created_ms"),
    "score": np.asarray([float(r["score"]) for r in rows], dtype=np.float64),
}).to_parquet(os.path.join(repo, "data/signal.parquet"), index=False)

write_store_yaml(repo, "online")

with open(os.path.join(repo, "definitions.py"), "w") as f:
    f.write('''from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64

ticker = Entity(name="ticker", join_keys=["symbol"], value_type=ValueType.STRING)
source = FileSource(
    name="signal_source",
    path="data/signal.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
signal = FeatureView(
    name="signal",
    entities=[ticker],
    ttl=timedelta(days=10),
    schema=[Field(name="score", dtype=Float64)],
    source=source,
)
level = FeatureView(
    name="level",
    entities=[ticker],
    ttl=timedelta(0),
    schema=[Field(name="score", dtype=Float64)],
    source=source,
)
''')

feast(repo, "apply")
