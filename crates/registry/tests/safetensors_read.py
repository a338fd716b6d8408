"""Reads a safetensors file with Python's `safetensors` library (numpy backend) and prints
JSON: every tensor's shape, dtype and float64 sum, plus the header metadata."""
import json
import sys

from safetensors import safe_open

path = sys.argv[1]
out = {"tensors": {}, "metadata": None}
with safe_open(path, framework="np") as f:
    out["metadata"] = f.metadata()
    for name in f.keys():
        array = f.get_tensor(name)
        out["tensors"][name] = {
            "shape": list(array.shape),
            "dtype": str(array.dtype),
            "sum": float(array.astype("float64").sum()),
            # Exact: the float32 bit pattern of the first element.
            "first_bits": int(array.reshape(-1)[:1].view("uint32")[0]) if array.size else None,
        }
print(json.dumps(out))
