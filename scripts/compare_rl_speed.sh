#!/usr/bin/env bash
# Side-by-side training speed on CartPole-v1, same machine, same moment, same hyperparameters
# (SB3's defaults for PPO; rl-baselines3-zoo's CartPole-v1 settings for DQN):
#
# - Stable-Baselines3 (PyTorch, one thread, its fastest setting on this machine);
# - a PureJaxRL-style PPO compiled end to end by XLA (scripts/ppo_cartpole_jax.py), timed
#   after compilation;
# - Ratchet: `ratchet train --env cartpole` as a user runs it (wall time of the whole run:
#   logging, checkpoints, evaluation), interleaved round by round with the JAX runs, and
#   `cargo bench --bench agents` (criterion), which also measures one core's FP32 peak (with
#   fused multiply-adds, and with separate multiplies and adds) to put DQN's FLOP rate against,
#   and ends with a report naming the CPU, its caches, both peaks and DQN's fraction of each,
#   printed again after the summary.
#
#   scripts/compare_rl_speed.sh                  # PPO over 61,440 steps, best of 3 rounds
#   PPO_STEPS=40960 ROUNDS=5 scripts/compare_rl_speed.sh
#   DQN_STEPS=20480 scripts/compare_rl_speed.sh  # SB3's DQN over 10,240 steps by default
#   SKIP_SB3=1 scripts/compare_rl_speed.sh       # without SB3 (its venv pulls torch, ~2.5 GB)
#
# The Python side runs from venvs under ~/.cache/ratchet, made from PyPI when missing:
# sb3-venv (stable-baselines3, which pulls torch and gymnasium) and jax-venv (jax, flax,
# optax). Other work on the machine skews every figure: the load average is printed before
# and after.
set -euo pipefail

cd "$(dirname "$0")/.."
# The same build as `cargo run --release` and scripts/test.sh: ./target unless set.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
SB3_VENV="${SB3_VENV:-$HOME/.cache/ratchet/sb3-venv}"
JAX_VENV="${JAX_VENV:-$HOME/.cache/ratchet/jax-venv}"
PPO_STEPS="${PPO_STEPS:-61440}"
DQN_STEPS="${DQN_STEPS:-10240}"
ROUNDS="${ROUNDS:-3}"

source scripts/venv.sh
[ "${SKIP_SB3:-0}" = 1 ] || ensure_venv "$SB3_VENV" stable_baselines3 stable-baselines3
ensure_venv "$JAX_VENV" "jax, flax, optax" jax flax optax
cargo build --release --quiet
RATCHET="$CARGO_TARGET_DIR/release/ratchet"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

SB3_PPO=nan
SB3_DQN=nan
if [ "${SKIP_SB3:-0}" != 1 ]; then
echo "== Stable-Baselines3: PPO(\"MlpPolicy\", \"CartPole-v1\"), defaults, 1 env, $PPO_STEPS steps, best of $ROUNDS"
SB3_PPO=$("$SB3_VENV/bin/python" - "$PPO_STEPS" "$ROUNDS" <<'PY'
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
SB3_DQN=$("$SB3_VENV/bin/python" - "$DQN_STEPS" "$ROUNDS" <<'PY'
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

fi
echo "== JAX PPO (compiled) and ratchet train --env cartpole --algo ppo --steps $PPO_STEPS (--arithmetic exact, then fma), alternating, best of $ROUNDS"
TRACKING=$(mktemp -d)
trap 'rm -rf "$TRACKING"' EXIT
JAX_PPO=0
CLI_PPO=0
CLI_PPO_FMA=0
ratchet_train() {
    "$RATCHET" train --env cartpole --algo ppo --steps "$PPO_STEPS" --seed "$1" --arithmetic "$2" \
        --tracking-uri "$TRACKING/$1-$2" --json |
        "$JAX_VENV/bin/python" -c 'import json, sys; o = json.load(sys.stdin); print(o["total_steps"] / o["wall_time_s"])'
}
for round in $(seq "$ROUNDS"); do
    jax=$("$JAX_VENV/bin/python" scripts/ppo_cartpole_jax.py "$PPO_STEPS" 1)
    cli=$(ratchet_train "$round" exact)
    fma=$(ratchet_train "$round" fma)
    printf '  round %s: JAX %8.0f  ratchet train %8.0f, with fma %8.0f env steps/s  (load %s)\n' \
        "$round" "$jax" "$cli" "$fma" "$(cut -d' ' -f1 /proc/loadavg)"
    JAX_PPO=$("$JAX_VENV/bin/python" -c "print(max($JAX_PPO, $jax))")
    CLI_PPO=$("$JAX_VENV/bin/python" -c "print(max($CLI_PPO, $cli))")
    CLI_PPO_FMA=$("$JAX_VENV/bin/python" -c "print(max($CLI_PPO_FMA, $fma))")
done

echo "== ratchet: cargo bench --workspace --bench agents"
BENCH_OUT="$TRACKING/bench.txt"
cargo bench --workspace --bench agents 2>&1 | tee "$BENCH_OUT" | grep -E '^(ppo|dqn|peak)/|thrpt:' || true
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$JAX_VENV/bin/python" - "$CARGO_TARGET_DIR/criterion" "$SB3_PPO" "$SB3_DQN" "$JAX_PPO" "$CLI_PPO" "$CLI_PPO_FMA" <<'PY'
import sys
sys.path.insert(0, "scripts")
from criterion_estimates import rate as criterion_rate
root = sys.argv[1]
sb3_ppo, sb3_dqn, jax_ppo, cli_ppo, cli_ppo_fma = map(float, sys.argv[2:7])
rate = lambda group, bench: criterion_rate(root, group, bench)

print("== summary (env steps/s; criterion's median for the benches, the best round otherwise)")
print(f"{'':<46}{'SB3':>10}{'JAX':>10}{'Ratchet':>10}{'/SB3':>8}{'/JAX':>8}")
row = lambda label, sb3, jax, ours: print(
    f"{label:<46}{sb3:>10,.0f}{jax if jax else float('nan'):>10,.0f}{ours:>10,.0f}"
    f"{ours / sb3:>7.1f}x" + (f"{ours / jax:>7.2f}x" if jax else ""))
row("PPO, CartPole, SB3 defaults: ratchet train", sb3_ppo, jax_ppo, cli_ppo)
row("  the same, --arithmetic fma", sb3_ppo, jax_ppo, cli_ppo_fma)
row("PPO, CartPole, SB3 defaults: cargo bench", sb3_ppo, jax_ppo, rate("ppo", "cartpole_sb3_defaults"))
row("  the same, arithmetic fma", sb3_ppo, jax_ppo, rate("ppo", "cartpole_sb3_defaults_fma"))
for bench, label in [("cartpole_rl_zoo", "DQN, rl-zoo settings (double DQN)"),
                     ("cartpole_rl_zoo_fma", "  the same, arithmetic fma"),
                     ("cartpole_rl_zoo_plain", "DQN, rl-zoo settings (plain DQN)")]:
    row(label, sb3_dqn, 0, rate("dqn", bench))
PY
# The bench's own report: the CPU, its caches, the peaks it measured and DQN's fraction of them.
echo
sed -n 's/^report: //p' "$BENCH_OUT"
