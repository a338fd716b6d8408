//! How many bars make a year, for annualising returns, volatility and ratios.

use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// Trading days in a year of a market closed on weekends (and about 9 holidays).
pub const WEEKDAY_TRADING_DAYS: f64 = 252.0;
/// Trading days in a year of a market open every day.
pub const ALL_DAYS: f64 = 365.0;

/// The bar frequency of a series and the `periods_per_year` that follows from it.
///
/// # The rule ([`Frequency::infer`])
///
/// 1. `median_spacing` is the median gap between consecutive bars.
/// 2. The market is *weekday-only* when its two emptiest days of the week (UTC) together
///    hold fewer than 1 in 7 of the bars. A market open every day has 2 in 7 on any two
///    days; equities have none on Saturday and Sunday, and FX's Sunday-evening open puts
///    only ~2% there. `trading_days` is then 252, otherwise 365.
/// 3. By spacing:
///    - **intraday** (under 20 h): `periods_per_year = trading_days * bars_per_day`, with
///      `bars_per_day` the median number of bars on a UTC calendar date, over the dates
///      strictly inside the series (the first and last are usually partial); with fewer
///      than three dates, a full 24 h day of bars (`24 h / spacing`). Hourly FX
///      (24 bars x 5 days) gives `252 * 24 = 6048`; hourly equities (7 bars a day) 1764.
///    - **daily** (20 h to 4 days, allowing for DST and weekend gaps): `trading_days`,
///      i.e. 252 for equities, 365 for crypto.
///    - **longer**: `365.25 days / spacing` (weekly ≈ 52.2, monthly ≈ 12).
///
/// ```
/// use ratchet_backtest::Frequency;
/// let day = 86_400_000;
/// // Ten weeks of weekday bars, Monday 2024-01-01 onward.
/// let monday = 1_704_067_200_000;
/// let ts: Vec<i64> = (0..70).filter(|d| d % 7 < 5).map(|d| monday + d * day).collect();
/// assert_eq!(Frequency::infer(&ts).periods_per_year, 252.0);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frequency {
    pub periods_per_year: f64,
    /// Median spacing of the bars, in milliseconds (0 when set by the caller).
    pub median_spacing_ms: i64,
    pub weekday_only: bool,
    /// How the figure was reached, for reports and logs.
    pub rule: String,
}

impl Frequency {
    /// Infers the frequency of strictly increasing epoch-millisecond timestamps (at least
    /// two) by the rule in the type's documentation.
    pub fn infer(timestamps: &[i64]) -> Self {
        assert!(
            timestamps.len() >= 2,
            "Frequency::infer needs at least 2 timestamps"
        );
        let mut gaps: Vec<i64> = timestamps.windows(2).map(|w| w[1] - w[0]).collect();
        let mid = gaps.len() / 2;
        let spacing = *gaps.select_nth_unstable(mid).1;

        let mut per_weekday = [0usize; 7];
        for &t in timestamps {
            // 1970-01-01 was a Thursday; index 0 = Monday.
            per_weekday[(t.div_euclid(DAY_MS) + 3).rem_euclid(7) as usize] += 1;
        }
        per_weekday.sort_unstable();
        let weekday_only = (per_weekday[0] + per_weekday[1]) * 7 < timestamps.len();
        let (trading_days, market) = if weekday_only {
            (WEEKDAY_TRADING_DAYS, "weekdays only")
        } else {
            (ALL_DAYS, "every day of the week")
        };
        let spacing_text = describe_spacing(spacing);

        let (periods_per_year, rule) = if spacing < 20 * HOUR_MS {
            let (bars_per_day, how) = match interior_bars_per_day(timestamps) {
                Some(b) => (b, "median bars per UTC date"),
                None => (
                    DAY_MS as f64 / spacing as f64,
                    "24 h of bars, too few dates to count",
                ),
            };
            (
                trading_days * bars_per_day,
                format!(
                    "intraday bars ({spacing_text} apart), trading {market}: \
                     {bars_per_day} bars a day ({how}) x {trading_days} days"
                ),
            )
        } else if spacing <= 4 * DAY_MS {
            (
                trading_days,
                format!(
                    "daily bars ({spacing_text} apart), trading {market}: {trading_days} a year"
                ),
            )
        } else {
            let ppy = 365.25 * DAY_MS as f64 / spacing as f64;
            (
                ppy,
                format!("bars {spacing_text} apart: 365.25 days / spacing = {ppy:.2}"),
            )
        };
        Self {
            periods_per_year,
            median_spacing_ms: spacing,
            weekday_only,
            rule,
        }
    }

    /// A frequency set by the caller (say, from a command-line flag).
    pub fn fixed(periods_per_year: f64) -> Self {
        Self {
            periods_per_year,
            median_spacing_ms: 0,
            weekday_only: false,
            rule: format!("set by the caller: {periods_per_year} bars a year"),
        }
    }
}

/// Median count of bars per UTC date over the dates strictly between the first and the
/// last; `None` with fewer than three dates.
fn interior_bars_per_day(timestamps: &[i64]) -> Option<f64> {
    let mut counts = Vec::new();
    let mut day = timestamps[0].div_euclid(DAY_MS);
    let mut count = 0usize;
    for &t in timestamps {
        let d = t.div_euclid(DAY_MS);
        if d != day {
            counts.push(count);
            day = d;
            count = 0;
        }
        count += 1;
    }
    counts.push(count);
    if counts.len() < 3 {
        return None;
    }
    let last = counts.len() - 1;
    let interior = &mut counts[1..last];
    let mid = interior.len() / 2;
    interior.sort_unstable();
    let median = if interior.len() % 2 == 1 {
        interior[mid] as f64
    } else {
        (interior[mid - 1] + interior[mid]) as f64 / 2.0
    };
    Some(median)
}

fn describe_spacing(ms: i64) -> String {
    if ms % DAY_MS == 0 {
        format!("{} d", ms / DAY_MS)
    } else if ms % HOUR_MS == 0 {
        format!("{} h", ms / HOUR_MS)
    } else if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} ms", ms)
    }
}
