"""PPO on CartPole-v1 compiled end to end with JAX, the reference Ratchet's speed is held to.

PureJaxRL-style: the CartPole dynamics, the rollout, GAE and every minibatch update of one
iteration are a single jitted function (lax.scan over steps, epochs and minibatches), so after
the first call nothing but XLA's compiled code runs. Hyperparameters are Stable-Baselines3's
PPO defaults, the workload Ratchet's `ppo/cartpole_sb3_defaults` benchmark runs: 1 environment,
2048-step rollouts, 10 epochs of 64-sample minibatches, separate 64x64 tanh actor and critic
with orthogonal initialisation, Adam 3e-4 (eps 1e-5), clip 0.2, GAE 0.95, gamma 0.99,
value coefficient 0.5, global gradient-norm clipping 0.5, per-minibatch advantage
normalisation.

    python scripts/ppo_cartpole_jax.py STEPS ROUNDS

prints the best of ROUNDS runs of STEPS environment steps (rounded up to whole iterations),
timed after compilation, as env steps/s on the last line; details go to stderr.
"""

import sys
import time
from importlib.metadata import version

import jax
import jax.numpy as jnp
import flax.linen as nn
import optax

N_STEPS, EPOCHS, BATCH = 2048, 10, 64
GAMMA, LAMBDA, CLIP, VF_COEF, MAX_NORM, LR, ADAM_EPS = 0.99, 0.95, 0.2, 0.5, 0.5, 3e-4, 1e-5

# Gymnasium's CartPole-v1.
GRAVITY, M_CART, M_POLE, HALF_LEN, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
THETA_LIMIT, X_LIMIT, MAX_EPISODE = 12 * 2 * jnp.pi / 360, 2.4, 500


def env_reset(key):
    return jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05), jnp.int32(0)


def env_step(key, state, action):
    """One step with auto-reset: (new state, observation, reward, done)."""
    (x, x_dot, th, th_dot), t = state
    force = jnp.where(action == 1, FORCE, -FORCE)
    sin, cos = jnp.sin(th), jnp.cos(th)
    total = M_CART + M_POLE
    temp = (force + M_POLE * HALF_LEN * th_dot**2 * sin) / total
    th_acc = (GRAVITY * sin - cos * temp) / (HALF_LEN * (4 / 3 - M_POLE * cos**2 / total))
    x_acc = temp - M_POLE * HALF_LEN * th_acc * cos / total
    s = jnp.array([x + TAU * x_dot, x_dot + TAU * x_acc, th + TAU * th_dot, th_dot + TAU * th_acc])
    t = t + 1
    done = (jnp.abs(s[0]) > X_LIMIT) | (jnp.abs(s[2]) > THETA_LIMIT) | (t >= MAX_EPISODE)
    reset_s, reset_t = env_reset(key)
    s, t = jnp.where(done, reset_s, s), jnp.where(done, reset_t, t)
    return (s, t), s, 1.0, done


class Mlp(nn.Module):
    outputs: int
    gain: float

    @nn.compact
    def __call__(self, x):
        ortho = nn.initializers.orthogonal
        for _ in range(2):
            x = jnp.tanh(nn.Dense(64, kernel_init=ortho(jnp.sqrt(2.0)))(x))
        return nn.Dense(self.outputs, kernel_init=ortho(self.gain))(x)


actor, critic = Mlp(2, 0.01), Mlp(1, 1.0)
optimizer = optax.chain(optax.clip_by_global_norm(MAX_NORM), optax.adam(LR, eps=ADAM_EPS))


def loss_fn(params, obs, actions, old_log_probs, advantages, returns):
    log_probs = jax.nn.log_softmax(actor.apply(params["actor"], obs))
    log_prob = jnp.take_along_axis(log_probs, actions[:, None], axis=1)[:, 0]
    ratio = jnp.exp(log_prob - old_log_probs)
    adv = (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-8)
    policy_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - CLIP, 1 + CLIP) * adv).mean()
    values = critic.apply(params["critic"], obs)[:, 0]
    return policy_loss + VF_COEF * ((returns - values) ** 2).mean()


@jax.jit
def iteration(carry, _=None):
    """One PPO iteration: rollout, GAE, EPOCHS passes of minibatch updates."""
    params, opt_state, env_state, obs, key = carry

    def rollout_step(c, _):
        env_state, obs, key = c
        key, k_act, k_env = jax.random.split(key, 3)
        logits = actor.apply(params["actor"], obs)
        action = jax.random.categorical(k_act, logits)
        log_prob = jax.nn.log_softmax(logits)[action]
        value = critic.apply(params["critic"], obs)[0]
        env_state, next_obs, reward, done = env_step(k_env, env_state, action)
        return (env_state, next_obs, key), (obs, action, log_prob, value, reward, done)

    (env_state, obs, key), batch = jax.lax.scan(rollout_step, (env_state, obs, key), None, N_STEPS)
    observations, actions, log_probs, values, rewards, dones = batch
    last_value = critic.apply(params["critic"], obs)[0]

    def gae_step(c, t):
        gae, next_value = c
        value, reward, done = t
        delta = reward + GAMMA * next_value * (1 - done) - value
        gae = delta + GAMMA * LAMBDA * (1 - done) * gae
        return (gae, value), gae

    _, advantages = jax.lax.scan(
        gae_step, (0.0, last_value), (values, rewards, dones.astype(jnp.float32)), reverse=True
    )
    returns = advantages + values

    def epoch(c, _):
        params, opt_state, key = c
        key, k_perm = jax.random.split(key)
        order = jax.random.permutation(k_perm, N_STEPS).reshape(-1, BATCH)

        def minibatch(c, idx):
            params, opt_state = c
            grads = jax.grad(loss_fn)(
                params, observations[idx], actions[idx], log_probs[idx], advantages[idx], returns[idx]
            )
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(minibatch, (params, opt_state), order)
        return (params, opt_state, key), None

    (params, opt_state, key), _ = jax.lax.scan(epoch, (params, opt_state, key), None, EPOCHS)
    episodes = dones.sum()
    mean_length = N_STEPS / jnp.maximum(episodes, 1)
    return (params, opt_state, env_state, obs, key), mean_length


def run(steps, seed):
    key = jax.random.PRNGKey(seed)
    key, k_a, k_c, k_env = jax.random.split(key, 4)
    params = {"actor": actor.init(k_a, jnp.zeros(4)), "critic": critic.init(k_c, jnp.zeros(4))}
    env_state = env_reset(k_env)
    carry = (params, optimizer.init(params), env_state, env_state[0], key)
    iterations = -(-steps // N_STEPS)
    start = time.perf_counter()
    carry, _ = iteration(carry)  # compiles
    jax.block_until_ready(carry)
    compiled = time.perf_counter()
    lengths = []
    for _ in range(iterations):
        carry, mean_length = iteration(carry)
        lengths.append(mean_length)
    jax.block_until_ready(carry)
    end = time.perf_counter()
    return iterations * N_STEPS / (end - compiled), compiled - start, float(lengths[-1])


if __name__ == "__main__":
    steps, rounds = int(sys.argv[1]), int(sys.argv[2])
    results = [run(steps, seed) for seed in range(rounds)]
    best = max(r[0] for r in results)
    print(
        f"jax {version('jax')} ({jax.devices()[0].platform}), flax {version('flax')}, "
        f"optax {version('optax')}; compile {results[0][1]:.1f} s; mean episode length in "
        f"the last rollout {', '.join(f'{r[2]:.0f}' for r in results)}",
        file=sys.stderr,
    )
    print(f"  PPO: {best:,.0f} env steps/s", file=sys.stderr)
    print(f"{best:.1f}")
