"""Resolves a Ratchet version through Feast's own MLflow integration (tests/feast_mlflow.rs).

    python resolve.py REPO MODEL_URI TRAIN_RANGES_JSON OUT_JSON

REPO is a Feast repository whose feature_store.yaml turns the MLflow integration on for the
store holding MODEL_URI (`ratchet features export` writes such a one); `feast apply` runs
first. Then, through `FeatureStore(REPO).mlflow` alone: `resolve_features(MODEL_URI)` (which
checks the service against the run's feast_features.json), the version's run,
`get_training_entity_df(run_id)`, and `get_historical_features` of the resolved service on
that frame. TRAIN_RANGES_JSON maps each symbol to its training range `[first, last]` (dates
or date-times, as the version records them). When REPO holds `data/features.parquet` (an
export), the training bars are its rows in those ranges, and the historical values are
compared with its values bit for bit as float32.

OUT_JSON gets what Feast returned: the service, the version's and the run's `feast.*` tags,
feast_features.json, the entity frame's columns and dtypes, whether its rows are the training
bars (and the first that differs), and the historical rows and values that differ (without
an export: the historical rows and how many values are missing).
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
from feast import FeatureStore

try:
    import mlflow  # noqa: F401  (what FeatureStore.mlflow imports)
except ImportError:
    sys.exit(f"{sys.executable} has Feast but not MLflow's client: remake the venv with "
             "scripts/feast_venv.sh (scripts/requirements-feast.txt pins mlflow-skinny)")

repo, model_uri, ranges_path, out_path = sys.argv[1:5]
with open(ranges_path) as f:
    ranges = json.load(f)
feast_cli = os.path.join(os.path.dirname(sys.executable), "feast")
subprocess.run([feast_cli, "apply"], cwd=repo, check=True, stdout=subprocess.DEVNULL)

store = FeatureStore(repo_path=repo)
integration = store.mlflow
if integration is None:
    sys.exit(f"{repo}/feature_store.yaml does not turn Feast's MLflow integration on "
             "(an `mlflow:` section with `enabled: true`)")
service = integration.resolve_features(model_uri)
name, version = re.match(r"^models:/([^/]+)/(\d+)$", model_uri).groups()
client = integration.client
model_version = client.get_model_version(name, version)
run = client.get_run(model_version.run_id)
features_json = json.load(open(client.download_artifacts(run.info.run_id, "feast_features.json")))
entity = integration.get_training_entity_df(run.info.run_id)


def utc(text):
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def feast_tags(tags):
    return {k: v for k, v in tags.items() if k.startswith("feast.")}


out = {
    "service": service,
    "version_tags": feast_tags(model_version.tags),
    "run_tags": feast_tags(run.data.tags),
    "features_json": features_json,
    "entity_columns": list(entity.columns),
    "entity_dtypes": {c: str(entity[c].dtype) for c in entity.columns},
    "entity_rows": len(entity),
}

exported_path = os.path.join(repo, "data/features.parquet")
if not os.path.exists(exported_path):
    historical = store.get_historical_features(
        entity_df=entity, features=store.get_feature_service(service)).to_df()
    names = [ref.split(":", 1)[1] for ref in features_json]
    out["historical_rows"] = len(historical)
    out["historical_missing"] = int(historical[names].isna().sum().sum())
else:
    exported = pd.read_parquet(exported_path)
    keep = np.zeros(len(exported), dtype=bool)
    for symbol, (first, last) in ranges.items():
        keep |= ((exported["symbol"] == symbol)
                 & (exported["event_timestamp"] >= utc(first))
                 & (exported["event_timestamp"] <= utc(last))).to_numpy()
    bars = exported[keep].reset_index(drop=True)
    out["training_bars"] = len(bars)
    # The training bars as (symbol, epoch ns), against the entity frame's rows in order.
    want = list(zip(bars["symbol"], bars["event_timestamp"].map(lambda t: t.value)))
    got = list(zip(entity["symbol"], entity["event_timestamp"].map(lambda t: t.value)))
    out["entity_is_the_training_bars"] = got == want
    out["entity_first_difference"] = next(
        ([i, list(map(str, g)), list(map(str, w))] for i, (g, w) in enumerate(zip(got, want))
         if g != w), None)

    historical = store.get_historical_features(
        entity_df=entity, features=store.get_feature_service(service)).to_df()
    joined = bars.merge(historical, on=["symbol", "event_timestamp"], how="left",
                        suffixes=("", "_feast"), validate="1:1")
    names = [ref.split(":", 1)[1] for ref in features_json]
    differ = []
    for name in names:
        feast_values = joined[f"{name}_feast"].to_numpy(dtype=np.float64).astype(np.float32)
        own = joined[name].to_numpy(dtype=np.float32)
        bad = np.nonzero(feast_values.view(np.uint32) != own.view(np.uint32))[0]
        if len(bad):
            i = bad[0]
            differ.append(f"{name}: {len(bad)} values, first {joined['symbol'][i]} "
                          f"{joined['event_timestamp'][i]}: {feast_values[i]!r} != {own[i]!r}")
    out["historical_rows"] = len(historical)
    out["historical_features"] = len(names)
    out["historical_differ"] = differ

with open(out_path, "w") as f:
    json.dump(out, f)
