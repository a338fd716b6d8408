//! Behaviour of `TradingEnv`: causality, fills, accounting, rewards, episodes, state.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::sync::Arc;

use ratchet_env::execution::{Costs, bar_factor};
use ratchet_env::{
    Env, EpisodeMode, MarketData, RewardKind, Rng, TradingConfig, TradingEnv, VecEnv,
};

/// A random walk with gaps between close and next open; features are (close, Δclose).
fn walk(rows: usize, seed: u64) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let mut rng = Rng::seed_from(seed);
    let (mut open, mut close) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    let mut price = 100.0;
    for _ in 0..rows {
        let o = price * (1.0 + 0.003 * rng.normal());
        price = o * (1.0 + 0.01 * rng.normal());
        open.push(o);
        close.push(price);
    }
    (features_of(&close), open, close)
}

fn features_of(close: &[f64]) -> Vec<f32> {
    let mut f = Vec::with_capacity(close.len() * 2);
    for (i, &c) in close.iter().enumerate() {
        let prev = if i == 0 { c } else { close[i - 1] };
        f.extend([c as f32, (c - prev) as f32]);
    }
    f
}

fn market(rows: usize, seed: u64) -> Arc<MarketData> {
    let (f, o, c) = walk(rows, seed);
    Arc::new(MarketData::new(f, 2, o, c).unwrap())
}

fn config(window: usize, reward: RewardKind) -> TradingConfig {
    TradingConfig {
        window,
        episode_length: 20,
        reward,
        ..TradingConfig::default()
    }
}

fn obs_buf(env: &TradingEnv) -> Vec<f32> {
    vec![0.0; env.observation_size()]
}

/// Steps a full-range episode with the given actions (cycled); returns every observation,
/// reward and the equity after each step.
fn run(env: &mut TradingEnv, actions: &[usize]) -> (Vec<Vec<f32>>, Vec<f32>, Vec<f64>) {
    let mut obs = obs_buf(env);
    env.reset(&mut Rng::seed_from(0), &mut obs);
    let (mut all_obs, mut rewards, mut equity) = (vec![obs.clone()], vec![], vec![]);
    for i in 0.. {
        let s = env.step(actions[i % actions.len()], &mut obs);
        all_obs.push(obs.clone());
        rewards.push(s.reward);
        equity.push(env.equity());
        if s.done() {
            break;
        }
    }
    (all_obs, rewards, equity)
}

#[test]
fn observation_is_the_feature_window_then_position_and_unrealised_pnl() {
    let data = market(40, 1);
    let mut env = TradingEnv::new(
        data.clone(),
        5..40,
        config(4, RewardKind::LogReturn),
        EpisodeMode::FullRange,
    )
    .unwrap();
    assert_eq!(env.observation_size(), 4 * 2 + 2);
    assert_eq!(env.action_count(), 3);
    let mut obs = obs_buf(&env);
    env.reset(&mut Rng::seed_from(0), &mut obs);
    assert_eq!(
        env.bar(),
        8,
        "first decision bar = range start + window - 1"
    );
    assert_eq!(&obs[..8], &data.features[5 * 2..9 * 2]);
    assert_eq!(&obs[8..], &[0.0, 0.0]);
    env.step(2, &mut obs);
    assert_eq!(env.bar(), 9);
    assert_eq!(&obs[..8], &data.features[6 * 2..10 * 2]);
    assert_eq!(obs[8], 1.0);
    let unrealised = data.close[9] / data.open[9] - 1.0;
    assert_eq!(obs[9], unrealised as f32);
    env.step(2, &mut obs); // held: entry price stays bar 9's open
    assert_eq!(obs[9], (data.close[10] / data.open[9] - 1.0) as f32);
    env.step(0, &mut obs); // reversed to short at bar 11's open
    assert_eq!(obs[8], -1.0);
    assert_eq!(obs[9], (-(data.close[11] / data.open[11] - 1.0)) as f32);
    env.step(1, &mut obs);
    assert_eq!(&obs[8..], &[0.0, 0.0]);
}

/// Changing anything after bar t changes neither what the agent sees at t nor anything it
/// was paid up to t; changing bars after t + 1 leaves the step from t to t + 1 alone too.
#[test]
fn no_look_ahead_in_observations_or_fills() {
    let (f, o, c) = walk(60, 2);
    let actions = [2, 2, 0, 1, 0, 0, 2, 1];
    let mut rng = Rng::seed_from(3);
    // Every feature and price of bars `from..` moved.
    let mut perturbed = |from: usize| {
        let (mut f2, mut o2, mut c2) = (f.clone(), o.clone(), c.clone());
        for i in from..60 {
            o2[i] *= 1.0 + 0.05 * rng.normal().abs() + 0.01;
            c2[i] *= 1.0 - 0.05 * rng.normal().abs() - 0.01;
            f2[i * 2] += 1.0 + rng.next_f32();
            f2[i * 2 + 1] -= 1.0 + rng.next_f32();
        }
        Arc::new(MarketData::new(f2, 2, o2, c2).unwrap())
    };
    let base = Arc::new(MarketData::new(f.clone(), 2, o.clone(), c.clone()).unwrap());
    for kind in [
        RewardKind::LogReturn,
        RewardKind::Pnl,
        RewardKind::DifferentialSharpe,
    ] {
        let episode = |data: Arc<MarketData>| {
            let mut env =
                TradingEnv::new(data, 0..60, config(5, kind), EpisodeMode::FullRange).unwrap();
            run(&mut env, &actions)
        };
        let (obs0, rewards0, equity0) = episode(base.clone());
        for t in [4usize, 10, 23, 41, 57] {
            // Observation k is at bar 4 + k; reward k is paid for the step 4+k -> 5+k.
            let k = t - 4;
            let (obs1, rewards1, equity1) = episode(perturbed(t + 1));
            assert_eq!(
                obs0[..=k],
                obs1[..=k],
                "{kind:?}: observations up to bar {t}"
            );
            assert_eq!(
                rewards0[..k],
                rewards1[..k],
                "{kind:?}: rewards up to bar {t}"
            );
            assert_eq!(equity0[..k], equity1[..k]);
            assert_ne!(obs0[k + 1], obs1[k + 1], "the perturbation took effect");

            let (obs2, rewards2, equity2) = episode(perturbed(t + 2));
            assert_eq!(obs0[..=k], obs2[..=k]);
            assert_eq!(
                rewards0[..=k],
                rewards2[..=k],
                "{kind:?}: the step from bar {t}"
            );
            assert_eq!(equity0[..=k], equity2[..=k]);
        }
    }
}

/// The decision at t fills at open[t+1]: data that differ only in that open give exactly
/// the equity that bar_factor predicts with that open, and the close of t+1 is not the
/// fill price.
#[test]
fn fill_is_at_the_next_open() {
    let close = vec![100.0, 100.0, 110.0, 110.0];
    let costs = Costs {
        cost_bps: 10.0,
        slippage_bps: 0.0,
    };
    for next_open in [90.0, 100.0, 105.0] {
        let open = vec![100.0, 100.0, next_open, 110.0];
        let data = Arc::new(MarketData::new(features_of(&close), 2, open, close.clone()).unwrap());
        let cfg = TradingConfig {
            window: 2,
            costs,
            reward: RewardKind::Pnl,
            ..TradingConfig::default()
        };
        let mut env = TradingEnv::new(data, 0..4, cfg, EpisodeMode::FullRange).unwrap();
        let mut obs = obs_buf(&env);
        env.reset(&mut Rng::seed_from(0), &mut obs);
        assert_eq!(env.bar(), 1);
        let step = env.step(2, &mut obs); // long, decided at bar 1
        let expected = 0.999 * 110.0 / next_open;
        assert!(
            (env.equity() - expected).abs() < 1e-12,
            "{} vs {expected}",
            env.equity()
        );
        assert_eq!(
            env.equity(),
            bar_factor(0.0, 1.0, 100.0, next_open, 110.0, costs)
        );
        assert!((step.reward as f64 - (expected - 1.0)).abs() < 1e-6);
        assert_eq!(
            obs[5],
            (110.0 / next_open - 1.0) as f32,
            "entry price is the open fill"
        );
    }
}

/// Five bars, 15 bps per unit traded: long, hold, reverse to short, close out.
#[test]
fn cost_accounting_matches_a_hand_computed_example() {
    let open = vec![100.0, 101.0, 104.0, 102.0, 99.0];
    let close = vec![100.0, 102.0, 103.0, 100.0, 98.0];
    let costs = Costs {
        cost_bps: 10.0,
        slippage_bps: 5.0,
    };
    // By hand: gap (old position) x fee x session (new position).
    let factors = [
        (1.0 - 0.0015) * (102.0 / 101.0),  // flat -> long at 101, close 102
        (104.0 / 102.0) * (103.0 / 104.0), // hold long: gap up, session down
        (102.0 / 103.0) * (1.0 - 0.003) * (1.0 + 2.0 / 102.0), // long -> short at 102, close 100
        (1.0 + 1.0 / 100.0) * (1.0 - 0.0015), // short gap 100 -> 99, then flat
    ];
    let actions = [2, 2, 0, 1];
    for kind in [RewardKind::LogReturn, RewardKind::Pnl] {
        let data =
            Arc::new(MarketData::new(features_of(&close), 2, open.clone(), close.clone()).unwrap());
        let cfg = TradingConfig {
            window: 1,
            costs,
            reward: kind,
            ..TradingConfig::default()
        };
        let mut env = TradingEnv::new(data, 0..5, cfg, EpisodeMode::FullRange).unwrap();
        let mut obs = obs_buf(&env);
        env.reset(&mut Rng::seed_from(0), &mut obs);
        let mut equity = 1.0;
        for (i, (&a, &f)) in actions.iter().zip(&factors).enumerate() {
            let step = env.step(a, &mut obs);
            let expected_reward = match kind {
                RewardKind::LogReturn => f64::ln(f),
                _ => equity * f - equity,
            };
            equity *= f;
            assert!(
                (env.equity() - equity).abs() < 1e-12,
                "step {i}: {} vs {equity}",
                env.equity()
            );
            assert!(
                (step.reward as f64 - expected_reward).abs() < 1e-6,
                "step {i}: reward {} vs {expected_reward}",
                step.reward
            );
            assert!(!step.terminated);
            assert_eq!(step.truncated, i == 3, "the range ends at bar 4");
        }
        // 1 * 0.9985 * 102/101 * 103/102 * 102/103 * 0.997 * 104/102 * 1.01 * 0.9985
        let total = 0.9985 * 0.997 * 0.9985 * 1.01 * 104.0 / 101.0;
        assert!((env.equity() - total).abs() < 1e-12);
        assert_eq!(env.position(), 0.0);
    }
}

/// Differential Sharpe ratio with eta = 0.5 and bar returns +10%, -10%, +20%, by hand:
/// A0 = B0 = 0 (no variance yet: D1 = 0); A1 = 0.05, B1 = 0.005;
/// D2 = (0.005 * -0.15 - 0.5 * 0.05 * 0.005) / 0.0025^1.5 = -0.000875 / 0.000125 = -7;
/// A2 = -0.025, B2 = 0.0075;
/// D3 = (0.0075 * 0.225 + 0.5 * 0.025 * 0.0325) / 0.006875^1.5 = 0.00209375 / 0.006875^1.5.
#[test]
fn differential_sharpe_matches_a_hand_computed_example() {
    let close = vec![100.0, 110.0, 99.0, 118.8];
    let open = vec![100.0, 100.0, 110.0, 99.0];
    let cfg = TradingConfig {
        window: 1,
        costs: Costs {
            cost_bps: 0.0,
            slippage_bps: 0.0,
        },
        reward: RewardKind::DifferentialSharpe,
        dsr_eta: 0.5,
        ..TradingConfig::default()
    };
    let data = Arc::new(MarketData::new(features_of(&close), 2, open, close).unwrap());
    let mut env = TradingEnv::new(data, 0..4, cfg, EpisodeMode::FullRange).unwrap();
    let mut obs = obs_buf(&env);
    env.reset(&mut Rng::seed_from(0), &mut obs);
    let rewards: Vec<f32> = (0..3).map(|_| env.step(2, &mut obs).reward).collect();
    let expected = [0.0, -7.0, 0.00209375 / 0.006875f64.powf(1.5)];
    for (got, want) in rewards.iter().zip(expected) {
        assert!(
            (*got as f64 - want).abs() < 1e-5 * want.abs().max(1.0),
            "{rewards:?} vs {expected:?}"
        );
    }
    assert!((expected[2] - 3.673).abs() < 1e-3);
    let state = env.state();
    assert!(
        (state[5] - 0.0875).abs() < 1e-12,
        "A3 = -0.025 + 0.5 * 0.225"
    );
    assert!(
        (state[6] - 0.02375).abs() < 1e-12,
        "B3 = 0.0075 + 0.5 * 0.0325"
    );
}

#[test]
fn without_shorting_there_are_two_actions_flat_and_long() {
    let cfg = TradingConfig {
        allow_short: false,
        ..config(3, RewardKind::LogReturn)
    };
    let mut env = TradingEnv::new(market(50, 4), 0..50, cfg, EpisodeMode::FullRange).unwrap();
    assert_eq!(env.action_count(), 2);
    assert_eq!(env.action_to_position(0), 0.0);
    assert_eq!(env.action_to_position(1), 1.0);
    let mut obs = obs_buf(&env);
    env.reset(&mut Rng::seed_from(0), &mut obs);
    let mut rng = Rng::seed_from(5);
    loop {
        let s = env.step(rng.below(2) as usize, &mut obs);
        assert!(env.position() >= 0.0 && obs[6] >= 0.0);
        if s.done() {
            break;
        }
    }
    let with_short = TradingEnv::new(
        market(50, 4),
        0..50,
        config(3, RewardKind::LogReturn),
        EpisodeMode::FullRange,
    )
    .unwrap();
    assert_eq!(with_short.action_to_position(0), -1.0);
    assert_eq!(with_short.action_to_position(1), 0.0);
    assert_eq!(with_short.action_to_position(2), 1.0);
}

#[test]
#[should_panic(expected = "action 2 is out of range")]
fn an_action_beyond_the_action_count_is_a_programming_error() {
    let cfg = TradingConfig {
        allow_short: false,
        ..config(3, RewardKind::LogReturn)
    };
    let mut env = TradingEnv::new(market(50, 4), 0..50, cfg, EpisodeMode::FullRange).unwrap();
    let mut obs = obs_buf(&env);
    env.step(2, &mut obs);
}

#[test]
fn random_start_episodes_have_the_right_length_and_start_in_range_reproducibly() {
    let range = 100..400;
    let window = 10;
    let make = || {
        let cfg = TradingConfig {
            episode_length: 50,
            ..config(window, RewardKind::LogReturn)
        };
        TradingEnv::new(
            market(500, 6),
            range.clone(),
            cfg,
            EpisodeMode::RandomStarts,
        )
        .unwrap()
    };
    let episodes = |seed: u64| {
        let mut env = make();
        let mut rng = Rng::seed_from(seed);
        let mut obs = obs_buf(&env);
        let mut starts = vec![];
        for _ in 0..200 {
            env.reset(&mut rng, &mut obs);
            let start = env.bar();
            assert_eq!(env.episode_start(), start);
            // A full window inside the range, and room for 50 fills inside it.
            assert!(
                start >= range.start + window - 1 && start + 50 < range.end,
                "start {start}"
            );
            assert_eq!(&obs[..20], &env_features(&env, start));
            for k in 1..=50 {
                let s = env.step((k % 3) as usize, &mut obs);
                assert!(!s.terminated);
                assert_eq!(s.truncated, k == 50, "step {k} of 50");
            }
            assert_eq!(env.bar(), start + 50);
            starts.push(start);
        }
        starts
    };
    let a = episodes(11);
    assert_eq!(a, episodes(11), "same seed, same episodes");
    assert_ne!(a, episodes(12));
    // Starts spread over the whole admissible span 109..=349.
    assert!(
        *a.iter().min().unwrap() < 130 && *a.iter().max().unwrap() > 330,
        "{a:?}"
    );
}

fn env_features(env: &TradingEnv, bar: usize) -> Vec<f32> {
    let (f, _, _) = walk(500, 6);
    f[(bar + 1 - env.config().window) * 2..(bar + 1) * 2].to_vec()
}

#[test]
fn a_range_shorter_than_the_episode_length_gives_the_whole_range() {
    let cfg = TradingConfig {
        episode_length: 1000,
        ..config(5, RewardKind::LogReturn)
    };
    let mut env = TradingEnv::new(market(100, 7), 20..60, cfg, EpisodeMode::RandomStarts).unwrap();
    let mut obs = obs_buf(&env);
    let mut rng = Rng::seed_from(1);
    env.reset(&mut rng, &mut obs);
    assert_eq!(env.bar(), 24);
    let n = (1..).find(|_| env.step(1, &mut obs).done()).unwrap();
    assert_eq!(n, 35);
    assert_eq!(env.bar(), 59);
}

#[test]
fn full_range_covers_every_decision_bar_exactly_once_and_draws_nothing() {
    let range = 30..130;
    let mut env = TradingEnv::new(
        market(200, 8),
        range.clone(),
        config(10, RewardKind::Pnl),
        EpisodeMode::FullRange,
    )
    .unwrap();
    let mut obs = obs_buf(&env);
    let mut rng = Rng::seed_from(9);
    let before = rng.state();
    for _ in 0..2 {
        env.reset(&mut rng, &mut obs);
        let mut bars = vec![env.bar()];
        loop {
            let s = env.step(2, &mut obs);
            bars.push(env.bar());
            if s.done() {
                assert!(s.truncated && !s.terminated);
                break;
            }
        }
        assert_eq!(bars, (39..130).collect::<Vec<_>>());
    }
    assert_eq!(rng.state(), before);
}

#[test]
#[should_panic(expected = "call reset first")]
fn stepping_past_the_end_is_a_programming_error() {
    let mut env = TradingEnv::new(
        market(20, 1),
        0..20,
        config(5, RewardKind::LogReturn),
        EpisodeMode::FullRange,
    )
    .unwrap();
    let mut obs = obs_buf(&env);
    while !env.step(1, &mut obs).done() {}
    env.step(1, &mut obs);
}

#[test]
fn state_round_trip_mid_episode_continues_bitwise_identically() {
    let data = market(400, 10);
    for kind in [
        RewardKind::LogReturn,
        RewardKind::Pnl,
        RewardKind::DifferentialSharpe,
    ] {
        for mode in [EpisodeMode::RandomStarts, EpisodeMode::FullRange] {
            let cfg = TradingConfig {
                episode_length: 120,
                ..config(10, kind)
            };
            let mut a = TradingEnv::new(data.clone(), 50..350, cfg.clone(), mode).unwrap();
            let mut obs_a = obs_buf(&a);
            let mut rng = Rng::seed_from(21);
            a.reset(&mut rng, &mut obs_a);
            let mut actions = Rng::seed_from(22);
            for _ in 0..37 {
                a.step(actions.below(3) as usize, &mut obs_a);
            }
            let saved = a.state();
            let mut b = TradingEnv::new(data.clone(), 50..350, cfg, mode).unwrap();
            let mut obs_b = obs_buf(&b);
            b.reset(&mut Rng::seed_from(99), &mut obs_b);
            b.restore(&saved).unwrap();
            assert_eq!(b.state(), saved);
            obs_b.copy_from_slice(&obs_a);
            loop {
                let action = actions.below(3) as usize;
                let (sa, sb) = (a.step(action, &mut obs_a), b.step(action, &mut obs_b));
                assert_eq!(
                    sa.reward.to_bits(),
                    sb.reward.to_bits(),
                    "{kind:?} {mode:?}"
                );
                assert_eq!((sa.terminated, sa.truncated), (sb.terminated, sb.truncated));
                let bits = |o: &[f32]| o.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&obs_a), bits(&obs_b));
                if sa.done() {
                    break;
                }
            }
            let bits = |s: Vec<f64>| s.into_iter().map(f64::to_bits).collect::<Vec<_>>();
            assert_eq!(bits(a.state()), bits(b.state()));
            a.reset(&mut rng.clone(), &mut obs_a);
            b.reset(&mut rng, &mut obs_b);
            assert_eq!(a.state(), b.state());
        }
    }
}

#[test]
fn restore_rejects_states_this_environment_cannot_be_in() {
    let cfg = TradingConfig {
        allow_short: false,
        episode_length: 30,
        ..config(10, RewardKind::LogReturn)
    };
    let mut env = TradingEnv::new(market(200, 3), 0..100, cfg, EpisodeMode::RandomStarts).unwrap();
    let good = env.state();
    let with = |i: usize, v: f64| {
        let mut s = good.clone();
        s[i] = v;
        s
    };
    for bad in [
        vec![],
        good[..6].to_vec(),
        with(0, 3.0),      // start before the first decision bar (9)
        with(0, 80.0),     // start too late for a 30-step episode in 0..100
        with(0, 9.5),      // not a bar
        with(1, 40.0),     // bar beyond the episode 9..=39
        with(2, -1.0),     // short while shorting is disabled
        with(2, 0.5),      // not a position
        with(3, 0.0),      // entry price
        with(4, f64::NAN), // equity
        with(4, -0.1),
        with(6, -1.0), // second moment
    ] {
        let err = env.restore(&bad).unwrap_err().to_string();
        assert!(err.contains("cannot restore"), "{err}");
        assert_eq!(env.state(), good, "a rejected state changes nothing");
    }
    env.restore(&with(1, 39.0)).unwrap();
    assert_eq!(env.bar(), 39);
}

#[test]
fn vec_env_of_trading_envs_auto_resets() {
    let data = market(300, 12);
    let cfg = TradingConfig {
        episode_length: 5,
        ..config(10, RewardKind::LogReturn)
    };
    let envs = (0..3)
        .map(|_| {
            TradingEnv::new(data.clone(), 0..300, cfg.clone(), EpisodeMode::RandomStarts).unwrap()
        })
        .collect();
    let mut v = VecEnv::new(envs, 7);
    let k = v.observation_size();
    assert_eq!(k, 22);
    let starts: Vec<usize> = v.envs().iter().map(TradingEnv::bar).collect();
    for _ in 0..4 {
        assert!(v.step(&[2, 0, 1]).finished.is_empty());
    }
    let step = v.step(&[2, 0, 1]);
    assert_eq!(step.truncated, &[true, true, true]);
    assert_eq!(step.terminated, &[false, false, false]);
    assert_eq!(step.finished.len(), 3);
    let returns: Vec<f64> = step.finished.iter().map(|e| e.episode_return).collect();
    assert!(step.finished.iter().all(|e| e.length == 5 && e.truncated));
    assert!(
        returns[1] != 0.0 && returns[2] == 0.0,
        "flat earns nothing: {returns:?}"
    );
    for (i, env) in v.envs().iter().enumerate() {
        let fin = v.final_observation(i);
        assert_eq!(
            &fin[..20],
            &data.features[(starts[i] + 5 - 9) * 2..(starts[i] + 6) * 2]
        );
        assert_eq!(
            fin[20],
            [1.0, -1.0, 0.0][i],
            "position at the end of the old episode"
        );
        // The new episode: flat, at its own start, with its own first observation.
        let obs = &v.observations()[i * k..(i + 1) * k];
        assert_eq!(env.bar(), env.episode_start());
        assert_eq!(env.equity(), 1.0);
        assert_eq!(
            &obs[..20],
            &data.features[(env.bar() - 9) * 2..(env.bar() + 1) * 2]
        );
        assert_eq!(&obs[20..], &[0.0, 0.0]);
    }
    let state = v.state();
    let mut w = VecEnv::new(
        (0..3)
            .map(|_| {
                TradingEnv::new(data.clone(), 0..300, cfg.clone(), EpisodeMode::RandomStarts)
                    .unwrap()
            })
            .collect(),
        1,
    );
    w.restore(&state).unwrap();
    for _ in 0..23 {
        let a = v.step(&[0, 1, 2]).rewards.to_vec();
        let b = w.step(&[0, 1, 2]).rewards.to_vec();
        assert_eq!(a, b);
        assert_eq!(v.observations(), w.observations());
    }
}

#[test]
fn bankruptcy_terminates_with_a_finite_reward() {
    // Short into a bar that triples: equity would go negative; it stops at 0.
    let close = vec![100.0, 100.0, 300.0, 310.0];
    let open = vec![100.0, 100.0, 100.0, 300.0];
    for kind in [
        RewardKind::LogReturn,
        RewardKind::Pnl,
        RewardKind::DifferentialSharpe,
    ] {
        let data =
            Arc::new(MarketData::new(features_of(&close), 2, open.clone(), close.clone()).unwrap());
        let mut env = TradingEnv::new(data, 0..4, config(2, kind), EpisodeMode::FullRange).unwrap();
        let mut obs = obs_buf(&env);
        env.reset(&mut Rng::seed_from(0), &mut obs);
        let s = env.step(0, &mut obs);
        assert!(s.terminated && !s.truncated, "{kind:?}");
        assert_eq!(env.equity(), 0.0);
        assert!(s.reward.is_finite());
        match kind {
            RewardKind::LogReturn => {
                assert_eq!(s.reward, ratchet_env::BANKRUPTCY_LOG_RETURN as f32)
            }
            RewardKind::Pnl => assert_eq!(s.reward, -1.0),
            RewardKind::DifferentialSharpe => assert_eq!(s.reward, 0.0, "no variance yet"),
        }
    }
}

fn expect_error(result: Result<TradingEnv, ratchet_env::EnvError>, words: &[&str]) {
    let err = result.expect_err("expected an error").to_string();
    for w in words {
        assert!(err.contains(w), "error {err:?} should mention {w:?}");
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (f, o, c) = walk(50, 13);
    let nan_close = {
        let mut c = c.clone();
        c[17] = f64::NAN;
        c
    };
    let err = MarketData::new(f.clone(), 2, o.clone(), nan_close)
        .unwrap_err()
        .to_string();
    assert!(err.contains("close[17] is NaN"), "{err}");
    let zero_open = {
        let mut o = o.clone();
        o[3] = 0.0;
        o
    };
    let err = MarketData::new(f.clone(), 2, zero_open, c.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("open[3] is 0"), "{err}");
    let err = MarketData::new(f.clone(), 2, o[..49].to_vec(), c.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("open has 49 bars but close has 50"), "{err}");
    let err = MarketData::new(f[..99].to_vec(), 2, o.clone(), c.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("99 values, expected 50 bars x 2 features = 100"),
        "{err}"
    );
    let mut inf_feature = f.clone();
    inf_feature[21] = f32::INFINITY;
    let err = MarketData::new(inf_feature, 2, o.clone(), c.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("feature 1 of bar 10 is inf"), "{err}");
    assert!(MarketData::new(vec![], 0, vec![], vec![]).is_err());

    // Data assembled through the public fields is checked again by the environment.
    let unchecked = Arc::new(MarketData {
        features: f.clone(),
        width: 2,
        open: o.clone(),
        close: vec![1.0; 10],
    });
    expect_error(
        TradingEnv::new(
            unchecked,
            0..10,
            config(3, RewardKind::Pnl),
            EpisodeMode::FullRange,
        ),
        &["open has 50 bars"],
    );

    let data = Arc::new(MarketData::new(f, 2, o, c).unwrap());
    let env = |range: std::ops::Range<usize>, cfg: TradingConfig| {
        TradingEnv::new(data.clone(), range, cfg, EpisodeMode::RandomStarts)
    };
    let ok = config(10, RewardKind::LogReturn);
    expect_error(env(0..10, ok.clone()), &["holds 10 bars", "at least 11"]);
    expect_error(env(40..60, ok.clone()), &["outside the data's 50 bars"]);
    #[allow(clippy::reversed_empty_ranges)]
    expect_error(env(30..20, ok.clone()), &["empty"]);
    assert!(env(0..11, ok.clone()).is_ok(), "one step is enough");
    let with = |edit: fn(&mut TradingConfig)| {
        let mut c = ok.clone();
        edit(&mut c);
        c
    };
    expect_error(env(0..50, with(|c| c.window = 0)), &["window is 0"]);
    expect_error(
        env(0..50, with(|c| c.episode_length = 0)),
        &["episode_length is 0"],
    );
    expect_error(
        env(0..50, with(|c| c.costs.cost_bps = -1.0)),
        &["cost_bps is -1"],
    );
    expect_error(
        env(0..50, with(|c| c.costs.slippage_bps = f64::NAN)),
        &["slippage_bps is NaN"],
    );
    expect_error(
        env(0..50, with(|c| c.costs.cost_bps = 5000.0)),
        &["below 5000"],
    );
    expect_error(env(0..50, with(|c| c.dsr_eta = 0.0)), &["dsr_eta is 0"]);
    expect_error(env(0..50, with(|c| c.dsr_eta = 1.5)), &["dsr_eta is 1.5"]);
}

#[test]
fn config_reads_from_json_with_defaults_and_snake_case_names() {
    let cfg: TradingConfig =
        serde_json::from_str(r#"{"window": 5, "reward": "differential_sharpe"}"#).unwrap();
    assert_eq!(cfg.window, 5);
    assert_eq!(cfg.reward, RewardKind::DifferentialSharpe);
    assert_eq!(cfg.episode_length, TradingConfig::default().episode_length);
    let back: TradingConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    assert!(serde_json::from_str::<TradingConfig>(r#"{"windw": 5}"#).is_err());
    assert_eq!(serde_json::to_string(&RewardKind::Pnl).unwrap(), r#""pnl""#);
    assert_eq!(
        serde_json::to_string(&RewardKind::LogReturn).unwrap(),
        r#""log_return""#
    );
}

/// A universe laid end to end: rows 0..40 one instrument, 40..140 another. Episodes start in
/// either, in proportion to their possible starts, and never run across the boundary; a
/// saved state in the second restores there.
#[test]
fn episodes_over_several_ranges_stay_in_one_and_follow_their_sizes() {
    let data = market(140, 3);
    let config = config(5, RewardKind::LogReturn);
    let mut env = TradingEnv::over_ranges(
        data.clone(),
        vec![0..40, 40..140],
        config.clone(),
        EpisodeMode::RandomStarts,
    )
    .unwrap();
    let mut obs = obs_buf(&env);
    let mut rng = Rng::seed_from(11);
    // Possible starts: 40 - 1 - 4 - 20 + 1 = 16 in the first, 100 - 1 - 4 - 20 + 1 = 76 in
    // the second.
    let mut in_second = 0;
    for _ in 0..2000 {
        env.reset(&mut rng, &mut obs);
        let start = env.episode_start();
        let range = env.range();
        assert!(
            range.contains(&start) && start >= range.start + 4,
            "{start} {range:?}"
        );
        loop {
            let bar = env.bar();
            assert!(range.contains(&bar), "bar {bar} left {range:?}");
            if env.step(2, &mut obs).done() {
                assert!(range.contains(&env.bar()));
                break;
            }
        }
        in_second += usize::from(range.start == 40);
    }
    // Expected 2000 * 76 / 92 = 1652.
    assert!((1580..1720).contains(&in_second), "{in_second}");

    // One range gives the same draws as `new`: the single-instrument streams are unchanged.
    let mut one = TradingEnv::over_ranges(
        data.clone(),
        std::iter::once(40..140).collect(),
        config.clone(),
        EpisodeMode::RandomStarts,
    )
    .unwrap();
    let mut same = TradingEnv::new(
        data.clone(),
        40..140,
        config.clone(),
        EpisodeMode::RandomStarts,
    )
    .unwrap();
    let (mut r1, mut r2) = (Rng::seed_from(5), Rng::seed_from(5));
    for _ in 0..50 {
        one.reset(&mut r1, &mut obs);
        same.reset(&mut r2, &mut obs);
        assert_eq!(one.episode_start(), same.episode_start());
    }

    // A state saved in the second range restores there, and one at a bar no range starts
    // from is refused.
    env.reset(&mut rng, &mut obs);
    while env.range().start != 40 {
        env.reset(&mut rng, &mut obs);
    }
    env.step(2, &mut obs);
    let saved = env.state();
    let mut restored = TradingEnv::over_ranges(
        data,
        vec![0..40, 40..140],
        config,
        EpisodeMode::RandomStarts,
    )
    .unwrap();
    restored.restore(&saved).unwrap();
    assert_eq!((restored.range(), restored.bar()), (40..140, env.bar()));
    let mut bad = saved.clone();
    bad[0] = 38.0;
    bad[1] = 38.0;
    assert!(restored.restore(&bad).is_err());
}

/// Round-robin over ranges: each episode takes the next range, the cursor starts where the
/// environment's index says, and it is part of the saved state.
#[test]
fn round_robin_takes_the_ranges_in_turn_and_saves_its_place() {
    let data = market(200, 4);
    let config = TradingConfig {
        symbol_sampling: ratchet_env::SymbolSampling::RoundRobin,
        ..config(5, RewardKind::LogReturn)
    };
    let ranges = vec![0..60, 60..130, 130..200];
    let make = |i: usize| {
        TradingEnv::over_ranges(
            data.clone(),
            ranges.clone(),
            config.clone(),
            EpisodeMode::RandomStarts,
        )
        .unwrap()
        .starting_at_range(i)
    };
    let mut env = make(1);
    let mut obs = obs_buf(&env);
    let mut rng = Rng::seed_from(8);
    let mut taken = Vec::new();
    for _ in 0..7 {
        env.reset(&mut rng, &mut obs);
        taken.push(env.range().start);
    }
    assert_eq!(taken, [60, 130, 0, 60, 130, 0, 60]);
    let saved = env.state();
    assert_eq!((saved.len(), saved[7]), (8, 2.0));
    let mut restored = make(0);
    restored.restore(&saved).unwrap();
    restored.reset(&mut Rng::seed_from(1), &mut obs);
    assert_eq!(restored.range(), 130..200);
    assert!(restored.restore(&saved[..7]).is_err());
    let mut beyond = saved.clone();
    beyond[7] = 3.0;
    assert!(restored.restore(&beyond).is_err());
}
