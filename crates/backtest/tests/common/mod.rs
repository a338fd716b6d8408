//! Bundled market data for the tests, read with a few lines of CSV parsing (this crate does
//! not depend on the data crate).

#![allow(dead_code)] // each test binary uses its own part

use chrono::NaiveDate;
use ratchet_backtest::PriceSeries;

/// Text of a file in the repository's `data/` directory.
pub fn bundled(name: &str) -> String {
    let path = format!("{}/../../data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Daily GOOGL bars 2009-05-22 .. 2018-08-29 (Date,Open,High,Low,Close,...).
pub fn googl() -> PriceSeries {
    let (mut ts, mut open, mut close) = (Vec::new(), Vec::new(), Vec::new());
    for line in bundled("STOCKS_GOOGL.csv").lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let date = NaiveDate::parse_from_str(f[0], "%Y-%m-%d").unwrap();
        ts.push(
            date.and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis(),
        );
        open.push(f[1].parse().unwrap());
        close.push(f[4].parse().unwrap());
    }
    PriceSeries::new(ts, open, close).unwrap()
}

/// `YYYY-MM-DD` at midnight UTC.
pub fn date(s: &str) -> chrono::DateTime<chrono::Utc> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

/// Fails if the page could fetch anything: no URLs, scripts, links or imports.
pub fn assert_no_external_references(html: &str) {
    let lower = html.to_ascii_lowercase();
    for needle in [
        "http:", "https:", "//", "<script", "<link", "<img", "<iframe", "src=", "href=", "url(",
        "@import",
    ] {
        // `//` would be a protocol-relative URL; none belongs in the page at all.
        assert!(!lower.contains(needle), "report.html contains {needle:?}");
    }
}
