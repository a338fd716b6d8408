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
# The same build as `cargo run --release` and scripts/test.sh: ./target unless set.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${PEERS_VENV:-$HOME/.cache/ratchet/peers-venv}"
STEPS="${STEPS:-1000000}"
PYTHON="${PYTHON:-python3}"

source scripts/venv.sh
ensure_venv "$VENV" gym_anytrading gym-anytrading

peer_rate() {
    echo "== gym-anytrading ($1): stocks-v0 (GOOGL), window 10, random actions, $STEPS steps, best of 3" >&2
    "$VENV/bin/python" - "$STEPS" <<'PY'
import sys, time, warnings
import numpy as np
import gymnasium as gym
import gym_anytrading  # registers stocks-v0
from gym_anytrading.datasets import STOCKS_GOOGL
from importlib.metadata import version

steps = int(sys.argv[1])
# gymnasium's passive checker warns that stocks-v0 returns views of one array; harmless here.
warnings.filterwarnings("ignore", category=UserWarning)
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
# The wrappers only add work, so a wrapped figure is also a lower bound on the raw rate:
# under a noisy load the better of the two is the fairer estimate of the raw step.
print(f"{max(raw, wrapped):.0f}")
PY
}

PEER_BEFORE=$(peer_rate "before ours")

echo "== ratchet: cargo bench --bench env_step"
bench_log=$(mktemp)
trap 'rm -f "$bench_log"' EXIT
if ! cargo bench --bench env_step >"$bench_log" 2>&1; then
    cat "$bench_log" >&2
    echo "cargo bench --bench env_step failed" >&2
    exit 1
fi
grep -E '^(trading_env|cartpole)/|thrpt:' "$bench_log"

# The machine's load can change while criterion runs; measuring the peer on both sides and
# dividing by the faster of the two keeps the ratio conservative.
PEER_AFTER=$(peer_rate "after ours")

"$VENV/bin/python" - "$CARGO_TARGET_DIR/criterion" "$PEER_BEFORE" "$PEER_AFTER" <<'PY'
import os, sys
sys.path.insert(0, "scripts")
from criterion_estimates import rate as criterion_rate
root, before, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
peer = max(before, after)
rate = lambda group, bench: criterion_rate(root, group, bench)

print(f"== summary on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
      "(median steps/s; ratio against the fastest gym-anytrading figure)")
print(f"{'gym-anytrading stocks-v0 raw step':<40}{peer:>16,.0f}{'1x':>10}"
      f"   (before {before:,.0f}, after {after:,.0f})")
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
