"""Reads criterion's saved estimates back, for the comparison scripts beside this file."""

import json
import os


def median_seconds(bench_dir):
    """Median time of one iteration in criterion's latest run saved in BENCH_DIR
    ($CARGO_TARGET_DIR/criterion/GROUP/BENCH)."""
    with open(os.path.join(bench_dir, "new", "estimates.json")) as f:
        return json.load(f)["median"]["point_estimate"] / 1e9


def rate(root, group, bench):
    """Elements per second at the median of criterion's latest run of GROUP/BENCH.

    ROOT is criterion's output folder ($CARGO_TARGET_DIR/criterion); the benchmark must
    declare an element throughput.
    """
    d = os.path.join(root, group, bench)
    with open(os.path.join(d, "new", "benchmark.json")) as f:
        elements = json.load(f)["throughput"]["Elements"]
    return elements / median_seconds(d)
