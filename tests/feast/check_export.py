"""Checks a repository written by `ratchet features export` with real Feast (tests/feast.rs).

    python check_export.py REPO EXPECTED_JSON

EXPECTED_JSON holds Ratchet's own feature values as float32 bit patterns: every row
(`symbols`, `timestamps` in epoch ms, `bits` row-major over `names`) and each symbol's last
row as a FeatureStream gave it (`last`). Runs `feast apply`, `get_historical_features` on an
entity frame of those rows, `feast materialize` over all of them and `get_online_features`,
and exits non-zero naming the first values that differ.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
from feast import FeatureStore

repo, expected_path = sys.argv[1], sys.argv[2]
with open(expected_path) as f:
    expected = json.load(f)
names = expected["names"]
feast_cli = os.path.join(os.path.dirname(sys.executable), "feast")
subprocess.run([feast_cli, "apply"], cwd=repo, check=True, stdout=subprocess.DEVNULL)

store = FeatureStore(repo_path=repo)
service = store.get_feature_service(expected["service"])
times = pd.to_datetime(expected["timestamps"], unit="ms", utc=True)
entity_df = pd.DataFrame({"symbol": expected["symbols"], "event_timestamp": times})
got = store.get_historical_features(entity_df=entity_df, features=service).to_df()
got = got.sort_values(["symbol", "event_timestamp"], kind="stable").reset_index(drop=True)
want = entity_df.assign(row=range(len(entity_df)))
want = want.sort_values(["symbol", "event_timestamp"], kind="stable").reset_index(drop=True)
bits = np.asarray(expected["bits"], dtype=np.uint32).reshape(len(entity_df), len(names))
bits = bits[want["row"].to_numpy()]
failures = []
if len(got) != len(want) or not (got["symbol"].to_numpy() == want["symbol"].to_numpy()).all():
    failures.append(f"historical: {len(got)} rows for {len(want)} entity rows")
dtypes = sorted({str(got[n].dtype) for n in names})
for c, name in enumerate(names):
    column = got[name]
    if column.isna().any():
        failures.append(f"historical {name}: {int(column.isna().sum())} missing values")
        continue
    values = column.to_numpy(dtype=np.float64).astype(np.float32)
    differ = np.nonzero(values.view(np.uint32) != bits[:, c])[0]
    if len(differ):
        i = differ[0]
        failures.append(
            f"historical {name}: {len(differ)} values differ, first at {got['symbol'][i]} "
            f"{got['event_timestamp'][i]}: {values[i]!r} != {bits[i, c:c + 1].view(np.float32)[0]!r}")

start = (times.min() - pd.Timedelta(seconds=1)).isoformat()
end = (times.max() + pd.Timedelta(seconds=1)).isoformat()
subprocess.run([feast_cli, "materialize", start, end], cwd=repo, check=True,
               stdout=subprocess.DEVNULL)
symbols = sorted(expected["last"])
online = store.get_online_features(
    features=service, entity_rows=[{"symbol": s} for s in symbols]).to_dict()
for k, s in enumerate(symbols):
    row = np.asarray([online[n][k] for n in names], dtype=np.float64).astype(np.float32)
    want_row = np.asarray(expected["last"][s], dtype=np.uint32)
    if not (row.view(np.uint32) == want_row).all():
        failures.append(f"online {s}: {row.tolist()} != {want_row.view(np.float32).tolist()}")

if failures:
    print("\n".join(failures))
    sys.exit(1)
print(f"historical: {len(got)} rows x {len(names)} features equal bit for bit as float32 "
      f"(Feast's dtypes {', '.join(dtypes)}); online: {len(symbols)} symbols' last rows equal")
