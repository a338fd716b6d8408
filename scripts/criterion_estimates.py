"""Reads criterion's saved estimates back, for the comparison scripts beside this file."""

import json
import os


def rate(root, group, bench):
    """Elements per second at the median of criterion's latest run of GROUP/BENCH.

    ROOT is criterion's output folder ($CARGO_TARGET_DIR/criterion); the benchmark must
    declare an element throughput.
    """
    d = os.path.join(root, group, bench, "new")
    with open(os.path.join(d, "estimates.json")) as f:
        ns = json.load(f)["median"]["point_estimate"]
    with open(os.path.join(d, "benchmark.json")) as f:
        elements = json.load(f)["throughput"]["Elements"]
    return elements / ns * 1e9
