"""Writes a file store with the real MLflow client, choosing PyYAML's emitter: `c` (libyaml,
what MLflow uses when PyYAML has it) or `python` (PyYAML's own, its fallback). The strings
are long enough to be folded across lines and carry escapes, tabs, quotes and non-ASCII
white space at the fold points. Prints what MLflow itself reads back, as JSON.

usage: mlflow_meta_files.py STORE_DIR c|python
"""
import json
import os
import sys

os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"

import mlflow.utils.yaml_utils as yaml_utils  # noqa: E402
import yaml  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

root, emitter = sys.argv[1], sys.argv[2]
yaml_utils.YamlSafeDumper = {"c": yaml.CSafeDumper, "python": yaml.SafeDumper}[emitter]

uri = "file://" + os.path.abspath(root)
client = MlflowClient(tracking_uri=uri, registry_uri=uri)

# "ab<NBSP> <IDEOGRAPHIC SPACE>cd ": every fold at its ASCII space leaves a line ending in
# U+00A0 and the next starting with U+3000 (YAML white space is only space and tab).
unicode_spaces = "ab\u00a0 \u3000cd " * 30
# Control characters force double quotes (escapes, and folds that need `\`).
double_quoted = (
    'tab\there "quoted" back\\slash bell\x07 line\u2028sep\nnext  two  spaces '
    + unicode_spaces
    + "end  "
)
# ": " forces quotes, nothing needs escaping: single quotes, folded.
single_quoted = "key: value " * 12 + unicode_spaces + "tail"

experiment_id = client.create_experiment("experiment: " + unicode_spaces.strip())
run = client.create_run(experiment_id, run_name="run: " + unicode_spaces.strip())
client.create_registered_model("m", description=double_quoted)
client.create_model_version("m", "file:///tmp/x", run.info.run_id, description=single_quoted)

print(
    json.dumps(
        {
            "experiment_id": experiment_id,
            "experiment_name": client.get_experiment(experiment_id).name,
            "run_id": run.info.run_id,
            "run_name": client.get_run(run.info.run_id).info.run_name,
            "model_description": client.get_registered_model("m").description,
            "version_description": client.get_model_version("m", "1").description,
        }
    )
)
