"""Reads back, with MLflow's own Python client, what tests/rest_server.rs wrote to a
tracking server through Ratchet's RestStore, and prints it as one JSON document.

usage: python rest_verify.py SERVER_URL RUN_ID MODEL_NAME DOWNLOAD_DIR

The Rust test compares every field with what it wrote; this script only reads (the one
write is the artifact download into DOWNLOAD_DIR, a fresh local directory).
"""

import hashlib
import json
import os
import sys

from mlflow.tracking import MlflowClient


def artifact_files(client, run_id, path=None):
    """Every artifact file of the run below `path`, as {path: size}, recursively."""
    files = {}
    for entry in client.list_artifacts(run_id, path):
        if entry.is_dir:
            files.update(artifact_files(client, run_id, entry.path))
        else:
            files[entry.path] = entry.file_size
    return files


def sha256_tree(root):
    """{relative path: sha256} of every file below `root`."""
    digests = {}
    for directory, _, names in os.walk(root):
        for name in names:
            full = os.path.join(directory, name)
            with open(full, "rb") as f:
                digests[os.path.relpath(full, root).replace(os.sep, "/")] = hashlib.sha256(
                    f.read()
                ).hexdigest()
    return digests


def number(value):
    # repr() is the shortest text that parses back to the same double; it also covers
    # NaN, which JSON cannot carry as a number.
    return repr(value)


def main():
    url, run_id, model_name, download_dir = sys.argv[1:5]
    client = MlflowClient(tracking_uri=url, registry_uri=url)

    run = client.get_run(run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    histories = {
        key: [[m.step, m.timestamp, number(m.value)] for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
    }
    downloaded = client.download_artifacts(run_id, "checkpoint", download_dir)

    model = client.get_registered_model(model_name)
    versions = sorted(
        client.search_model_versions(f"name = '{model_name}'"), key=lambda v: int(v.version)
    )
    by_alias = {
        alias: client.get_model_version_by_alias(model_name, alias).version
        for alias in model.aliases
    }

    print(
        json.dumps(
            {
                "experiment": {
                    "id": experiment.experiment_id,
                    "name": experiment.name,
                    "tags": experiment.tags,
                    "lifecycle_stage": experiment.lifecycle_stage,
                },
                "run": {
                    "name": run.info.run_name,
                    "status": run.info.status,
                    "start_time": run.info.start_time,
                    "end_time": run.info.end_time,
                    "artifact_uri": run.info.artifact_uri,
                    "params": run.data.params,
                    "tags": run.data.tags,
                    "histories": histories,
                },
                "artifacts": artifact_files(client, run_id),
                "downloaded": sha256_tree(downloaded),
                "model": {
                    "name": model.name,
                    "tags": model.tags,
                    "aliases": {alias: str(v) for alias, v in model.aliases.items()},
                    "by_alias": by_alias,
                    "versions": [
                        {
                            "version": v.version,
                            "source": v.source,
                            "run_id": v.run_id,
                            "status": v.status,
                            "tags": v.tags,
                            "description": v.description,
                        }
                        for v in versions
                    ],
                },
            }
        )
    )


if __name__ == "__main__":
    main()
