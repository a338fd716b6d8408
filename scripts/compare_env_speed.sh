#!/usr/bin/env bash
# Side-by-side environment speed: gym-anytrading's raw `env.step` against Ratchet's
# TradingEnv, same machine, same moment, comparable observation (window 10, two features
# per bar: close and its difference).
#
#   scripts/compare_env_speed.sh            # 1,000,000 gym-anytrading steps, best of 3
#   STEPS=200000 scripts/compare_env_speed.sh
#
# The peer runs from a venv (default $HOME/.cache/ratchet/peers-venv, made with
# gym-anytrading from PyPI if missing). Ratchet's figures come from
# `cargo bench --bench env_step` (criterion), read back from its estimates.
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ratchet-target}"
VENV="${PEERS_VENV:-$HOME/.cache/ratchet/peers-venv}"
STEPS="${STEPS:-1000000}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import gym_anytrading' 2>/dev/null; then
    echo "creating $VENV with gym-anytrading from PyPI" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet gym-anytrading
fi

echo "== gym-anytrading: stocks-v0 (GOOGL), window 10, random actions, $STEPS steps, best of 3"
PEER_RATE=$("$VENV/bin/python" - "$STEPS" <<'PY'
import sys, time
import numpy as np
import gymnasium as gym
import gym_anytrading  # registers stocks-v0
from gym_anytrading.datasets import STOCKS_GOOGL
from importlib.metadata import version

steps = int(sys.argv[1])
env = gym.make("stocks-v0", window_size=10, frame_bound=(10, len(STOCKS_GOOGL)))
actions = np.random.default_rng(0).integers(0, 2, steps).tolist()

def rate(step_env):
    step_env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = step_env.step(a)
        if terminated or truncated:
            step_env.reset()
    return steps / (time.perf_counter() - start)

raw = max(rate(env.unwrapped) for _ in range(3))
wrapped = max(rate(env) for _ in range(3))
print(f"gym-anytrading {version('gym-anytrading')}, gymnasium {version('gymnasium')}, "
      f"numpy {version('numpy')}; observation {env.observation_space.shape}", file=sys.stderr)
print(f"  raw env.unwrapped.step:        {raw:>12,.0f} steps/s", file=sys.stderr)
print(f"  gym.make wrappers included:    {wrapped:>12,.0f} steps/s", file=sys.stderr)
print(f"{raw:.0f}")
PY
)

echo "== ratchet: cargo bench --bench env_step"
cargo bench --bench env_step 2>&1 | grep -E '^(trading_env|cartpole)/|thrpt:' || true

"$VENV/bin/python" - "$CARGO_TARGET_DIR/criterion" "$PEER_RATE" <<'PY'
import json, os, sys
root, peer = sys.argv[1], float(sys.argv[2])

def rate(group, bench):
    d = os.path.join(root, group, bench, "new")
    with open(os.path.join(d, "estimates.json")) as f:
        ns = json.load(f)["median"]["point_estimate"]
    with open(os.path.join(d, "benchmark.json")) as f:
        elements = json.load(f)["throughput"]["Elements"]
    return elements / ns * 1e9

print("== summary (median steps/s; ratio against gym-anytrading's raw step)")
print(f"{'gym-anytrading stocks-v0 raw step':<40}{peer:>16,.0f}{'1x':>10}")
for group, bench in [
    ("trading_env", "single_log_return"),
    ("trading_env", "single_pnl"),
    ("trading_env", "single_differential_sharpe"),
    ("trading_env", "vec64_log_return"),
    ("trading_env", "vec64_pnl"),
    ("trading_env", "vec64_differential_sharpe"),
    ("cartpole", "single"),
]:
    r = rate(group, bench)
    label = f"{group}/{bench}"
    ratio = f"{r / peer:,.0f}x" if group == "trading_env" else ""
    print(f"{label:<40}{r:>16,.0f}{ratio:>10}")
PY
