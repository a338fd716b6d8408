//! Number, time and text formatting shared by the Markdown and HTML reports.

use chrono::{DateTime, Timelike, Utc};

use super::{Report, TradeRecord};
use crate::metrics::{MetricKind, MetricRow};

/// A date, with the time of day only when it is not midnight.
pub fn time(t: DateTime<Utc>) -> String {
    if t.num_seconds_from_midnight() == 0 {
        t.format("%Y-%m-%d").to_string()
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// A metric's value as a table shows it; `n/a` where undefined.
pub fn metric(row: &MetricRow) -> String {
    match row.value {
        None => "n/a".to_string(),
        Some(v) => match row.kind {
            MetricKind::Percent => percent(v),
            MetricKind::Ratio => format!("{v:.2}"),
            MetricKind::Count => format!("{v:.0}"),
            MetricKind::Days => format!("{v:.1}"),
        },
    }
}

/// Every metric of the strategy as a report's table row: label, strategy value,
/// buy-and-hold value (`n/a` where buy-and-hold has none, such as the deflated Sharpe).
pub fn metric_table(report: &Report) -> Vec<(&'static str, String, String)> {
    let hold = report.buy_and_hold.rows();
    report
        .strategy
        .rows()
        .iter()
        .map(|s| {
            let b = hold.iter().find(|b| b.key == s.key);
            (s.label, metric(s), b.map_or_else(|| "n/a".into(), metric))
        })
        .collect()
}

/// The trades both reports list (the last `listed`), each with its number from 1 and its
/// cells: side, entry, entry price, exit, exit price, bars, return. A trade still held at the
/// end has no exit: it is valued at the last bar's close, and says so in both cells.
pub fn trade_rows(
    trades: &[TradeRecord],
    listed: usize,
) -> Vec<(usize, &TradeRecord, [String; 7])> {
    let skip = trades.len() - trades.len().min(listed);
    trades
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, t)| {
            let (exit, exit_price) = if t.trade.closed {
                (time(t.exit_time), price(t.trade.exit_price))
            } else {
                (
                    format!("still held at {}", time(t.exit_time)),
                    format!("{} (close)", price(t.trade.exit_price)),
                )
            };
            let cells = [
                format!("{:?}", t.trade.side),
                time(t.entry_time),
                price(t.trade.entry_price),
                exit,
                exit_price,
                t.trade.bars.to_string(),
                signed_percent(t.trade.trade_return),
            ];
            (i + 1, t, cells)
        })
        .collect()
}

pub fn percent(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// A percentage with an explicit sign, for returns.
pub fn signed_percent(v: f64) -> String {
    format!("{:+.2}%", v * 100.0)
}

/// A price with as many decimals as its size needs (FX quotes carry five).
pub fn price(p: f64) -> String {
    if p >= 1000.0 {
        format!("{p:.2}")
    } else if p >= 10.0 {
        format!("{p:.3}")
    } else {
        format!("{p:.5}")
    }
}

/// Text safe inside a Markdown table cell.
pub fn escape_markdown_cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Side, Trade};

    #[test]
    fn a_trade_still_held_says_so_in_its_exit_cells() {
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2018, 8, d)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        };
        let trade = |closed: bool| TradeRecord {
            entry_time: day(27),
            exit_time: day(29),
            trade: Trade {
                side: Side::Long,
                entry_bar: 0,
                entry_price: 1250.0,
                exit_bar: 2,
                exit_price: 1262.5,
                closed,
                bars: 2,
                pnl: 0.01,
                trade_return: 0.01,
            },
        };
        let trades = [trade(true), trade(false)];
        let rows: Vec<[String; 7]> = trade_rows(&trades, 10)
            .into_iter()
            .map(|(_, _, cells)| cells)
            .collect();
        assert_eq!(
            rows[0],
            [
                "Long",
                "2018-08-27",
                "1250.00",
                "2018-08-29",
                "1262.50",
                "2",
                "+1.00%"
            ]
        );
        assert_eq!(
            [rows[1][3].as_str(), rows[1][4].as_str()],
            ["still held at 2018-08-29", "1262.50 (close)"]
        );
    }
}
