//! The report of a universe backtest, written like a single instrument's (`report.json`,
//! `report.md`, `report.html`, all or none): a table per symbol, the equal-weight
//! portfolio's equity against equal-weight buy & hold, its drawdown, and each symbol's
//! positions.

use std::path::Path;

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use serde::Serialize;

use super::format;
use super::html::{drawdown_chart, equity_chart, position_chart};
use super::page::{Page, legend, section};
use super::{ReportMetadata, ReportPaths, write_files};
use crate::error::BacktestError;
use crate::metrics::underwater;
use crate::portfolio::{EqualWeight, PortfolioMetrics};
use crate::{Backtest, PriceSeries};

/// Version of the universe `report.json` layout.
pub const UNIVERSE_REPORT_SCHEMA: &str = "ratchet.backtest.universe-report/1";

/// One symbol's backtest.
pub struct SymbolRun<'a> {
    pub symbol: &'a str,
    pub prices: &'a PriceSeries,
    pub backtest: &'a Backtest,
}

/// One row of the per-symbol table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SymbolRow {
    pub symbol: String,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub bars: usize,
    pub total_return: f64,
    pub sharpe: Option<f64>,
    pub max_drawdown: f64,
    pub trades: usize,
    pub buy_and_hold_total_return: f64,
    pub buy_and_hold_sharpe: Option<f64>,
    /// The strategy's position through each bar (as [`crate::Simulation::positions`]).
    pub positions: Vec<f64>,
}

/// The content of a universe `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UniverseReport {
    /// [`UNIVERSE_REPORT_SCHEMA`].
    pub schema: String,
    pub generated_at: DateTime<Utc>,
    pub generator_version: String,
    pub metadata: ReportMetadata,
    pub symbols: Vec<SymbolRow>,
    /// The equal-weight portfolio of the strategy's sleeves.
    pub portfolio: PortfolioMetrics,
    /// The equal-weight portfolio of the symbols bought and held.
    pub buy_and_hold: PortfolioMetrics,
}

/// Writes the universe report of `runs` into `dir`; `(strategy, held)` are their
/// [`EqualWeight::of_backtests`].
pub fn write_universe_reports(
    dir: &Path,
    runs: &[SymbolRun],
    (strategy, held): (&EqualWeight, &EqualWeight),
    metadata: &ReportMetadata,
) -> Result<(UniverseReport, ReportPaths), BacktestError> {
    let report = UniverseReport {
        schema: UNIVERSE_REPORT_SCHEMA.into(),
        generated_at: Utc::now(),
        generator_version: env!("CARGO_PKG_VERSION").into(),
        metadata: metadata.clone(),
        symbols: runs.iter().map(row).collect(),
        portfolio: strategy.metrics(),
        buy_and_hold: held.metrics(),
    };
    let json = serde_json::to_string_pretty(&report).expect("a report always serialises to JSON");
    let paths = write_files(
        dir,
        [
            ("report.json", json),
            ("report.md", markdown(&report)),
            ("report.html", page(&report, runs, strategy, held)),
        ],
    )?;
    Ok((report, paths))
}

fn row(run: &SymbolRun) -> SymbolRow {
    let (s, h) = (
        &run.backtest.strategy_metrics,
        &run.backtest.buy_and_hold_metrics,
    );
    let (first, last) = run.prices.span();
    SymbolRow {
        symbol: run.symbol.to_string(),
        first,
        last,
        bars: run.prices.len(),
        total_return: s.total_return,
        sharpe: s.sharpe,
        max_drawdown: s.max_drawdown,
        trades: s.trades,
        buy_and_hold_total_return: h.total_return,
        buy_and_hold_sharpe: h.sharpe,
        positions: run.backtest.strategy.positions.clone(),
    }
}

fn ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

fn markdown(report: &UniverseReport) -> String {
    let (p, h) = (&report.portfolio, &report.buy_and_hold);
    let mut out = format!(
        "# {}\n\nEqual-weight portfolio of {} symbols (at each bar, the mean return of the \
         symbols trading then):\n\n| | strategy | buy & hold |\n| --- | ---: | ---: |\n\
         | total return | {} | {} |\n| sharpe | {} | {} |\n| max drawdown | {} | {} |\n\n\
         | symbol | from | to | bars | total return | sharpe | max drawdown | trades | buy & hold return | buy & hold sharpe |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        title(report),
        report.symbols.len(),
        format::signed_percent(p.total_return),
        format::signed_percent(h.total_return),
        ratio(p.sharpe),
        ratio(h.sharpe),
        format::percent(p.max_drawdown),
        format::percent(h.max_drawdown),
    );
    for r in &report.symbols {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            format::escape_markdown_cell(&r.symbol),
            format::time(r.first),
            format::time(r.last),
            r.bars,
            format::signed_percent(r.total_return),
            ratio(r.sharpe),
            format::percent(r.max_drawdown),
            r.trades,
            format::signed_percent(r.buy_and_hold_total_return),
            ratio(r.buy_and_hold_sharpe),
        ));
    }
    out
}

fn title(report: &UniverseReport) -> String {
    if report.metadata.title.is_empty() {
        "Backtest".to_string()
    } else {
        report.metadata.title.clone()
    }
}

/// Growth of 1 after each of `returns`.
fn compounded(returns: &[f64]) -> Vec<f64> {
    returns
        .iter()
        .scan(1.0, |equity, r| {
            *equity *= 1.0 + r;
            Some(*equity)
        })
        .collect()
}

fn page(
    report: &UniverseReport,
    runs: &[SymbolRun],
    strategy: &EqualWeight,
    held: &EqualWeight,
) -> String {
    let ts = &strategy.timestamps;
    let (equity, hold) = (compounded(&strategy.returns), compounded(&held.returns));
    let charts = ts.len() >= 2;
    let body = html! {
        @if charts {
            (section("chart-equity", "Equity: equal-weight portfolio vs equal-weight buy & hold", html! {
                (legend(&[("#2563eb", "Strategy"), ("#8b949e", "Buy & hold")]))
                (equity_chart(ts, &equity, &hold))
            }))
            (section("chart-drawdown", "Drawdown of the portfolio (underwater)", html! {
                (legend(&[("#cf222e", "Strategy"), ("#8b949e", "Buy & hold")]))
                (drawdown_chart(ts, &underwater(&equity), &underwater(&hold)))
            }))
        }
        (section("symbols", "Per symbol", symbol_table(report)))
        (section("chart-positions", "Positions held, per symbol", html! {
            @for run in runs {
                h3 { (run.symbol) }
                (position_chart(run.prices.timestamps(), &run.backtest.strategy.positions))
            }
        }))
    };
    Page {
        title: &title(report),
        subtitle: html! {
            (report.symbols.len()) " symbols · portfolio total return "
            (format::signed_percent(report.portfolio.total_return)) " · sharpe "
            (ratio(report.portfolio.sharpe))
        },
        style: "",
        body,
        footer: html! {
            "Each symbol is simulated on its own bars (decisions at a close fill at the next \
             open, costs on every change); the portfolio holds them in equal weight, its \
             return at each bar the mean of the symbols trading then. Generated by \
             ratchet-backtest " (report.generator_version) " at "
            (report.generated_at.format("%Y-%m-%d %H:%M:%S UTC")) "."
        },
    }
    .render()
}

fn symbol_table(report: &UniverseReport) -> Markup {
    html! {
        table {
            thead {
                tr {
                    th { "Symbol" } th { "From" } th { "To" } th class="n" { "Bars" }
                    th class="n" { "Total return" } th class="n" { "Sharpe" }
                    th class="n" { "Max drawdown" } th class="n" { "Trades" }
                    th class="n" { "Buy & hold return" } th class="n" { "Buy & hold Sharpe" }
                }
            }
            tbody {
                @for r in &report.symbols {
                    tr {
                        td { (r.symbol) } td { (format::time(r.first)) } td { (format::time(r.last)) }
                        td class="n" { (r.bars) }
                        td class="n" { (format::signed_percent(r.total_return)) }
                        td class="n" { (ratio(r.sharpe)) }
                        td class="n" { (format::percent(r.max_drawdown)) }
                        td class="n" { (r.trades) }
                        td class="n" { (format::signed_percent(r.buy_and_hold_total_return)) }
                        td class="n" { (ratio(r.buy_and_hold_sharpe)) }
                    }
                }
            }
        }
    }
}
