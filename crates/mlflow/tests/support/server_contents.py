"""Prints, as one JSON document, everything an MLflow tracking server holds, read with
MLflow's own client: experiments, runs (with tags and every metric's full history) and
registered models with their versions. Tests count what is there with it.

usage: python server_contents.py SERVER_URL
"""

import json
import sys

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient


def main():
    url = sys.argv[1]
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs(
        [e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=50000
    )
    models = client.search_registered_models()
    print(
        json.dumps(
            {
                "experiments": sorted(e.name for e in experiments),
                "runs": [
                    {
                        "run_id": r.info.run_id,
                        "experiment": client.get_experiment(r.info.experiment_id).name,
                        "name": r.info.run_name,
                        "status": r.info.status,
                        "tags": r.data.tags,
                        "params": r.data.params,
                        # repr() keeps every bit of the value and also writes NaN.
                        "histories": {
                            key: [
                                [m.step, m.timestamp, repr(m.value)]
                                for m in client.get_metric_history(r.info.run_id, key)
                            ]
                            for key in sorted(r.data.metrics)
                        },
                    }
                    for r in runs
                ],
                "models": {
                    m.name: [
                        {"version": v.version, "run_id": v.run_id, "tags": v.tags}
                        for v in sorted(
                            client.search_model_versions(f"name = '{m.name}'"),
                            key=lambda v: int(v.version),
                        )
                    ]
                    for m in models
                },
            }
        )
    )


if __name__ == "__main__":
    main()
