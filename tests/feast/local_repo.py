"""What every Feast repository of the tests shares: a local one (file registry and offline
store under data/, SQLite online store), and `feast apply` with this interpreter's Feast."""

import os
import subprocess
import sys


def write_store_yaml(repo, project, extra=""):
    """Writes REPO/feature_store.yaml for `project`; `extra` is appended (an `mlflow:` section)."""
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(f"""project: {project}
provider: local
registry: data/registry.db
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
{extra}""")


def feast(repo, *args):
    """Runs the `feast` command of this venv in `repo` (`feast(repo, "apply")`)."""
    cli = os.path.join(os.path.dirname(sys.executable), "feast")
    subprocess.run([cli, *args], cwd=repo, check=True, stdout=subprocess.DEVNULL)
