//! Helpers shared by the agents' integration tests on market data.

use std::sync::Arc;

use ratchet_env::{Env, EpisodeMode, MarketData, Rng, TradingConfig, TradingEnv};

/// Daily GOOGL bars from `data/STOCKS_GOOGL.csv` with two causal features per bar: the 1-bar
/// and 5-bar log returns of the close, scaled by 1/2% (a typical daily move) to about unit size.
/// The first 5 bars, which lack a 5-bar return, are dropped.
pub fn googl() -> Arc<MarketData> {
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

/// Training environments: random-start episodes over `range` with the default trading config.
pub fn training_envs(
    data: &Arc<MarketData>,
    range: std::ops::Range<usize>,
    n: usize,
) -> Vec<TradingEnv> {
    (0..n)
        .map(|_| {
            TradingEnv::new(
                data.clone(),
                range.clone(),
                TradingConfig::default(),
                EpisodeMode::RandomStarts,
            )
            .unwrap()
        })
        .collect()
}

/// Log growth of equity over one full-range episode, choosing actions with `policy`.
pub fn full_range_return(
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

/// Mean log growth of a uniformly random policy over `runs` full-range episodes.
pub fn random_policy_return(
    data: &Arc<MarketData>,
    range: std::ops::Range<usize>,
    runs: usize,
) -> f64 {
    let mut rng = Rng::seed_from(1);
    let actions = TradingEnv::new(
        data.clone(),
        range.clone(),
        TradingConfig::default(),
        EpisodeMode::FullRange,
    )
    .unwrap()
    .action_count() as u64;
    (0..runs)
        .map(|_| full_range_return(data, range.clone(), |_| rng.below(actions) as usize))
        .sum::<f64>()
        / runs as f64
}
