//! The small YAML subset MLflow's file store uses: one flat mapping per `meta.yaml`.
//!
//! Reading accepts what PyYAML's `safe_dump` writes (plain, single- and double-quoted
//! scalars, continuation lines, `null`/`~`, flow `[]`/`{}`, nested blocks which are kept
//! as raw text) so stores written by MLflow itself read back. Writing quotes every string so
//! values like `None`, `true` or `2024-01-01` keep their type (spec §1.3).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A scalar value of a top-level key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A plain (unquoted) scalar, as written: may be an integer, a bool, or a string.
    Plain(String),
    /// A quoted scalar: always a string.
    Quoted(String),
    /// A nested block or a flow collection, unparsed.
    Nested(String),
}

impl Value {
    /// The value as a string (plain or quoted), `None` for null and nested values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Plain(s) | Value::Quoted(s) => Some(s),
            Value::Null | Value::Nested(_) => None,
        }
    }

    /// The value as an integer; only plain scalars are integers in YAML.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Plain(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// A parsed top-level mapping.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mapping(pub BTreeMap<String, Value>);

impl Mapping {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }
}

/// Parses a flat block mapping. Errors name the 1-based line.
pub fn parse(text: &str) -> Result<Mapping, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_end();
        if trimmed.trim_start().is_empty() || trimmed.trim_start().starts_with('#') {
            i += 1;
            continue;
        }
        if trimmed.starts_with(' ') || trimmed.starts_with('\t') {
            return Err(format!("line {}: unexpected indentation", i + 1));
        }
        let (key, rest) =
            split_key(trimmed).ok_or_else(|| format!("line {}: expected `key: value`", i + 1))?;
        // Continuation lines are the following indented (or blank, inside quotes) lines.
        let mut end = i + 1;
        while end < lines.len() {
            let next = lines[end];
            if next.starts_with(' ')
                || next.starts_with('\t')
                || (next.trim().is_empty() && rest_is_open_quote(rest))
            {
                end += 1;
            } else {
                break;
            }
        }
        let continuation = &lines[i + 1..end];
        let value = parse_value(rest, continuation).map_err(|e| format!("line {}: {e}", i + 1))?;
        map.insert(key.to_string(), value);
        i = end;
    }
    Ok(Mapping(map))
}

fn rest_is_open_quote(rest: &str) -> bool {
    let rest = rest.trim();
    (rest.starts_with('\'') || rest.starts_with('"')) && !closes_on_same_line(rest)
}

fn closes_on_same_line(rest: &str) -> bool {
    let quote = rest.chars().next().unwrap_or(' ');
    let body = &rest[1..];
    match quote {
        '\'' => {
            let mut chars = body.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\'' {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        return true;
                    }
                }
            }
            false
        }
        _ => {
            let mut escaped = false;
            for c in body.chars() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => return true,
                    _ => {}
                }
            }
            false
        }
    }
}

fn split_key(line: &str) -> Option<(&str, &str)> {
    // Keys in MLflow meta files are simple identifiers; find the first ": " or a trailing ':'.
    if let Some(pos) = line.find(": ") {
        return Some((line[..pos].trim(), &line[pos + 2..]));
    }
    line.strip_suffix(':').map(|key| (key.trim(), ""))
}

fn parse_value(first: &str, continuation: &[&str]) -> Result<Value, String> {
    let first = first.trim();
    if first.is_empty() {
        // A nested block (or a null when nothing follows).
        if continuation.iter().all(|l| l.trim().is_empty()) {
            return Ok(Value::Null);
        }
        return Ok(Value::Nested(continuation.join("\n")));
    }
    if first.starts_with('[') || first.starts_with('{') {
        let mut raw = first.to_string();
        for line in continuation {
            raw.push(' ');
            raw.push_str(line.trim());
        }
        return Ok(Value::Nested(raw));
    }
    if first.starts_with('\'') || first.starts_with('"') {
        // Quoted scalars may span lines: line breaks fold to a space, an empty line to '\n'.
        let mut raw = first.to_string();
        for line in continuation {
            raw.push('\n');
            raw.push_str(line.trim());
        }
        let folded = fold_lines(&raw);
        return if first.starts_with('\'') {
            parse_single_quoted(&folded).map(Value::Quoted)
        } else {
            parse_double_quoted(&folded).map(Value::Quoted)
        };
    }
    if let Some(indicator) = first.chars().next().filter(|c| *c == '|' || *c == '>') {
        return Ok(Value::Quoted(block_scalar(indicator, continuation)));
    }
    let mut text = strip_comment(first).to_string();
    for line in continuation {
        let line = line.trim();
        if !line.is_empty() {
            text.push(' ');
            text.push_str(strip_comment(line));
        }
    }
    if matches!(text.as_str(), "null" | "Null" | "NULL" | "~") {
        return Ok(Value::Null);
    }
    Ok(Value::Plain(text))
}

fn strip_comment(text: &str) -> &str {
    match text.find(" #") {
        Some(pos) => text[..pos].trim_end(),
        None => text,
    }
}

fn block_scalar(indicator: char, lines: &[&str]) -> String {
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let body: Vec<&str> = lines
        .iter()
        .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
        .collect();
    let mut out = if indicator == '|' {
        body.join("\n")
    } else {
        fold_lines(&body.join("\n"))
    };
    out.push('\n');
    out
}

/// YAML line folding inside flow scalars: a single line break becomes a space, each
/// blank line becomes a newline.
fn fold_lines(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut parts = raw.split('\n').peekable();
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    let mut blank_run = 0;
    for part in parts {
        if part.is_empty() {
            blank_run += 1;
            continue;
        }
        if blank_run > 0 {
            for _ in 0..blank_run {
                out.push('\n');
            }
            blank_run = 0;
        } else {
            out.push(' ');
        }
        out.push_str(part);
    }
    for _ in 0..blank_run {
        out.push('\n');
    }
    out
}

fn parse_single_quoted(raw: &str) -> Result<String, String> {
    let body = raw.strip_prefix('\'').ok_or("missing opening quote")?;
    let mut out = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
                out.push('\'');
            } else {
                let rest: String = chars.collect();
                if !strip_comment(rest.trim()).is_empty() {
                    return Err(format!("unexpected text after closing quote: {rest:?}"));
                }
                return Ok(out);
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated single-quoted string".into())
}

fn parse_double_quoted(raw: &str) -> Result<String, String> {
    let body = raw.strip_prefix('"').ok_or("missing opening quote")?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Ok(out),
            '\\' => {
                let escape = chars.next().ok_or("unterminated escape")?;
                match escape {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'e' => out.push('\x1b'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    ' ' => out.push(' '),
                    '/' => out.push('/'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'N' => out.push('\u{85}'),
                    '_' => out.push('\u{a0}'),
                    'L' => out.push('\u{2028}'),
                    'P' => out.push('\u{2029}'),
                    'x' | 'u' | 'U' => {
                        let width = match escape {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = chars.by_ref().take(width).collect();
                        let code = u32::from_str_radix(&hex, 16)
                            .map_err(|_| format!("bad escape \\{escape}{hex}"))?;
                        out.push(
                            char::from_u32(code)
                                .ok_or(format!("bad code point \\{escape}{hex}"))?,
                        );
                    }
                    // An escaped line break joins lines without a space.
                    '\n' => {}
                    other => return Err(format!("unknown escape \\{other}")),
                }
            }
            other => out.push(other),
        }
    }
    Err("unterminated double-quoted string".into())
}

/// Builds a `meta.yaml` with keys in the order given (callers pass them sorted, as MLflow
/// writes them).
#[derive(Default)]
pub struct Writer {
    out: String,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    /// A string value, always quoted.
    pub fn str(mut self, key: &str, value: &str) -> Self {
        let _ = writeln!(self.out, "{key}: {}", quote(value));
        self
    }

    pub fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.str(key, value),
            None => self.null(key),
        }
    }

    pub fn int(mut self, key: &str, value: i64) -> Self {
        let _ = writeln!(self.out, "{key}: {value}");
        self
    }

    pub fn opt_int(self, key: &str, value: Option<i64>) -> Self {
        match value {
            Some(value) => self.int(key, value),
            None => self.null(key),
        }
    }

    pub fn null(mut self, key: &str) -> Self {
        let _ = writeln!(self.out, "{key}: null");
        self
    }

    /// A value written verbatim (unquoted enums like `active`, `[]`).
    pub fn raw(mut self, key: &str, value: &str) -> Self {
        let _ = writeln!(self.out, "{key}: {value}");
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Quotes a string for YAML: single quotes when that is exact, double quotes with escapes
/// when the value has line breaks or other control characters.
pub fn quote(value: &str) -> String {
    if value.chars().any(|c| {
        c.is_control() || c == '\u{85}' || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}'
    }) {
        let mut out = String::with_capacity(value.len() + 2);
        out.push('"');
        for c in value.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control()
                    || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}') =>
                {
                    let _ = write!(out, "\\u{:04X}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_mlflow_writes() {
        let text = "artifact_uri: file:///abs/mlruns/1/abc/artifacts\nend_time: null\n\
                    experiment_id: '220977049416482097'\nlifecycle_stage: active\n\
                    run_name: parent-run\nstatus: 3\ntags: []\ncurrent_stage: None\n\
                    description: 'it''s a long\n  description'\naliases:\n  production: '2'\n\
                    note: \"line1\\nline2\"\n";
        let map = parse(text).unwrap();
        assert_eq!(
            map.str("artifact_uri"),
            Some("file:///abs/mlruns/1/abc/artifacts")
        );
        assert_eq!(map.get("end_time"), Some(&Value::Null));
        assert_eq!(map.str("experiment_id"), Some("220977049416482097"));
        assert_eq!(map.i64("experiment_id"), None);
        assert_eq!(map.i64("status"), Some(3));
        assert_eq!(map.str("current_stage"), Some("None"));
        assert_eq!(map.str("description"), Some("it's a long description"));
        assert!(matches!(map.get("aliases"), Some(Value::Nested(_))));
        assert!(matches!(map.get("tags"), Some(Value::Nested(_))));
        assert_eq!(map.str("note"), Some("line1\nline2"));
    }

    #[test]
    fn quoting_round_trips() {
        for value in [
            "None",
            "true",
            "2024-01-01",
            "it's",
            "a: b",
            "multi\nline\t\"x\"",
            "",
            "é ✓",
        ] {
            let text = Writer::new().str("k", value).finish();
            assert_eq!(parse(&text).unwrap().str("k"), Some(value), "{text}");
        }
    }

    #[test]
    fn reports_bad_lines() {
        assert!(parse("  indented: 1\n").unwrap_err().contains("line 1"));
        assert!(parse("k: 'open\n").is_err());
    }
}
