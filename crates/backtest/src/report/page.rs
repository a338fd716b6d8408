//! The frame of Ratchet's self-contained HTML pages (inline CSS and SVG, no scripts, no
//! external references): the backtest report, and other pages in its style such as the
//! sweep leaderboard (`ratchet-sweep`).

use std::fmt::Write;

pub use super::chart::nice_step;
pub use super::format::escape_html;

pub const STYLE: &str = r#"
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

/// Opens a page: the head with the shared style, then the `<h1>` and a subtitle line.
/// `title` and `subtitle` are HTML (escape text with [`escape_html`]).
pub fn begin(h: &mut String, title: &str, subtitle: &str) {
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}</style></head><body><main>\
         <h1>{title}</h1><p class=\"sub\">{subtitle}</p>"
    );
}

/// Closes a page opened by [`begin`] with a footer (HTML).
pub fn end(h: &mut String, footer: &str) {
    let _ = writeln!(h, "<footer>{footer}</footer></main></body></html>");
}

/// A `<section>` with an id, a heading (text) and a body.
pub fn section(h: &mut String, id: &str, heading: &str, body: impl FnOnce(&mut String)) {
    let _ = write!(h, "<section id=\"{id}\"><h2>{}</h2>", escape_html(heading));
    body(h);
    h.push_str("</section>");
}

/// A row of coloured swatches with labels (HTML).
pub fn legend(h: &mut String, items: &[(&str, &str)]) {
    h.push_str("<div class=\"legend\">");
    for (colour, label) in items {
        let _ = write!(
            h,
            "<span><i style=\"background:{colour}\"></i>{label}</span>"
        );
    }
    h.push_str("</div>");
}
