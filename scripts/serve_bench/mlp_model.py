"""Saves an MLflow pyfunc model equivalent to Ratchet's default trading network (112 -> 64 ->
64 -> 3, tanh, argmax to a position), the Python reference `scripts/serve_bench.sh` measures
`mlflow models serve` with. Usage: python mlp_model.py OUT_DIR"""
import sys

import mlflow.pyfunc
import numpy as np


class Mlp(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        rng = np.random.default_rng(0)
        sizes = [112, 64, 64, 3]
        self.layers = [
            (rng.normal(0, 1 / np.sqrt(i), (i, o)).astype(np.float32), np.zeros(o, np.float32))
            for i, o in zip(sizes, sizes[1:])
        ]

    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input, dtype=np.float32)
        for k, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if k + 1 < len(self.layers):
                x = np.tanh(x)
        return (x.argmax(axis=1) - 1).astype(np.float64)


mlflow.pyfunc.save_model(sys.argv[1], python_model=Mlp())
