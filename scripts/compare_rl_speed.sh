#!/usr/bin/env bash
# Side-by-side training speed on CartPole-v1: Stable-Baselines3 (PyTorch, one thread, its
# fastest setting on this machine) against Ratchet, same machine, same moment, same
# hyperparameters (SB3's defaults for PPO; rl-baselines3-zoo's CartPole-v1 settings for DQN).
#
#   scripts/compare_rl_speed.sh                  # PPO: SB3 over 20,480 steps, best of 3
#   PPO_STEPS=40960 ROUNDS=5 scripts/compare_rl_speed.sh
#   DQN_STEPS=20480 scripts/compare_rl_speed.sh  # DQN: SB3 over 10,240 steps by default
#
# SB3 runs from a venv (default $HOME/.cache/ratchet/sb3-venv, made with stable-baselines3
# from PyPI if missing; that pulls torch and gymnasium). Ratchet's figures come from
# `cargo bench --bench agents` (criterion), read back from its estimates.
set -euo pipefail

cd "$(dirname "$0")/.."
# The same build as `cargo run --release` and scripts/test.sh: ./target unless set.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
VENV="${SB3_VENV:-$HOME/.cache/ratchet/sb3-venv}"
PPO_STEPS="${PPO_STEPS:-20480}"
DQN_STEPS="${DQN_STEPS:-10240}"
ROUNDS="${ROUNDS:-3}"
PYTHON="${PYTHON:-python3}"

source scripts/venv.sh
ensure_venv "$VENV" stable_baselines3 stable-baselines3

echo "== Stable-Baselines3: PPO(\"MlpPolicy\", \"CartPole-v1\"), defaults, 1 env, $PPO_STEPS steps, best of $ROUNDS"
SB3_PPO=$("$VENV/bin/python" - "$PPO_STEPS" "$ROUNDS" <<'PY'
import sys, time
import torch
torch.set_num_threads(1)
from importlib.metadata import version
from stable_baselines3 import PPO

steps, rounds = int(sys.argv[1]), int(sys.argv[2])

def rate():
    model = PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    # learn() rounds up to whole rollouts of n_steps.
    done = model.num_timesteps
    return done / (time.perf_counter() - start)

best = max(rate() for _ in range(rounds))
print(f"stable-baselines3 {version('stable-baselines3')}, torch {version('torch')} "
      f"({torch.get_num_threads()} thread), gymnasium {version('gymnasium')}", file=sys.stderr)
print(f"  PPO: {best:,.0f} env steps/s", file=sys.stderr)
print(f"{best:.1f}")
PY
)

echo "== Stable-Baselines3: DQN(\"MlpPolicy\", \"CartPole-v1\"), rl-zoo hyperparameters, 1 env, $DQN_STEPS steps after learning_starts, best of $ROUNDS"
SB3_DQN=$("$VENV/bin/python" - "$DQN_STEPS" "$ROUNDS" <<'PY'
import sys, time
import torch
torch.set_num_threads(1)
from stable_baselines3 import DQN

steps, rounds = int(sys.argv[1]), int(sys.argv[2])

def rate():
    # rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1.
    model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64,
                buffer_size=100_000, learning_starts=1_000, gamma=0.99,
                target_update_interval=10, train_freq=256, gradient_steps=128,
                exploration_fraction=0.16, exploration_final_eps=0.04,
                policy_kwargs=dict(net_arch=[256, 256]), seed=0, device="cpu")
    # Past learning_starts first, as Ratchet's benchmark is: the steady state, every
    # 256 steps followed by 128 gradient steps.
    model.learn(total_timesteps=1_024)
    before = model.num_timesteps
    start = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    return (model.num_timesteps - before) / (time.perf_counter() - start)

best = max(rate() for _ in range(rounds))
print(f"  DQN: {best:,.0f} env steps/s", file=sys.stderr)
print(f"{best:.1f}")
PY
)

echo "== ratchet: cargo bench --bench agents"
cargo bench --bench agents 2>&1 | grep -E '^(ppo|dqn)/|thrpt:' || true

"$VENV/bin/python" - "$CARGO_TARGET_DIR/criterion" "$SB3_PPO" "$SB3_DQN" <<'PY'
import sys
sys.path.insert(0, "scripts")
from criterion_estimates import rate as criterion_rate
root, sb3_ppo, sb3_dqn = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rate = lambda group, bench: criterion_rate(root, group, bench)

print("== summary (env steps/s; Ratchet's median over criterion samples, SB3's best round)")
print(f"{'':<44}{'SB3':>12}{'Ratchet':>12}{'ratio':>9}")
ours = rate("ppo", "cartpole_sb3_defaults")
print(f"{'PPO, CartPole, 1 env, SB3 defaults':<44}{sb3_ppo:>12,.0f}{ours:>12,.0f}{ours / sb3_ppo:>8.1f}x")
for bench, label in [("cartpole_rl_zoo", "DQN, CartPole, rl-zoo settings (double DQN)"),
                     ("cartpole_rl_zoo_plain", "DQN, CartPole, rl-zoo settings (plain DQN)")]:
    ours = rate("dqn", bench)
    print(f"{label:<44}{sb3_dqn:>12,.0f}{ours:>12,.0f}{ours / sb3_dqn:>8.1f}x")
PY
