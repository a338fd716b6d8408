"""Makes a Feast repository and asks real Feast for its historical features
(tests/feast_consume.rs).

    python consume.py REPO OUT_JSON

REPO (a new directory) gets two Parquet sources, their definitions and feature_store.yaml;
`feast apply` registers them. View `prices` (entity `symbol`, TTL 2 days, a created column):
restated rows, some restated after bars that must not see them, a row written before its
event time, a TTL that expires values. View `rates` (no TTL, no created column, a
field_mapping from the file's `ten_y` to the feature `ten_year`, its own timestamp column).
Bars start before either source's first row. OUT_JSON gets the entity frame (`symbols`,
`timestamps` in epoch ms) and, per request, which entity rows Feast returned (its file
offline store leaves out a row whose key has source rows but none in the view's TTL window
at or before the row's time) and each feature's values in entity-frame order (null where
Feast has none): the service `both` (two views), the features
`prices:close`+`rates:ten_year`, and `both` again without `filter_by_created_timestamp`
(Feast's default, which sees restatements written after the bar). View `balances` is keyed
by an INT64 entity (`account_id`, TTL 1 day): `balances:balance` on a frame of two accounts'
days (`account_ids`, `account_timestamps`).
"""

import json
import os
import sys

import numpy as np
import pandas as pd
from feast import FeatureStore
from local_repo import feast, write_store_yaml

repo, out_path = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(repo, "data"))


def at(day, hour=0):
    """Day 1 is 2024-01-01."""
    return pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=day - 1, hours=hour)


# symbol, event day, created (day, hour), close, volume
prices = [
    ("AAA", 3, (3, 0), 10.1, 100),
    ("AAA", 5, (5, 0), 10.7, 110),
    ("AAA", 5, (7, 0), 10.9, 115),   # restated on day 7: bars 5 and 6 keep 10.7
    ("AAA", 6, (6, 12), 11.3, 120),  # written at noon: bar 6 (midnight) does not see it
    ("AAA", 10, (9, 0), 12.5, 130),  # written before its event time
    ("BBB", 2, (2, 0), 50.3, 500),
    ("BBB", 4, (4, 0), 51.9, 510),
    ("BBB", 4, (4, 6), 52.2, 511),
    ("BBB", 8, (8, 0), 53.3, 520),
    ("BBB", 8, (12, 0), 53.9, 525),  # restated on the last bar's day
    ("BBB", 11, (13, 0), 54.4, 530),  # written after the last bar
]
pd.DataFrame({
    "symbol": [p[0] for p in prices],
    "event_timestamp": [at(p[1]) for p in prices],
    "created": [at(*p[2]) for p in prices],
    "close": np.asarray([p[3] for p in prices], dtype=np.float32),
    "volume": np.asarray([p[4] for p in prices], dtype=np.int64),
}).to_parquet(os.path.join(repo, "data/prices.parquet"), index=False)

rates = [("AAA", 4, 4.01), ("AAA", 7, 4.13), ("BBB", 1, 3.87), ("BBB", 9, 3.99)]
pd.DataFrame({
    "symbol": [r[0] for r in rates],
    "ts": [at(r[1]) for r in rates],
    "ten_y": np.asarray([r[2] for r in rates], dtype=np.float64),
}).to_parquet(os.path.join(repo, "data/rates.parquet"), index=False)

# account_id (INT64 entity), day, balance; a TTL of 1 day
balances = [(1001, 2, 7.25), (1001, 4, 8.5), (2002, 1, -3.75), (2002, 3, -1.5)]
pd.DataFrame({
    "account_id": np.asarray([b[0] for b in balances], dtype=np.int64),
    "event_timestamp": [at(b[1]) for b in balances],
    "balance": np.asarray([b[2] for b in balances], dtype=np.float64),
}).to_parquet(os.path.join(repo, "data/balances.parquet"), index=False)

write_store_yaml(repo, "consume")
with open(os.path.join(repo, "definitions.py"), "w") as f:
    f.write('''from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float32, Float64, Int64

instrument = Entity(name="instrument", join_keys=["symbol"], value_type=ValueType.STRING)
prices = FeatureView(
    name="prices",
    entities=[instrument],
    ttl=timedelta(days=2),
    schema=[Field(name="close", dtype=Float32), Field(name="volume", dtype=Int64)],
    source=FileSource(
        path="data/prices.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)
rates = FeatureView(
    name="rates",
    entities=[instrument],
    ttl=timedelta(0),
    schema=[Field(name="ten_year", dtype=Float64)],
    source=FileSource(
        path="data/rates.parquet",
        timestamp_field="ts",
        field_mapping={"ten_y": "ten_year"},
    ),
)
both = FeatureService(name="both", features=[prices, rates])
account = Entity(name="account", join_keys=["account_id"], value_type=ValueType.INT64)
balances = FeatureView(
    name="balances",
    entities=[account],
    ttl=timedelta(days=1),
    schema=[Field(name="balance", dtype=Float64)],
    source=FileSource(path="data/balances.parquet", timestamp_field="event_timestamp"),
)
''')

feast(repo, "apply")

store = FeatureStore(repo_path=repo)
symbols, times = [], []
for symbol in ["AAA", "BBB"]:
    for day in range(0, 13):
        symbols.append(symbol)
        times.append(at(day))
entity_df = pd.DataFrame({"symbol": symbols, "event_timestamp": times})


accounts_df = pd.DataFrame({
    "account_id": np.asarray([1001] * 6 + [2002] * 6, dtype=np.int64),
    "event_timestamp": [at(day) for day in range(0, 6)] * 2,
})


def historical(features, created_filter, entities=entity_df, key="symbol"):
    got = store.get_historical_features(
        entity_df=entities, features=features,
        filter_by_created_timestamp=created_filter).to_df()
    names = [c for c in got.columns if c not in (key, "event_timestamp")]
    got = entities.merge(got, on=[key, "event_timestamp"], how="left", validate="1:1",
                         indicator=True)
    return {
        "returned": [bool(v == "both") for v in got["_merge"]],
        "columns": {
            name: {
                "dtype": str(got[name].dtype),
                "values": [None if pd.isna(v) else float(v) for v in got[name]],
            }
            for name in names
        },
    }


service = store.get_feature_service("both")
out = {
    "symbols": symbols,
    "timestamps": [int(t.value // 1_000_000) for t in times],
    "service both": historical(service, True),
    "features prices:close rates:ten_year": historical(["prices:close", "rates:ten_year"], True),
    "service both, Feast's default": historical(service, False),
    "account_ids": [int(a) for a in accounts_df["account_id"]],
    "account_timestamps": [int(t.value // 1_000_000) for t in accounts_df["event_timestamp"]],
    "features balances:balance": historical(["balances:balance"], True, accounts_df,
                                            "account_id"),
}
with open(out_path, "w") as f:
    json.dump(out, f)
