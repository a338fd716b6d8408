//! Feature config hashing and parsing, causality of the features, normalisation.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::path::Path;

use ratchet_data::{
    Bars, DataError, FEATURE_SCHEMA_VERSION, FeatureConfig, FeatureSpec, LoadOptions,
    Normalization, compute_features, load_bars,
};

mod support;
use support::every_kind_config;

/// The default config's hash. If this changes, every cached feature file and every registered
/// model's recorded hash stops matching: change it only together with FEATURE_SCHEMA_VERSION or a
/// deliberate change of the default set.
const DEFAULT_HASH: &str = "3546c9dff1e2f33c56d7b97e6eabfeefd9d47ab149e7addcf89238e6fee6adec";

#[test]
fn default_hash_is_pinned() {
    let cfg = FeatureConfig::default();
    assert_eq!(FEATURE_SCHEMA_VERSION, "1.0.0");
    assert_eq!(
        cfg.hash(),
        DEFAULT_HASH,
        "canonical form: {}",
        cfg.canonical_json()
    );
    assert_eq!(cfg.short_hash(), DEFAULT_HASH.get(..12).unwrap());
    // The exact bytes hashed, so other tools can check the hash (`printf '%s' … | sha256sum`).
    assert_eq!(
        cfg.canonical_json(),
        concat!(
            r#"{"feature_config":{"features":[{"k":1,"kind":"log_return"},{"k":5,"kind":"log_return"},"#,
            r#"{"fast":10,"kind":"sma_ratio","slow":20},{"kind":"rsi","period":14},"#,
            r#"{"fast":12,"kind":"macd","signal":9,"slow":26},{"kind":"volatility","window":20},"#,
            r#"{"kind":"atr","period":14},{"kind":"zscore_close","window":20},{"kind":"zscore_volume","window":20}],"#,
            r#""normalization":{"kind":"rolling_zscore","window":100},"window":10},"schema_version":"1.0.0"}"#
        )
    );
}

const TOML_CONFIG: &str = r#"
# A training config: only the [features] table matters here.
[training]
algo = "ppo"
steps = 1000

[features]
window = 10
normalization = { kind = "rolling_zscore", window = 100 }
features = [
    { kind = "log_return", k = 1 },
    { kind = "log_return", k = 5 },
    { kind = "sma_ratio", fast = 10, slow = 20 },
    { kind = "rsi", period = 14 },
    { kind = "macd", fast = 12, slow = 26, signal = 9 },
    { kind = "volatility", window = 20 },
    { kind = "atr", period = 14 },
    { kind = "zscore_close", window = 20 },
    { kind = "zscore_volume", window = 20 },
]
"#;

/// The same config: other key order, whitespace, floats for integers, tables as separate sections.
const TOML_REORDERED: &str = r#"
features = [
  {k=1,kind="log_return"},{ k = 5.0, kind = "log_return" },
  { slow = 20, fast = 10, kind = "sma_ratio" }, { period = 14, kind = "rsi" },
  { signal = 9, slow = 26.0, fast = 12, kind = "macd" },
  { window = 20, kind = "volatility" }, { kind = "atr", period = 14 },
  { kind = "zscore_close", window = 20 }, { kind = "zscore_volume", window = 20.0 },
]
window    =    10.0

[normalization]
window = 100
kind = "rolling_zscore"
"#;

const JSON_CONFIG: &str = r#"{
  "normalization": {"window": 100.0, "kind": "rolling_zscore"},
  "features": [
    {"kind": "log_return", "k": 1}, {"k": 5, "kind": "log_return"},
    {"kind": "sma_ratio", "slow": 20, "fast": 10}, {"kind": "rsi", "period": 14},
    {"kind": "macd", "fast": 12, "slow": 26, "signal": 9}, {"kind": "volatility", "window": 20},
    {"kind": "atr", "period": 14}, {"kind": "zscore_close", "window": 20}, {"kind": "zscore_volume", "window": 20}
  ],
  "window": 10
}"#;

#[test]
fn hash_ignores_syntax_order_whitespace_and_number_form() {
    let default = FeatureConfig::default();
    let from_toml = FeatureConfig::from_toml_str(TOML_CONFIG).unwrap();
    let reordered = FeatureConfig::from_toml_str(TOML_REORDERED).unwrap();
    let from_json = FeatureConfig::from_json_str(JSON_CONFIG).unwrap();
    let round_trip =
        FeatureConfig::from_json_str(&serde_json::to_string_pretty(&default).unwrap()).unwrap();
    for cfg in [&from_toml, &reordered, &from_json, &round_trip] {
        assert_eq!(cfg, &default);
        assert_eq!(cfg.hash(), default.hash());
        assert_eq!(cfg.canonical_json(), default.canonical_json());
    }
    // An empty [features] table means the default.
    assert_eq!(
        FeatureConfig::from_toml_str("[features]\n").unwrap().hash(),
        default.hash()
    );
    assert_eq!(
        FeatureConfig::from_toml_str("").unwrap().hash(),
        default.hash()
    );
}

/// Every one-parameter change of the default config, plus structural changes.
fn variants() -> Vec<FeatureConfig> {
    let base = FeatureConfig::default();
    let mut out = Vec::new();
    let mut with = |f: &dyn Fn(&mut FeatureConfig)| {
        let mut c = base.clone();
        f(&mut c);
        out.push(c);
    };
    with(&|c| c.window = 11);
    with(&|c| c.normalization = Normalization::None);
    with(&|c| c.normalization = Normalization::RollingZscore { window: 101 });
    with(&|c| c.features.swap(0, 1));
    with(&|c| {
        c.features.pop();
    });
    with(&|c| c.features.push(FeatureSpec::SimpleReturn { k: 1 }));
    with(&|c| {
        c.features
            .push(FeatureSpec::EmaRatio { fast: 12, slow: 26 })
    });
    with(&|c| c.features[0] = FeatureSpec::SimpleReturn { k: 1 });
    with(&|c| c.features.push(FeatureSpec::UniverseReturn { k: 5 }));
    with(&|c| c.features.push(FeatureSpec::ReturnRank { k: 5 }));
    with(&|c| c.features.push(FeatureSpec::ExcessReturn { k: 5 }));
    with(&|c| c.features.push(FeatureSpec::ExcessReturn { k: 6 }));
    for i in 0..base.features.len() {
        for param in 0..3 {
            let mut c = base.clone();
            let changed = match &mut c.features[i] {
                FeatureSpec::SimpleReturn { k } | FeatureSpec::LogReturn { k } if param == 0 => {
                    *k += 1;
                    true
                }
                FeatureSpec::SmaRatio { fast, slow } | FeatureSpec::EmaRatio { fast, slow } => {
                    match param {
                        0 => {
                            *fast += 1;
                            true
                        }
                        1 => {
                            *slow += 1;
                            true
                        }
                        _ => false,
                    }
                }
                FeatureSpec::Macd { fast, slow, signal } => {
                    *[fast, slow, signal][param] += 1;
                    true
                }
                FeatureSpec::Rsi { period } | FeatureSpec::Atr { period } if param == 0 => {
                    *period += 1;
                    true
                }
                FeatureSpec::Volatility { window }
                | FeatureSpec::ZscoreClose { window }
                | FeatureSpec::ZscoreVolume { window }
                    if param == 0 =>
                {
                    *window += 1;
                    true
                }
                _ => false,
            };
            if changed {
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn any_change_changes_the_hash() {
    let base = FeatureConfig::default();
    let variants = variants();
    assert!(variants.len() >= 20, "{}", variants.len());
    let mut hashes = vec![base.hash()];
    for v in &variants {
        v.validate().unwrap();
        let h = v.hash();
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(!hashes.contains(&h), "collision for {v:?}");
        hashes.push(h);
    }
}

#[test]
fn hash_is_stable_across_runs() {
    // Both files describe the default features, whose hash an earlier build pinned: no
    // randomness of this process (hash-map order, say) leaks into the hash.
    for cfg in [
        FeatureConfig::from_toml_str(TOML_CONFIG).unwrap(),
        FeatureConfig::from_json_str(JSON_CONFIG).unwrap(),
    ] {
        assert_eq!(cfg.hash(), DEFAULT_HASH);
    }
}

#[test]
fn column_names_follow_the_config() {
    let names = FeatureConfig::default().column_names();
    assert_eq!(
        names,
        [
            "log_return_1",
            "log_return_5",
            "sma_ratio_10_20",
            "rsi_14",
            "macd_12_26_9_line",
            "macd_12_26_9_signal",
            "macd_12_26_9_hist",
            "volatility_20",
            "atr_14",
            "zscore_close_20",
            "zscore_volume_20",
        ]
    );
}

fn config_error(toml: &str) -> String {
    match FeatureConfig::from_toml_str(toml) {
        Err(e @ DataError::Config(_)) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            msg
        }
        other => panic!("expected a config error for {toml:?}, got {other:?}"),
    }
}

#[test]
fn invalid_configs_are_rejected_clearly() {
    let msg = config_error("[features]\nwindo = 10\n");
    assert!(msg.contains("windo"), "{msg}");
    let msg =
        config_error("[features]\nfeatures = [{ kind = \"sma_ratio\", fast = 20, slow = 10 }]\n");
    assert!(
        msg.contains("fast (20) must be smaller than slow (10)"),
        "{msg}"
    );
    let msg = config_error("[features]\nfeatures = [{ kind = \"momentum\", k = 3 }]\n");
    assert!(msg.contains("momentum"), "{msg}");
    let msg = config_error("[features]\nfeatures = [{ kind = \"rsi\", period = 14, k = 1 }]\n");
    assert!(
        msg.contains("unknown field `k`, expected `period`"),
        "{msg}"
    );
    let msg = config_error("[features]\nwindow = 0\n");
    assert!(msg.contains("window must be at least 1"), "{msg}");
    let msg = config_error("[features]\nfeatures = []\n");
    assert!(msg.contains("no features"), "{msg}");
    let msg = config_error("[features]\nfeatures = [{ kind = \"log_return\", k = 0 }]\n");
    assert!(msg.contains("k must be at least 1"), "{msg}");
    let msg = config_error(
        "[features]\nfeatures = [{ kind = \"rsi\", period = 14 }, { kind = \"rsi\", period = 14 }]\n",
    );
    assert!(msg.contains("listed twice"), "{msg}");
    let msg =
        config_error("[features]\nnormalization = { kind = \"rolling_zscore\", window = 1 }\n");
    assert!(msg.contains("normalization window"), "{msg}");
    let msg = config_error("[features]\nwindow = 2.5\n");
    assert!(msg.contains("2.5"), "{msg}");
    let msg = config_error("[features\nwindow = 2\n");
    assert!(msg.contains("line 1"), "{msg}");
    assert!(matches!(
        FeatureConfig::from_json_str("{\"window\": }"),
        Err(DataError::Config(_))
    ));
}

/// A tiny deterministic generator (64-bit LCG, Knuth's MMIX constants) for the property tests.
struct Lcg(u64);

impl Lcg {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }
}

/// A consistent random-walk bar series.
fn random_bars(rng: &mut Lcg, n: usize) -> Bars {
    let mut bars = Bars::default();
    let mut price = 100.0;
    for i in 0..n {
        let open = price;
        price *= 1.0 + (rng.unit() - 0.5) * 0.04;
        let close = price;
        bars.timestamps.push(i as i64 * 60_000);
        bars.open.push(open);
        bars.close.push(close);
        bars.high.push(open.max(close) * (1.0 + rng.unit() * 0.01));
        bars.low.push(open.min(close) * (1.0 - rng.unit() * 0.01));
        bars.volume.push(1000.0 + rng.unit() * 500.0);
    }
    bars
}

/// Randomly changes bars after index `t` (keeping them valid): scales whole bars, moves highs,
/// lows and volumes.
fn perturb_after(rng: &mut Lcg, bars: &mut Bars, t: usize) {
    let n = bars.len();
    let changes = 1 + rng.below(8);
    for _ in 0..changes {
        let j = t + 1 + rng.below(n - t - 1);
        match rng.below(4) {
            0 => {
                let f = 0.5 + rng.unit();
                for col in [
                    &mut bars.open,
                    &mut bars.high,
                    &mut bars.low,
                    &mut bars.close,
                ] {
                    col[j] *= f;
                }
            }
            1 => bars.high[j] *= 1.0 + rng.unit() * 0.2,
            2 => bars.low[j] *= 1.0 - rng.unit() * 0.2,
            _ => bars.volume[j] = rng.unit() * 1e6,
        }
    }
}

/// Changing any bar after t never changes any feature value at or before t — and the test can
/// tell: the same perturbations do change later values.
#[test]
fn features_are_causal() {
    let mut rng = Lcg(0x5eed_cafe);
    let configs = [
        FeatureConfig::default(),
        every_kind_config(1, Normalization::None),
        every_kind_config(1, Normalization::RollingZscore { window: 30 }),
    ];
    for cfg in &configs {
        let n = cfg.warm_up() + 150;
        let bars = random_bars(&mut rng, n);
        let base = compute_features(&bars, cfg).unwrap();
        let mut later_changed = 0;
        for _ in 0..150 {
            let t = base.first_bar + rng.below(n - base.first_bar - 1);
            let mut changed = bars.clone();
            perturb_after(&mut rng, &mut changed, t);
            let other = compute_features(&changed, cfg).unwrap();
            assert_eq!(other.first_bar, base.first_bar);
            let upto = t - base.first_bar + 1; // rows whose bar index <= t
            let w = base.width();
            for r in 0..upto {
                for c in 0..w {
                    let (a, b) = (base.values[r * w + c], other.values[r * w + c]);
                    assert!(
                        a.to_bits() == b.to_bits(),
                        "{} at bar {} changed ({a} -> {b}) after changing bars > {t}",
                        base.names[c],
                        base.first_bar + r
                    );
                }
            }
            if base.values[upto * w..] != other.values[upto * w..] {
                later_changed += 1;
            }
        }
        assert!(
            later_changed > 100,
            "perturbations rarely changed anything: {later_changed}"
        );
    }
}

#[test]
fn normalisation_is_a_past_only_rolling_zscore() {
    let mut rng = Lcg(42);
    let raw_cfg = every_kind_config(1, Normalization::None);
    let window = 25;
    let norm_cfg = every_kind_config(1, Normalization::RollingZscore { window });
    let bars = random_bars(&mut rng, 400);
    let raw = compute_features(&bars, &raw_cfg).unwrap();
    let norm = compute_features(&bars, &norm_cfg).unwrap();
    assert_eq!(norm.first_bar, raw.first_bar + window - 1);
    let w = raw.width();
    for r in [0, 1, 50, norm.rows() - 1] {
        let bar = norm.first_bar + r;
        for c in 0..w {
            let raw_row = |b: usize| {
                // Recompute from f64 features: use the raw frame (f32) with a tolerance.
                raw.values[(b - raw.first_bar) * w + c] as f64
            };
            let xs: Vec<f64> = (bar + 1 - window..=bar).map(raw_row).collect();
            let mean = xs.iter().sum::<f64>() / window as f64;
            let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / window as f64).sqrt();
            let expected = (raw_row(bar) - mean) / sd;
            let got = norm.values[r * w + c] as f64;
            assert!(
                (got - expected).abs() < 1e-3 * expected.abs().max(1.0),
                "{} row {r}: {got} vs {expected}",
                norm.names[c]
            );
        }
    }
}

#[test]
fn bundled_data_gives_finite_features() {
    let cfg = FeatureConfig::default();
    for (file, rows) in [
        ("STOCKS_GOOGL.csv", 2335),
        ("FOREX_EURUSD_1H_ASK.csv", 6225),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data")
            .join(file);
        let loaded = load_bars(&path, &LoadOptions::default()).unwrap();
        let frame = compute_features(&loaded.bars, &cfg).unwrap();
        assert_eq!(frame.first_bar, cfg.warm_up());
        assert_eq!(frame.rows(), rows - cfg.warm_up());
        assert_eq!(frame.values.len(), frame.rows() * frame.width());
        assert_eq!(
            frame.timestamps[..],
            loaded.bars.timestamps[frame.first_bar..]
        );
        assert!(frame.values.iter().all(|v| v.is_finite()));
        // Normalised columns are centred and scaled, roughly.
        for c in 0..frame.width() {
            let col: Vec<f64> = (0..frame.rows()).map(|r| frame.row(r)[c] as f64).collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            assert!(mean.abs() < 1.0, "{file} {}: mean {mean}", frame.names[c]);
        }
    }
}
