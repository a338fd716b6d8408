"""Reads a file store with MLflow's own client and prints everything as JSON.

Usage: mlflow_read.py STORE_DIR [--load-models]

Prints experiments (with tags), their runs (info, params, tags, latest metrics, full metric
histories, recursive artifact listing), registered models (tags, aliases) and their live
versions (fields, tags, aliases, alias lookups), and with --load-models each version's
MLmodel loaded through models:/NAME/VERSION. Every WARNING MLflow logs is collected in
"warnings" (skipped experiments/runs are only logged, never raised). Non-finite floats are
printed as the strings "NaN", "inf", "-inf".
"""
import json
import logging
import math
import os
import sys

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402

warnings = []


class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())


logging.getLogger().addHandler(Collect())
logging.getLogger("mlflow").addHandler(Collect())


def num(x):
    if isinstance(x, float) and not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    return x


root = os.path.abspath(sys.argv[1])
load_models = "--load-models" in sys.argv[2:]
uri = "file://" + root
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifacts(run_id, path=None):
    out = []
    for f in client.list_artifacts(run_id, path):
        out.append({"path": f.path, "is_dir": f.is_dir, "size": f.file_size})
        if f.is_dir:
            out.extend(artifacts(run_id, f.path))
    return out


result = {"experiments": [], "registered_models": []}
for exp in client.search_experiments(view_type=ViewType.ACTIVE_ONLY):
    e = {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "artifact_location": exp.artifact_location,
        "lifecycle_stage": exp.lifecycle_stage,
        "creation_time": exp.creation_time,
        "tags": dict(exp.tags),
        "runs": [],
    }
    for run in client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL, max_results=50000):
        info = run.info
        r = {
            "run_id": info.run_id,
            "run_name": info.run_name,
            "experiment_id": info.experiment_id,
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "artifact_uri": info.artifact_uri,
            "lifecycle_stage": info.lifecycle_stage,
            "user_id": info.user_id,
            "params": dict(run.data.params),
            "tags": dict(run.data.tags),
            "metrics": {k: num(v) for k, v in run.data.metrics.items()},
            "history": {
                k: [[m.timestamp, num(m.value), m.step] for m in client.get_metric_history(info.run_id, k)]
                for k in run.data.metrics
            },
            "artifacts": artifacts(info.run_id),
        }
        e["runs"].append(r)
    e["runs"].sort(key=lambda r: r["run_id"])
    result["experiments"].append(e)
result["experiments"].sort(key=lambda e: e["experiment_id"])

for rm in client.search_registered_models(max_results=1000):
    m = {
        "name": rm.name,
        "creation_timestamp": rm.creation_timestamp,
        "last_updated_timestamp": rm.last_updated_timestamp,
        "description": rm.description,
        "tags": dict(rm.tags),
        "aliases": {a: int(v) for a, v in rm.aliases.items()},
        "versions": [],
        "alias_lookup": {},
    }
    versions = client.search_model_versions(f"name='{rm.name}'", max_results=200000)
    for mv in sorted(versions, key=lambda v: int(v.version)):
        full = client.get_model_version(rm.name, mv.version)
        v = {
            "version": int(mv.version),
            "source": mv.source,
            "run_id": mv.run_id,
            "status": mv.status,
            "current_stage": mv.current_stage,
            "description": mv.description,
            "creation_timestamp": mv.creation_timestamp,
            "tags": dict(mv.tags),
            "aliases": sorted(full.aliases),
            "download_uri": client.get_model_version_download_uri(rm.name, mv.version),
        }
        if load_models:
            model = mlflow.models.Model.load(f"models:/{rm.name}/{mv.version}")
            v["mlmodel"] = {
                "artifact_path": model.artifact_path,
                "flavors": sorted(model.flavors),
                "run_id": model.run_id,
                "model_uuid": model.model_uuid,
                "utc_time_created": str(model.utc_time_created),
            }
        m["versions"].append(v)
    for alias in rm.aliases:
        m["alias_lookup"][alias] = int(client.get_model_version_by_alias(rm.name, alias).version)
    result["registered_models"].append(m)
result["registered_models"].sort(key=lambda m: m["name"])
result["warnings"] = warnings
print(json.dumps(result, sort_keys=True))
