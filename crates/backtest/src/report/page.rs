//! The layout every Ratchet HTML report uses: one self-contained page (inline CSS and SVG,
//! no scripts, no external references) with a heading, a subtitle, sections and a footer.
//! The backtest's `report.html` and the sweep leaderboard (`ratchet-sweep`) are both
//! [`Page`]s.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The shared style sheet: sections as cards, tables, alerts, legends and the SVG charts.
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

/// A whole page. Text is escaped where it is spliced in; the `Markup` parts are built with
/// [`maud::html!`], which escapes their text too.
pub struct Page<'a> {
    /// The document's `<title>` and its `<h1>` (text).
    pub title: &'a str,
    /// The line under the heading.
    pub subtitle: Markup,
    /// CSS rules this page adds to the shared style sheet (empty for none).
    pub style: &'a str,
    /// The content: alerts, [`section`]s.
    pub body: Markup,
    pub footer: Markup,
}

impl Page<'_> {
    /// The HTML document, ending with a newline.
    pub fn render(&self) -> String {
        let page = html! {
            (DOCTYPE) "\n"
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) }
                    style { (PreEscaped(STYLE)) (PreEscaped(self.style)) }
                }
                body {
                    main {
                        h1 { (self.title) }
                        p class="sub" { (self.subtitle) }
                        (self.body)
                        footer { (self.footer) }
                    }
                }
            }
        };
        page.into_string() + "\n"
    }
}

/// A `<section>` with an id (the anchor tests and readers look for) and a heading.
pub fn section(id: &str, heading: &str, body: Markup) -> Markup {
    html! {
        section id=(id) {
            h2 { (heading) }
            (body)
        }
    }
}

/// A row of coloured swatches (CSS colours) with their labels, above a chart.
pub fn legend(items: &[(&str, &str)]) -> Markup {
    html! {
        div class="legend" {
            @for (colour, label) in items {
                span {
                    i style={ "background:" (colour) } {}
                    (label)
                }
            }
        }
    }
}
