//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external
//! references) with the equity, drawdown, monthly-returns and position charts.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::chart::{Panel, downsample};
use super::format::{self, MONTHS, escape_html as esc};
use super::markdown::{LISTED_TRADES, overview};
use super::{Report, ReportInput};
use crate::metrics::{MetricRow, underwater};

const STYLE: &str = r#"
:root { --fg:#1f2328; --muted:#636c76; --line:#d8dee4; --bg:#f6f8fa; --loss:#cf222e; --gain:#1a7f37; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg); font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1040px; margin:0 auto; padding:24px 20px 40px; }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:17px; margin:0 0 10px; }
.sub { color:var(--muted); margin:0 0 16px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 18px; margin:0 0 16px; }
.alert { border-radius:8px; padding:12px 16px; margin:0 0 16px; font-weight:600; }
.alert.leak { background:#fff1f0; border:2px solid var(--loss); color:#82071e; }
.alert.bankrupt { background:#fff8c5; border:2px solid #bf8700; color:#633c01; }
.cards { display:grid; grid-template-columns:repeat(6,1fr); gap:10px; background:none; border:none; padding:0; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.card .k { color:var(--muted); font-size:12px; }
.card .v { font-size:20px; font-weight:650; }
.card .b { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:left; }
td.n, th.n { text-align:right; }
tbody tr:nth-child(even) { background:#fafbfc; }
.pos { color:var(--gain); } .neg { color:var(--loss); }
.legend { display:flex; gap:16px; color:var(--muted); font-size:12px; margin:0 0 4px; }
.legend i { display:inline-block; width:14px; height:3px; vertical-align:middle; margin-right:5px; }
svg text { font-size:11px; fill:var(--muted); }
svg .ylab { text-anchor:end; } svg .xlab { text-anchor:middle; }
svg .grid { stroke:#eaeef2; stroke-width:1; }
svg .frame { fill:none; stroke:var(--line); }
svg .hover { fill:transparent; } svg .hover:hover { fill:rgba(37,99,235,.06); }
svg .cell text { font-size:10.5px; text-anchor:middle; fill:#1f2328; }
svg .cell:hover rect { stroke:#1f2328; stroke-width:1.5; }
footer { color:var(--muted); font-size:12px; }
"#;

pub fn render(report: &Report, input: &ReportInput) -> String {
    let mut h = String::with_capacity(256 * 1024);
    let title = esc(report.title());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>\
         <h1>{title}</h1><p class=\"sub\">{} .. {} &middot; {} bars &middot; {} periods per year</p>",
        format::time(report.range.start),
        format::time(report.range.end),
        report.bars,
        report.periods_per_year,
    );
    if let Some(leak) = &report.leakage {
        let _ = write!(
            h,
            "<div class=\"alert leak\" id=\"leakage-warning\">&#9888; {}</div>",
            esc(leak)
        );
    }
    if let Some(t) = report.bankrupt_at {
        let _ = write!(
            h,
            "<div class=\"alert bankrupt\">The strategy lost the whole account at {}; it held nothing afterwards.</div>",
            format::time(t)
        );
    }
    cards(&mut h, report);

    let ts = input.prices.timestamps();
    let strategy = &input.backtest.strategy;
    let hold = &input.backtest.buy_and_hold;
    section(
        &mut h,
        "chart-equity",
        "Equity: strategy vs buy & hold (growth of 1)",
        |h| {
            legend(h, &[("#2563eb", "Strategy"), ("#8b949e", "Buy &amp; hold")]);
            equity_chart(h, ts, &strategy.equity, &hold.equity);
        },
    );
    section(&mut h, "chart-drawdown", "Drawdown (underwater)", |h| {
        legend(h, &[("#cf222e", "Strategy"), ("#8b949e", "Buy &amp; hold")]);
        drawdown_chart(
            h,
            ts,
            &underwater(&strategy.equity),
            &underwater(&hold.equity),
        );
    });
    section(&mut h, "chart-monthly", "Monthly returns (strategy)", |h| {
        monthly_chart(h, report)
    });
    section(&mut h, "chart-position", "Position held", |h| {
        position_chart(h, ts, &strategy.positions)
    });

    section(&mut h, "metrics", "Metrics", |h| {
        let _ = write!(
            h,
            "<table><thead><tr><th>Metric</th><th class=\"n\">Strategy</th><th class=\"n\">Buy &amp; hold</th></tr></thead><tbody>"
        );
        for (label, strategy, hold) in format::metric_table(report) {
            let _ = write!(
                h,
                "<tr><td>{label}</td><td class=\"n\">{strategy}</td><td class=\"n\">{hold}</td></tr>"
            );
        }
        let _ = write!(h, "</tbody></table>");
    });
    section(&mut h, "trades", "Trades", |h| trades_table(h, report));
    section(&mut h, "run", "Run", |h| {
        let _ = write!(h, "<table><tbody>");
        for (k, v) in overview(report) {
            let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
        }
        let _ = write!(h, "</tbody></table>");
    });
    let _ = writeln!(
        h,
        "<footer>Decisions at a bar's close fill at the next bar's open; commission and slippage are \
         charged on every position change; buy &amp; hold is bought at the second bar's open under the \
         same rule. Generated by ratchet-backtest {} at {}.</footer></main></body></html>",
        esc(&report.generator_version),
        report.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    h
}

fn section(h: &mut String, id: &str, heading: &str, body: impl FnOnce(&mut String)) {
    let _ = write!(h, "<section id=\"{id}\"><h2>{}</h2>", esc(heading));
    body(h);
    h.push_str("</section>");
}

fn legend(h: &mut String, items: &[(&str, &str)]) {
    h.push_str("<div class=\"legend\">");
    for (colour, label) in items {
        let _ = write!(
            h,
            "<span><i style=\"background:{colour}\"></i>{label}</span>"
        );
    }
    h.push_str("</div>");
}

fn cards(h: &mut String, report: &Report) {
    let (s, b) = (report.strategy.rows(), report.buy_and_hold.rows());
    h.push_str("<section class=\"cards\">");
    for key in [
        "total_return",
        "cagr",
        "sharpe",
        "max_drawdown",
        "win_rate",
        "trades",
    ] {
        let find =
            |rows: &[MetricRow]| *rows.iter().find(|r| r.key == key).expect("a listed metric");
        let (s, b) = (find(&s), find(&b));
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"b\">buy &amp; hold {}</div></div>",
            s.label,
            format::metric(&s),
            format::metric(&b),
        );
    }
    h.push_str("</section>");
}

/// Decimals that tell gridlines `step` apart.
fn decimals(step: f64) -> usize {
    (-step.log10().floor()).clamp(0.0, 6.0) as usize
}

fn min_max<'a>(series: impl IntoIterator<Item = &'a [f64]>) -> (f64, f64) {
    series
        .into_iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

fn equity_chart(h: &mut String, ts: &[i64], strategy: &[f64], hold: &[f64]) {
    let (lo, hi) = min_max([strategy, hold]);
    let panel = Panel::new(960.0, 320.0, ts[0], ts[ts.len() - 1], lo, hi);
    panel.begin(
        h,
        "Equity of the strategy and of buy and hold",
        |v, step| format!("{v:.*}", decimals(step)),
    );
    let _ = write!(
        h,
        "<path d=\"{}\" fill=\"none\" stroke=\"#8b949e\" stroke-width=\"1.5\"><title>Buy &amp; hold: final equity {:.4}</title></path>\
         <path d=\"{}\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\"><title>Strategy: final equity {:.4}</title></path>",
        panel.line(ts, hold, &downsample(hold)),
        hold[hold.len() - 1],
        panel.line(ts, strategy, &downsample(strategy)),
        strategy[strategy.len() - 1],
    );
    panel.hover_bands(h, ts, |i| {
        format!(
            "{}: strategy {:.4}, buy & hold {:.4}",
            format::time(crate::prices::to_datetime(ts[i])),
            strategy[i],
            hold[i]
        )
    });
    h.push_str("</svg>");
}

fn drawdown_chart(h: &mut String, ts: &[i64], strategy: &[f64], hold: &[f64]) {
    let (lo, _) = min_max([strategy, hold]);
    let panel = Panel::new(960.0, 240.0, ts[0], ts[ts.len() - 1], lo, 0.0);
    panel.begin(h, "Drawdown from the running peak", |v, step| {
        format!("{:.*}%", decimals(step * 100.0), v * 100.0)
    });
    let keep = downsample(strategy);
    let line = panel.line(ts, strategy, &keep);
    let (x0, x1, zero) = (panel.x(ts[0]), panel.x(ts[ts.len() - 1]), panel.y(0.0));
    let _ = write!(
        h,
        "<path d=\"{line}L{x1:.1},{zero:.1}L{x0:.1},{zero:.1}Z\" fill=\"rgba(207,34,46,.18)\" stroke=\"#cf222e\" stroke-width=\"1.2\"><title>Strategy drawdown: deepest {}</title></path>\
         <path d=\"{}\" fill=\"none\" stroke=\"#8b949e\" stroke-width=\"1.2\"><title>Buy &amp; hold drawdown: deepest {}</title></path>",
        format::percent(lo_of(strategy)),
        panel.line(ts, hold, &downsample(hold)),
        format::percent(lo_of(hold)),
    );
    panel.hover_bands(h, ts, |i| {
        format!(
            "{}: strategy {}, buy & hold {}",
            format::time(crate::prices::to_datetime(ts[i])),
            format::percent(strategy[i]),
            format::percent(hold[i])
        )
    });
    h.push_str("</svg>");
}

fn lo_of(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(0.0, f64::min)
}

fn position_chart(h: &mut String, ts: &[i64], positions: &[f64]) {
    let long: Vec<f64> = positions.iter().map(|&p| p.max(0.0)).collect();
    let short: Vec<f64> = positions.iter().map(|&p| p.min(0.0)).collect();
    let (lo, hi) = min_max([positions]);
    let panel = Panel::new(
        960.0,
        200.0,
        ts[0],
        ts[ts.len() - 1],
        lo.min(0.0),
        hi.max(0.0),
    );
    panel.begin(h, "Position held through each bar", |v, step| {
        format!("{:.*}", decimals(step), v)
    });
    let exposed = positions.iter().filter(|&&p| p != 0.0).count();
    for (part, colour, fill, name) in [
        (&long, "#1a7f37", "rgba(26,127,55,.35)", "Long"),
        (&short, "#cf222e", "rgba(207,34,46,.35)", "Short"),
    ] {
        if part.iter().any(|&p| p != 0.0) {
            let _ = write!(
                h,
                "<path d=\"{}\" fill=\"{fill}\" stroke=\"{colour}\" stroke-width=\"1\"><title>{name}</title></path>",
                panel.step_area(ts, part, &downsample(part)),
            );
        }
    }
    panel.hover_bands(h, ts, |i| {
        format!(
            "{}: position {} ({} of bars in the market)",
            format::time(crate::prices::to_datetime(ts[i])),
            positions[i],
            format::percent(exposed as f64 / positions.len() as f64)
        )
    });
    h.push_str("</svg>");
}

/// Years beyond this many (the most recent are kept) would make the heatmap unreadable.
const HEATMAP_YEARS: usize = 40;

fn monthly_chart(h: &mut String, report: &Report) {
    let mut years: BTreeMap<i32, [Option<(f64, f64)>; 12]> = BTreeMap::new();
    for m in &report.monthly_returns {
        years.entry(m.year).or_default()[m.month as usize - 1] = Some((m.strategy, m.buy_and_hold));
    }
    let skipped = years.len().saturating_sub(HEATMAP_YEARS);
    let rows: Vec<_> = years.iter().skip(skipped).collect();
    let scale = report
        .monthly_returns
        .iter()
        .map(|m| m.strategy.abs())
        .fold(1e-4, f64::max);
    let (label_w, cell_w, cell_h, head) = (56.0, 68.0, 24.0, 22.0);
    let width = label_w + 13.0 * cell_w;
    let height = head + rows.len() as f64 * cell_h + 4.0;
    let _ = write!(
        h,
        r#"<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="Monthly returns by year"><title>Monthly returns of the strategy by year and month</title>"#
    );
    for (c, name) in MONTHS.iter().chain(&["Year"]).enumerate() {
        let _ = write!(
            h,
            r#"<text x="{:.1}" y="15" text-anchor="middle">{name}</text>"#,
            label_w + (c as f64 + 0.5) * cell_w
        );
    }
    for (r, (year, months)) in rows.iter().enumerate() {
        let y = head + r as f64 * cell_h;
        let _ = write!(
            h,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{year}</text>"#,
            label_w - 8.0,
            y + 16.0
        );
        let (mut compound, mut hold_compound) = (1.0, 1.0);
        for (c, cell) in months.iter().enumerate() {
            let x = label_w + c as f64 * cell_w;
            match cell {
                Some((s, b)) => {
                    compound *= 1.0 + s;
                    hold_compound *= 1.0 + b;
                    heat_cell(
                        h,
                        x,
                        y,
                        cell_w,
                        cell_h,
                        *s / scale,
                        &format::signed_percent(*s),
                        &format!(
                            "{year} {}: {} (buy & hold {})",
                            MONTHS[c],
                            format::signed_percent(*s),
                            format::signed_percent(*b)
                        ),
                    );
                }
                None => {
                    let _ = write!(
                        h,
                        r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#f6f8fa"/>"##,
                        x + 1.0,
                        y + 1.0,
                        cell_w - 2.0,
                        cell_h - 2.0
                    );
                }
            }
        }
        let year_return = compound - 1.0;
        heat_cell(
            h,
            label_w + 12.0 * cell_w,
            y,
            cell_w,
            cell_h,
            year_return / scale.max(year_return.abs()),
            &format::signed_percent(year_return),
            &format!(
                "{year}: {} over the months shown (buy & hold {})",
                format::signed_percent(year_return),
                format::signed_percent(hold_compound - 1.0)
            ),
        );
    }
    h.push_str("</svg>");
    if skipped > 0 {
        let _ = write!(
            h,
            "<p class=\"sub\">The first {skipped} years are left out of the chart; report.json has every month.</p>"
        );
    }
}

/// One heatmap cell, deeper in colour with `|intensity|` (-1..1).
#[allow(clippy::too_many_arguments)]
fn heat_cell(
    h: &mut String,
    x: f64,
    y: f64,
    w: f64,
    ht: f64,
    intensity: f64,
    text: &str,
    tip: &str,
) {
    let a = intensity.abs().min(1.0);
    // Green for gains, red for losses, grey for a month without change (flat throughout).
    let (r, g, b, base) = match intensity {
        i if i > 0.0 => (26.0, 127.0, 55.0, 0.12),
        i if i < 0.0 => (207.0, 34.0, 46.0, 0.12),
        _ => (140.0, 149.0, 159.0, 0.15),
    };
    let mix = |c: f64| (255.0 + (c - 255.0) * (base + 0.78 * a)).round() as u8;
    let _ = write!(
        h,
        r#"<g class="cell"><title>{tip}</title><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3" fill="rgb({},{},{})"/><text x="{:.1}" y="{:.1}"{}>{text}</text></g>"#,
        x + 1.0,
        y + 1.0,
        w - 2.0,
        ht - 2.0,
        mix(r),
        mix(g),
        mix(b),
        x + w / 2.0,
        y + ht / 2.0 + 4.0,
        if a > 0.6 { r#" style="fill:#fff""# } else { "" },
        tip = esc(tip),
    );
}

fn trades_table(h: &mut String, report: &Report) {
    let trades = &report.trades;
    let shown = trades.len().min(LISTED_TRADES);
    let _ = write!(
        h,
        "<p class=\"sub\">{} trades; the last {shown} are listed (report.json has them all).</p>",
        trades.len()
    );
    if shown == 0 {
        return;
    }
    h.push_str(
        "<table><thead><tr><th class=\"n\">#</th><th>Side</th><th>Entry</th><th class=\"n\">Price</th>\
         <th>Exit</th><th class=\"n\">Price</th><th class=\"n\">Bars</th><th class=\"n\">Return</th></tr></thead><tbody>",
    );
    for (number, t, [side, entry, entry_price, exit, exit_price, bars, ret]) in
        format::trade_rows(trades, LISTED_TRADES)
    {
        let sign = if t.trade.pnl > 0.0 {
            "pos"
        } else if t.trade.pnl < 0.0 {
            "neg"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td class=\"n\">{number}</td><td>{side}</td><td>{entry}</td><td class=\"n\">{entry_price}</td><td>{exit}</td><td class=\"n\">{exit_price}</td><td class=\"n\">{bars}</td><td class=\"n {sign}\">{ret}</td></tr>"
        );
    }
    h.push_str("</tbody></table>");
}
