//! periods_per_year inferred from the bundled data and from synthetic calendars.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

mod common;

use chrono::NaiveDateTime;
use common::bundled;
use ratchet_backtest::Frequency;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Monday 2024-01-01 00:00 UTC.
const MONDAY: i64 = 1_704_067_200_000;

/// First-column timestamps of a bundled CSV, parsed with `parse`.
fn timestamps(name: &str, parse: impl Fn(&str) -> i64) -> Vec<i64> {
    bundled(name)
        .lines()
        .skip(1)
        .map(|line| parse(line.split(',').next().unwrap()))
        .collect()
}

#[test]
fn daily_us_equities_have_252_periods() {
    let ts = common::googl().timestamps().to_vec();
    assert_eq!(ts.len(), 2335);
    let f = Frequency::infer(&ts);
    assert_eq!(f.periods_per_year, 252.0, "{}", f.rule);
    assert!(f.weekday_only);
    assert_eq!(f.median_spacing_ms, DAY);
    assert!(f.rule.contains("daily"), "{}", f.rule);
}

#[test]
fn hourly_fx_trades_24_hours_on_weekdays() {
    let ts = timestamps("FOREX_EURUSD_1H_ASK.csv", |s| {
        NaiveDateTime::parse_from_str(s, "%d.%m.%Y %H:%M:%S%.3f")
            .unwrap()
            .and_utc()
            .timestamp_millis()
    });
    assert_eq!(ts.len(), 6225);
    let f = Frequency::infer(&ts);
    assert_eq!(f.periods_per_year, 24.0 * 252.0, "{}", f.rule);
    assert!(
        f.weekday_only,
        "Sunday-evening bars do not make FX a 7-day market"
    );
    assert_eq!(f.median_spacing_ms, HOUR);
}

#[test]
fn other_calendars() {
    let every_day: Vec<i64> = (0..400).map(|d| MONDAY + d * DAY).collect();
    let f = Frequency::infer(&every_day);
    assert_eq!(
        f.periods_per_year, 365.0,
        "crypto trades every day: {}",
        f.rule
    );
    assert!(!f.weekday_only);

    let weekly: Vec<i64> = (0..100).map(|w| MONDAY + 4 * DAY + w * 7 * DAY).collect();
    let f = Frequency::infer(&weekly);
    assert!(
        (f.periods_per_year - 365.25 / 7.0).abs() < 1e-12,
        "{}",
        f.rule
    );

    // US equities hourly: 7 bars (13:30 .. 19:30 UTC) on weekdays.
    let hourly: Vec<i64> = (0..60)
        .filter(|d| d % 7 < 5)
        .flat_map(|d| (0..7).map(move |h| MONDAY + d * DAY + 13 * HOUR + HOUR / 2 + h * HOUR))
        .collect();
    let f = Frequency::infer(&hourly);
    assert_eq!(f.periods_per_year, 7.0 * 252.0, "{}", f.rule);

    // Tokyo's weekday sessions stamped at local midnight fall on Sunday..Thursday in UTC.
    let tokyo: Vec<i64> = (0..70)
        .filter(|d| d % 7 < 5)
        .map(|d| MONDAY - 9 * HOUR + d * DAY)
        .collect();
    let f = Frequency::infer(&tokyo);
    assert!(f.weekday_only);
    assert_eq!(f.periods_per_year, 252.0);

    // Too short to count bars per date: a full day of 5-minute bars is assumed (and one
    // Monday looks like a weekday market).
    let minutes: Vec<i64> = (0..50).map(|i| MONDAY + 10 * HOUR + i * 300_000).collect();
    let f = Frequency::infer(&minutes);
    assert_eq!(f.periods_per_year, 288.0 * 252.0, "{}", f.rule);

    assert_eq!(Frequency::fixed(12.0).periods_per_year, 12.0);
}
