//! PPO trades the bundled GOOGL daily bars better than a random policy on its training range.

use std::sync::Arc;

use ratchet_agents::{DeviceKind, InferenceMlp, Ppo, PpoConfig, argmax};
use ratchet_env::{Env, EpisodeMode, MarketData, Rng, TradingConfig, TradingEnv};

/// Daily GOOGL bars from `data/STOCKS_GOOGL.csv` with two causal features per bar: the 1-bar
/// and 5-bar log returns of the close, scaled by 1/2% (a typical daily move) to about unit size.
/// The first 5 bars, which lack a 5-bar return, are dropped.
fn googl() -> Arc<MarketData> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/STOCKS_GOOGL.csv");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (open_col, close_col) = (col("Open"), col("Close"));
    let (mut open, mut close) = (Vec::new(), Vec::new());
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        open.push(fields[open_col].parse::<f64>().unwrap());
        close.push(fields[close_col].parse::<f64>().unwrap());
    }
    const LAG: usize = 5;
    let mut features = Vec::new();
    for t in LAG..close.len() {
        let r1 = (close[t] / close[t - 1]).ln() / 0.02;
        let r5 = (close[t] / close[t - LAG]).ln() / 0.02;
        features.extend([r1 as f32, r5 as f32]);
    }
    Arc::new(MarketData::new(features, 2, open[LAG..].to_vec(), close[LAG..].to_vec()).unwrap())
}

/// Log growth of equity over one full-range episode, choosing actions with `policy`.
fn full_range_return(
    data: &Arc<MarketData>,
    range: std::ops::Range<usize>,
    mut policy: impl FnMut(&[f32]) -> usize,
) -> f64 {
    let mut env = TradingEnv::new(
        data.clone(),
        range,
        TradingConfig::default(),
        EpisodeMode::FullRange,
    )
    .unwrap();
    let mut obs = vec![0.0f32; env.observation_size()];
    env.reset(&mut Rng::seed_from(0), &mut obs);
    let mut total = 0.0;
    loop {
        let step = env.step(policy(&obs), &mut obs);
        total += step.reward as f64;
        if step.done() {
            return total;
        }
    }
}

#[test]
fn ppo_beats_a_random_policy_on_googl_training_range() {
    let data = googl();
    let train = 0..data.rows() * 4 / 5;
    let envs = (0..4)
        .map(|_| {
            TradingEnv::new(
                data.clone(),
                train.clone(),
                TradingConfig::default(),
                EpisodeMode::RandomStarts,
            )
            .unwrap()
        })
        .collect();
    let config = PpoConfig {
        n_steps: 512,
        ent_coef: 0.01,
        ..PpoConfig::default()
    };
    let mut ppo = Ppo::new(config, envs, DeviceKind::Cpu, 7).unwrap();
    ppo.train(60_000, &mut |_| {}).unwrap();

    let policy: InferenceMlp = ppo.policy();
    let mut logits = vec![0.0f32; policy.output_size()];
    let trained = full_range_return(&data, train.clone(), |obs| {
        policy.forward(obs, &mut logits);
        argmax(&logits)
    });
    let mut rng = Rng::seed_from(1);
    let random: f64 = (0..20)
        .map(|_| full_range_return(&data, train.clone(), |_| rng.below(3) as usize))
        .sum::<f64>()
        / 20.0;
    eprintln!("log growth on the training range: PPO {trained:.3}, random policy {random:.3}");
    assert!(
        trained > random + 0.5,
        "PPO's log growth {trained:.3} does not beat the random policy's {random:.3}"
    );
}
