//! Cross-sectional features: their definition against a direct computation, causality across
//! symbols with their own calendars, independence from the order same-time bars arrive in,
//! and the bars a universe refuses.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use proptest::prelude::*;
use ratchet_data::{
    Bar, Bars, CrossSection, DataError, FeatureConfig, FeatureSpec, FeatureStream, Normalization,
    OutsideSources, compute_features, compute_universe_features,
};

const K: usize = 2;

fn raw_config() -> FeatureConfig {
    FeatureConfig {
        window: 1,
        normalization: Normalization::None,
        features: vec![
            FeatureSpec::LogReturn { k: 1 },
            FeatureSpec::UniverseReturn { k: K },
            FeatureSpec::ReturnRank { k: K },
            FeatureSpec::ExcessReturn { k: K },
        ],
        external: Vec::new(),
        feast: Vec::new(),
    }
}

/// Bars at the given timestamps with the given closes (open = previous close).
fn bars(timestamps: &[i64], closes: &[f64]) -> Bars {
    let mut bars = Bars::default();
    for (i, (&t, &c)) in timestamps.iter().zip(closes).enumerate() {
        let open = if i == 0 { c } else { closes[i - 1] };
        bars.timestamps.push(t);
        bars.open.push(open);
        bars.close.push(c);
        bars.high.push(open.max(c) * 1.01);
        bars.low.push(open.min(c) * 0.99);
        bars.volume.push(1000.0);
    }
    bars
}

/// A universe on its own calendars: each symbol trades at a random subset of a grid of times.
fn universe() -> impl Strategy<Value = Vec<Bars>> {
    prop::collection::vec(
        prop::collection::vec((any::<bool>(), -0.05f64..0.05), 12..40),
        2..5,
    )
    .prop_map(|symbols| {
        symbols
            .into_iter()
            .map(|steps| {
                let mut price = 100.0;
                let (mut times, mut closes) = (Vec::new(), Vec::new());
                for (i, (trades, change)) in steps.into_iter().enumerate() {
                    price *= 1.0 + change;
                    if trades || i < 6 {
                        times.push(i as i64 * 3_600_000);
                        closes.push(price);
                    }
                }
                bars(&times, &closes)
            })
            .collect()
    })
}

const NAMES: [&str; 5] = ["A", "B", "C", "D", "E"];

fn frames(universe: &[Bars], cfg: &FeatureConfig) -> Vec<ratchet_data::FeatureFrame> {
    let members: Vec<(&str, &Bars)> = NAMES.iter().copied().zip(universe).collect();
    compute_universe_features(&members, cfg, &OutsideSources::default()).unwrap()
}

/// The k-bar log return of `bars` at bar `i`, if defined.
fn own_return(bars: &Bars, i: usize) -> Option<f64> {
    (i >= K).then(|| (bars.close[i] / bars.close[i - K]).ln())
}

proptest! {
    /// Each value, computed directly from the definition: the symbol's own k-bar return at t
    /// and every other symbol's latest one stamped before t.
    #[test]
    fn values_follow_the_definition(universe in universe()) {
        let frames = frames(&universe, &raw_config());
        for (s, frame) in frames.iter().enumerate() {
            for r in 0..frame.rows() {
                let (i, t) = (frame.bar_index(r), frame.timestamps[r]);
                let own = own_return(&universe[s], i).unwrap();
                let others: Vec<f64> = universe
                    .iter()
                    .enumerate()
                    .filter(|(o, _)| *o != s)
                    .filter_map(|(_, bars)| {
                        let before = bars.timestamps.iter().filter(|&&ts| ts < t).count();
                        before.checked_sub(1).and_then(|last| own_return(bars, last))
                    })
                    .collect();
                let mean = (others.iter().sum::<f64>() + own) / (others.len() + 1) as f64;
                let below = others.iter().filter(|&&v| v < own).count() as f64;
                let ties = others.iter().filter(|&&v| v == own).count() as f64;
                let rank = if others.is_empty() { 0.5 } else { (below + 0.5 * ties) / others.len() as f64 };
                let row = frame.row(r);
                prop_assert!((row[1] as f64 - mean).abs() < 1e-6, "{} bar {i}: mean {} vs {mean}", NAMES[s], row[1]);
                prop_assert_eq!(row[2], rank as f32, "{} bar {}: rank", NAMES[s], i);
                prop_assert!((row[3] as f64 - (own - mean)).abs() < 1e-6);
            }
        }
    }

    /// Changing any bar of another symbol stamped at or after t, or one of the symbol's own
    /// after t, changes none of the symbol's values at or before t.
    #[test]
    fn values_read_nothing_from_later_bars(
        universe in universe(),
        symbol in 0usize..5,
        cut in 0.0f64..1.0,
        factor in 0.5f64..1.5,
    ) {
        let cfg = FeatureConfig { normalization: Normalization::RollingZscore { window: 3 }, ..raw_config() };
        let s = symbol % universe.len();
        let base = frames(&universe, &cfg);
        let t = base[s].timestamps[(cut * base[s].rows() as f64) as usize];
        let mut changed = universe.clone();
        for (o, bars) in changed.iter_mut().enumerate() {
            for i in 0..bars.len() {
                let later = if o == s { bars.timestamps[i] > t } else { bars.timestamps[i] >= t };
                if later {
                    for column in [&mut bars.open, &mut bars.high, &mut bars.low, &mut bars.close] {
                        column[i] *= factor;
                    }
                }
            }
        }
        let other = frames(&changed, &cfg);
        let upto = base[s].timestamps.iter().filter(|&&ts| ts <= t).count();
        let w = base[s].width();
        prop_assert_eq!(&base[s].values[..upto * w], &other[s].values[..upto * w]);
    }

    /// Streams fed with same-time bars in the reverse member order give the batch rows bit for
    /// bit.
    #[test]
    fn same_time_bars_may_arrive_in_any_order(universe in universe()) {
        let cfg = FeatureConfig { normalization: Normalization::RollingZscore { window: 3 }, ..raw_config() };
        let batch = frames(&universe, &cfg);
        let symbols = NAMES[..universe.len()].iter().map(|s| s.to_string()).collect();
        let mut cross = CrossSection::new(symbols, &cfg.features);
        let mut streams: Vec<FeatureStream> = universe.iter().map(|_| FeatureStream::new(&cfg).unwrap()).collect();
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); universe.len()];
        let mut order: Vec<(i64, std::cmp::Reverse<usize>, usize)> = universe
            .iter()
            .enumerate()
            .flat_map(|(m, bars)| (0..bars.len()).map(move |i| (bars.timestamps[i], std::cmp::Reverse(m), i)))
            .collect();
        order.sort();
        for (_, std::cmp::Reverse(m), i) in order {
            if let Some(row) = streams[m].push_in(&universe[m].bar(i), &mut cross, m).unwrap() {
                rows[m].extend_from_slice(row);
            }
        }
        for (m, frame) in batch.iter().enumerate() {
            prop_assert_eq!(&frame.values, &rows[m]);
        }
    }
}

#[test]
fn one_instrument_is_a_universe_of_one() {
    let closes: Vec<f64> = (0..10).map(|i| 100.0 * 1.01f64.powi(i * i)).collect();
    let times: Vec<i64> = (0..10).collect();
    let frame = compute_features(&bars(&times, &closes), &raw_config()).unwrap();
    for r in 0..frame.rows() {
        let own = own_return(&bars(&times, &closes), frame.bar_index(r)).unwrap() as f32;
        assert_eq!(frame.row(r)[1..], [own, 0.5, 0.0]);
    }
}

#[test]
fn a_universe_refuses_bars_out_of_time_order_and_streams_without_it() {
    let cfg = raw_config();
    let bar = |timestamp| Bar {
        timestamp,
        open: 100.0,
        high: 101.0,
        low: 99.0,
        close: 100.0,
        volume: 1.0,
    };
    let err = FeatureStream::new(&cfg).unwrap().push(&bar(0)).unwrap_err();
    assert!(
        err.to_string()
            .contains("universe_return_2 reads the whole universe"),
        "{err}"
    );
    let mut cross = CrossSection::new(vec!["A".into(), "B".into()], &cfg.features);
    let (mut a, mut b) = (
        FeatureStream::new(&cfg).unwrap(),
        FeatureStream::new(&cfg).unwrap(),
    );
    a.push_in(&bar(5), &mut cross, 0).unwrap();
    let err = b.push_in(&bar(4), &mut cross, 1).unwrap_err();
    assert!(
        matches!(&err, DataError::RejectedBar { index: 0, timestamp: 4, problem } if problem.contains("the latest bar the universe has taken")),
        "{err}"
    );
    assert_eq!((b.bars_pushed(), cross.latest()), (0, Some(5)));
    b.push_in(&bar(5), &mut cross, 1).unwrap();
    assert_eq!(b.bars_pushed(), 1);
}

#[test]
fn errors_name_the_symbol() {
    let closes = [100.0, 101.0, 102.0];
    let short = bars(&[0, 1, 2], &closes);
    let members = [("A", &short), ("B", &short)];
    let err = compute_universe_features(
        &members,
        &FeatureConfig::default(),
        &OutsideSources::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("symbol A:") && err.to_string().contains("too few"),
        "{err}"
    );
}
