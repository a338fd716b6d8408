//! `[retrain]`: how `ratchet retrain` cuts the next version's ranges from a data file that
//! grew, and the gates a retrained version (the challenger) must pass against the version it
//! continues (the champion) to become the candidate.
//!
//! ```
//! use ratchet_config::{CompareOn, Decision, Figures, TrainConfig};
//!
//! let config = TrainConfig::parse(
//!     "[retrain]\nvalidation_bars = 100\ntest_bars = 20\nmin_val_sharpe = 0.5\n",
//! )?;
//! let retrain = &config.retrain;
//! // 1000 bars: train on the first 880, validate on the next 100, hold back the last 20.
//! let cut = retrain.cut(1000).unwrap();
//! assert_eq!((cut.train, cut.validation, cut.test), (0..880, 880..980, Some(980..1000)));
//! let champion = Figures { sharpe: Some(0.4), psr: None, max_drawdown: 0.2 };
//! let challenger = Figures { sharpe: Some(0.45), psr: None, max_drawdown: 0.1 };
//! assert_eq!(
//!     retrain.decide(&challenger, Some(&champion)),
//!     Decision::Rejected("validation sharpe 0.4500 is below min_val_sharpe 0.5000".into())
//! );
//! assert_eq!(retrain.compare_on, CompareOn::Sharpe);
//! # Ok::<(), toml::de::Error>(())
//! ```

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The `[retrain]` section. Left out of a recorded config at its defaults, so the configs
/// (and hashes) of runs that never retrain are unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrainConfig {
    /// Which bars the next version trains on: all of them up to its validation range
    /// (`anchored`), or the `train_bars` just before it (`rolling`).
    pub window: Window,
    /// `window = "rolling"`: the length of the training range, in bars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_bars: Option<usize>,
    /// Length of the new validation range, in bars: the newest bars before the test range,
    /// where the challenger and the champion are judged side by side.
    pub validation_bars: usize,
    /// Length of the newest test range held back, in bars: never trained on and never
    /// judged by the gates (`ratchet backtest` looks at it). 0 holds back none: the newest
    /// bars validate (a backtest of such a version names its bars with `--from`/`--to`).
    pub test_bars: usize,
    /// The challenger's validation Sharpe ratio must reach this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_val_sharpe: Option<f64>,
    /// The challenger must beat the champion on the same validation bars by at least this
    /// much (a negative value lets it lose by that much), on the figure `compare_on` names.
    pub beat_champion_by: f64,
    /// What `beat_champion_by` compares: the annualised Sharpe ratios, the probabilistic
    /// Sharpe ratios (the probability that the true Sharpe ratio is above 0, from the
    /// per-bar returns' moments), or nothing (`none`: no comparison gate).
    pub compare_on: CompareOn,
    /// The challenger's maximum drawdown on the validation range must not exceed this
    /// (a fraction: 0.2 is 20 %).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_drawdown: Option<f64>,
    /// The alias a challenger that passes every gate gets (and the status `validated`).
    pub candidate_alias: String,
}

impl Default for RetrainConfig {
    /// A year of daily bars to validate on, a quarter held back, anchored, and a challenger
    /// that must not do worse than the champion on the Sharpe ratio.
    fn default() -> Self {
        Self {
            window: Window::Anchored,
            train_bars: None,
            validation_bars: 252,
            test_bars: 63,
            min_val_sharpe: None,
            beat_champion_by: 0.0,
            compare_on: CompareOn::Sharpe,
            max_drawdown: None,
            candidate_alias: "candidate".into(),
        }
    }
}

/// `[retrain] window`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// The training range starts at the first bar and grows with the data.
    #[default]
    Anchored,
    /// The training range is the last `train_bars` bars before the validation range.
    Rolling,
}

/// `[retrain] compare_on`: the figure `beat_champion_by` is measured on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOn {
    #[default]
    Sharpe,
    Psr,
    /// No comparison with the champion.
    None,
}

impl CompareOn {
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOn::Sharpe => "sharpe",
            CompareOn::Psr => "psr",
            CompareOn::None => "none",
        }
    }
}

/// Where the next version's ranges lie, as rows of the data (the newest last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub train: Range<usize>,
    pub validation: Range<usize>,
    /// `None` when `test_bars` is 0.
    pub test: Option<Range<usize>>,
}

/// What the gates look at in one policy's validation backtest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    /// Annualised; `None` when the policy's returns were constant (it never traded).
    pub sharpe: Option<f64>,
    /// Probability that the true Sharpe ratio is above 0; `None` as for `sharpe`.
    pub psr: Option<f64>,
    pub max_drawdown: f64,
}

/// The gates' verdict on a challenger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Passed,
    /// The first gate it failed, in words.
    Rejected(String),
}

impl RetrainConfig {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(format!("[retrain]: {m}")));
        match (self.window, self.train_bars) {
            (Window::Rolling, None) => {
                return invalid(
                    "window = \"rolling\" needs train_bars (its length in bars)".into(),
                );
            }
            (Window::Rolling, Some(n)) if n < 2 => {
                return invalid(format!("train_bars {n} must be at least 2"));
            }
            (Window::Anchored, Some(_)) => {
                return invalid(
                    "train_bars is the length of a rolling window; with window = \"anchored\" the \
                     training range starts at the first bar: drop it, or set window = \"rolling\""
                        .into(),
                );
            }
            _ => {}
        }
        if self.validation_bars < 2 {
            return invalid(format!(
                "validation_bars {} must be at least 2 (a backtest needs two bars)",
                self.validation_bars
            ));
        }
        if self.test_bars == 1 {
            return invalid(
                "test_bars 1 is too short to backtest: hold back at least 2 bars, or 0 for no \
                 test range"
                    .into(),
            );
        }
        for (key, value) in [
            ("min_val_sharpe", self.min_val_sharpe),
            ("beat_champion_by", Some(self.beat_champion_by)),
        ] {
            if value.is_some_and(|v| !v.is_finite()) {
                return invalid(format!("{key} must be a finite number"));
            }
        }
        if let Some(d) = self.max_drawdown
            && !(d.is_finite() && (0.0..=1.0).contains(&d))
        {
            return invalid(format!("max_drawdown {d} must be a fraction in 0 ..= 1"));
        }
        if self.candidate_alias.is_empty() {
            return invalid("candidate_alias must not be empty".into());
        }
        Ok(())
    }

    /// The ranges of the next version over `rows` rows of data (the newest last): the test
    /// range is the last `test_bars` (none when 0), the validation range the `validation_bars`
    /// before it,
    /// the training range everything before that (`anchored`) or the `train_bars` before it
    /// (`rolling`). `None` when the rows are too few for a training range of at least 2 rows.
    pub fn cut(&self, rows: usize) -> Option<Cut> {
        let validation_start = rows.checked_sub(self.test_bars + self.validation_bars)?;
        let train_start = match (self.window, self.train_bars) {
            (Window::Rolling, Some(n)) => validation_start.checked_sub(n)?,
            _ => 0,
        };
        (validation_start >= train_start + 2).then(|| Cut {
            train: train_start..validation_start,
            validation: validation_start..validation_start + self.validation_bars,
            test: (self.test_bars > 0).then(|| rows - self.test_bars..rows),
        })
    }

    /// Applies the gates in order (`min_val_sharpe`, `max_drawdown`, `beat_champion_by`) to
    /// the challenger's figures and, when there is one, the champion's on the same bars.
    /// A missing figure (no Sharpe ratio: the policy never traded) fails a gate on it.
    pub fn decide(&self, challenger: &Figures, champion: Option<&Figures>) -> Decision {
        let show =
            |v: Option<f64>| v.map_or_else(|| "undefined".to_string(), |v| format!("{v:.4}"));
        if let Some(min) = self.min_val_sharpe
            && challenger.sharpe.is_none_or(|s| s < min)
        {
            return Decision::Rejected(format!(
                "validation sharpe {} is below min_val_sharpe {min:.4}",
                show(challenger.sharpe)
            ));
        }
        if let Some(max) = self.max_drawdown
            && challenger.max_drawdown > max
        {
            return Decision::Rejected(format!(
                "validation max drawdown {:.4} is above max_drawdown {max:.4}",
                challenger.max_drawdown
            ));
        }
        let by = self.beat_champion_by;
        if let Some(champion) = champion
            && self.compare_on != CompareOn::None
        {
            let figure = |f: &Figures| match self.compare_on {
                CompareOn::Sharpe => f.sharpe,
                CompareOn::Psr => f.psr,
                CompareOn::None => None,
            };
            let (mine, theirs) = (figure(challenger), figure(champion));
            let beaten = match (mine, theirs) {
                (Some(mine), Some(theirs)) => mine - theirs >= by,
                // A champion without the figure (it never traded) is beaten by any value.
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !beaten {
                return Decision::Rejected(format!(
                    "validation {} {} does not beat the champion's {} by beat_champion_by {by:.4}",
                    self.compare_on.as_str(),
                    show(mine),
                    show(theirs)
                ));
            }
        }
        Decision::Passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(sharpe: Option<f64>, psr: Option<f64>, max_drawdown: f64) -> Figures {
        Figures {
            sharpe,
            psr,
            max_drawdown,
        }
    }

    #[test]
    fn cuts_anchored_and_rolling_windows() {
        let anchored = RetrainConfig {
            validation_bars: 10,
            test_bars: 5,
            ..RetrainConfig::default()
        };
        let cut = anchored.cut(100).unwrap();
        assert_eq!(
            (cut.train, cut.validation, cut.test),
            (0..85, 85..95, Some(95..100))
        );
        assert_eq!(anchored.cut(16), None, "one training row is too few");
        assert_eq!(anchored.cut(17).unwrap().train, 0..2);
        let rolling = RetrainConfig {
            window: Window::Rolling,
            train_bars: Some(30),
            ..anchored.clone()
        };
        assert_eq!(rolling.cut(100).unwrap().train, 55..85);
        assert_eq!(rolling.cut(40), None, "no room for 30 training bars");
        let no_test = RetrainConfig {
            test_bars: 0,
            ..anchored
        };
        let cut = no_test.cut(100).unwrap();
        assert_eq!(
            (cut.train, cut.validation, cut.test),
            (0..90, 90..100, None)
        );
    }

    #[test]
    fn gates_apply_in_order_and_name_the_one_failed() {
        let gates = RetrainConfig {
            min_val_sharpe: Some(0.5),
            max_drawdown: Some(0.25),
            beat_champion_by: 0.1,
            ..RetrainConfig::default()
        };
        let champion = figures(Some(1.0), Some(0.9), 0.1);
        assert_eq!(
            gates.decide(&figures(Some(1.1), Some(0.95), 0.2), Some(&champion)),
            Decision::Passed
        );
        assert_eq!(
            gates.decide(&figures(None, None, 0.0), Some(&champion)),
            Decision::Rejected("validation sharpe undefined is below min_val_sharpe 0.5000".into())
        );
        assert_eq!(
            gates.decide(&figures(Some(2.0), Some(0.99), 0.3), Some(&champion)),
            Decision::Rejected(
                "validation max drawdown 0.3000 is above max_drawdown 0.2500".into()
            )
        );
        assert_eq!(
            gates.decide(&figures(Some(1.05), Some(0.99), 0.2), Some(&champion)),
            Decision::Rejected(
                "validation sharpe 1.0500 does not beat the champion's 1.0000 by \
                 beat_champion_by 0.1000"
                    .into()
            )
        );
        assert_eq!(
            gates.decide(&figures(Some(0.6), None, 0.2), None),
            Decision::Passed,
            "no champion: no comparison"
        );
        let on_psr = RetrainConfig {
            compare_on: CompareOn::Psr,
            beat_champion_by: 0.05,
            ..RetrainConfig::default()
        };
        assert_eq!(
            on_psr.decide(&figures(Some(5.0), Some(0.93), 0.2), Some(&champion)),
            Decision::Rejected(
                "validation psr 0.9300 does not beat the champion's 0.9000 by beat_champion_by \
                 0.0500"
                    .into()
            )
        );
        assert_eq!(
            on_psr.decide(&figures(Some(0.0), Some(0.96), 0.2), Some(&champion)),
            Decision::Passed
        );
        let no_comparison = RetrainConfig {
            compare_on: CompareOn::None,
            beat_champion_by: 100.0,
            ..RetrainConfig::default()
        };
        assert_eq!(
            no_comparison.decide(&figures(None, None, 0.9), Some(&champion)),
            Decision::Passed
        );
    }

    #[test]
    fn refuses_settings_that_do_not_go_together() {
        let check = |text: &str| {
            crate::TrainConfig::parse(text)
                .map_err(|e| e.message().to_string())
                .and_then(|c| c.retrain.validate().map_err(|e| e.to_string()))
        };
        assert_eq!(
            check("[retrain]\nwindow = \"rolling\"\n").unwrap_err(),
            "[retrain]: window = \"rolling\" needs train_bars (its length in bars)"
        );
        assert!(
            check("[retrain]\ntrain_bars = 100\n")
                .unwrap_err()
                .starts_with("[retrain]: train_bars is the length of a rolling window")
        );
        assert_eq!(
            check("[retrain]\ntest_bars = 1\n").unwrap_err(),
            "[retrain]: test_bars 1 is too short to backtest: hold back at least 2 bars, or 0 \
             for no test range"
        );
        check("[retrain]\ntest_bars = 0\n").unwrap();
        assert_eq!(
            check("[retrain]\nmax_drawdown = 1.5\n").unwrap_err(),
            "[retrain]: max_drawdown 1.5 must be a fraction in 0 ..= 1"
        );
        assert!(
            check("[retrain]\nbeat_champion = 0.1\n")
                .unwrap_err()
                .starts_with("unknown field `beat_champion`")
        );
        check("[retrain]\nwindow = \"rolling\"\ntrain_bars = 500\ncompare_on = \"psr\"\n").unwrap();
    }

    #[test]
    fn a_config_without_the_section_serialises_as_before() {
        let plain = crate::TrainConfig::default();
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("retrain").is_none(), "{json}");
        let with = crate::TrainConfig::parse("[retrain]\nvalidation_bars = 100\n").unwrap();
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["retrain"]["validation_bars"], 100);
    }
}
