//! Human-readable tables and JSON output.

use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A plain-text table: left-aligned columns sized to their widest cell, two spaces apart, no
/// borders (so `grep`, `awk` and `column` read it as they read `ls -l`).
pub struct Table(comfy_table::Table);

impl Table {
    pub fn new(header: &[&str]) -> Self {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::NOTHING)
            .set_header(header.iter().copied());
        Self(table)
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.0.add_row(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.0.row_count() == 0
    }

    pub fn render(&mut self) -> String {
        // Each column's cells padded on the right only, two spaces, none after the last.
        let last = self.0.column_count().saturating_sub(1);
        for (i, column) in self.0.column_iter_mut().enumerate() {
            column.set_padding((0, if i < last { 2 } else { 0 }));
        }
        let mut out = String::new();
        for line in self.0.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A number rounded to a whole one, with thousands separators: `32,836`.
pub fn whole(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM` (UTC).
pub fn time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A value with 4 decimals (scientific notation when very large or small), or `-`.
pub fn number(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-3) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
        None => "-".into(),
    }
}

/// A metric in the one style every command prints: returns signed percentages, drawdowns,
/// volatility and shares of time unsigned percentages, counts whole numbers, the rest (ratios,
/// CartPole's episode return) as [`number`].
pub fn figure(metric: &str, v: Option<f64>) -> String {
    let Some(v) = v.filter(|v| v.is_finite()) else {
        return number(v);
    };
    match metric.strip_prefix("val/").unwrap_or(metric) {
        "total_return" | "buy_and_hold_total_return" | "cagr" => format!("{:+.2}%", v * 100.0),
        "max_drawdown" | "annual_volatility" | "exposure" | "win_rate" => {
            format!("{:.2}%", v * 100.0)
        }
        "trades" | "periods_per_year" => format!("{v:.0}"),
        _ => number(Some(v)),
    }
}

/// ` (did you mean `NAME`?)` naming the entry of `known` closest to `input`, or nothing when
/// none is close.
pub fn did_you_mean(input: &str, known: &[String]) -> String {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(input, k), k))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(String::new, |(_, k)| format!(" (did you mean `{k}`?)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_print_in_one_style() {
        let cases = [
            ("total_return", 0.1234, "+12.34%"),
            ("val/buy_and_hold_total_return", -0.05, "-5.00%"),
            ("max_drawdown", 0.2809, "28.09%"),
            ("trades", 122.0, "122"),
            ("periods_per_year", 252.0, "252"),
            ("sharpe", 1.23456, "1.2346"),
            ("mean_return", 9.4, "9.4000"),
        ];
        for (metric, value, shown) in cases {
            assert_eq!(figure(metric, Some(value)), shown, "{metric}");
        }
        assert_eq!(figure("total_return", None), "-");
        assert_eq!(figure("total_return", Some(f64::NAN)), "NaN");
    }
}
