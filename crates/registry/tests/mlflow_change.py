"""Changes versions of model "m" with MLflow's own client, as a user of MLflow would.

Usage: mlflow_change.py STORE_DIR

Sets the tag ratchet.status=archived on version 2, deletes version 3 and points the alias
"champion" at version 1; prints {"changed": true}.
"""
import json
import os
import pathlib
import sys

uri = pathlib.Path(sys.argv[1]).resolve().as_uri()
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
# Some calls consult the default store (otherwise ./mlflow.db, created in the cwd).
os.environ["MLFLOW_TRACKING_URI"] = uri

from mlflow import MlflowClient  # noqa: E402

client = MlflowClient(tracking_uri=uri, registry_uri=uri)
client.set_model_version_tag("m", "2", "ratchet.status", "archived")
client.delete_model_version("m", "3")
client.set_registered_model_alias("m", "champion", "1")
print(json.dumps({"changed": True}))
