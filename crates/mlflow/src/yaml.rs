//! The YAML of MLflow's file store: one flat mapping per `meta.yaml`.
//!
//! Reading goes through `saphyr-parser`, a YAML 1.2 parser, so every scalar style PyYAML
//! and libyaml write comes back exactly: long quoted strings folded across lines, escapes,
//! tabs, non-ASCII white space. Only the top level is kept; a nested block or flow
//! collection is recorded as present ([`Value::Nested`]). Writing quotes every string so
//! values like `None`, `true` or `2024-01-01` keep their type (spec §1.3), in the two
//! quoting styles MLflow's reader (PyYAML) takes back verbatim.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span};

/// A value of a top-level key.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A plain (unquoted) scalar, as written: may be an integer, a bool, or a string.
    Plain(String),
    /// A quoted or block scalar: always a string.
    Quoted(String),
    /// A nested block or a flow collection (its content is not kept).
    Nested,
}

impl Value {
    /// The value as a string (plain or quoted), `None` for null and nested values.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Plain(s) | Value::Quoted(s) => Some(s),
            Value::Null | Value::Nested => None,
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

/// Parses a document whose root is a mapping (an empty document is an empty mapping).
/// Errors name the 1-based line.
pub fn parse(text: &str) -> Result<Mapping, String> {
    let mut events = Parser::new_from_str(text);
    let mut next = || -> Result<(Event<'_>, Span), String> {
        match events.next() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Err("unexpected end of the document".into()),
        }
    };
    let at = |span: &Span, what: &str| format!("line {}: {what}", span.start.line());
    let mut map = BTreeMap::new();
    let mut documents = 0;
    loop {
        match next()? {
            (Event::StreamStart | Event::DocumentEnd, _) => {}
            (Event::StreamEnd, _) => return Ok(Mapping(map)),
            (Event::DocumentStart(_), span) => {
                documents += 1;
                if documents > 1 {
                    return Err(at(&span, "a second document; a meta file holds one"));
                }
            }
            (Event::MappingStart(..), _) => loop {
                let key = match next()? {
                    (Event::MappingEnd, _) => break,
                    (Event::Scalar(key, ..), _) => key.into_owned(),
                    (_, span) => return Err(at(&span, "expected a plain `key: value` line")),
                };
                let value = match next()? {
                    (Event::Scalar(text, style, ..), _) => scalar(text.into_owned(), style),
                    (Event::MappingStart(..) | Event::SequenceStart(..), _) => {
                        skip_collection(&mut next)?;
                        Value::Nested
                    }
                    (_, span) => {
                        return Err(at(&span, "anchors and aliases are not used in meta files"));
                    }
                };
                map.insert(key, value);
            },
            (_, span) => return Err(at(&span, "expected `key: value` lines")),
        }
    }
}

fn scalar(text: String, style: ScalarStyle) -> Value {
    match style {
        ScalarStyle::Plain if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") => {
            Value::Null
        }
        ScalarStyle::Plain => Value::Plain(text),
        _ => Value::Quoted(text),
    }
}

/// Consumes events up to the end of the collection just opened.
fn skip_collection<'a>(
    next: &mut impl FnMut() -> Result<(Event<'a>, Span), String>,
) -> Result<(), String> {
    let mut depth = 1;
    while depth > 0 {
        match next()?.0 {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth -= 1,
            _ => {}
        }
    }
    Ok(())
}

fn scan_error(e: &ScanError) -> String {
    format!(
        "line {}, column {}: {}",
        e.marker().line(),
        e.marker().col() + 1,
        e.info()
    )
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
        assert_eq!(map.get("aliases"), Some(&Value::Nested));
        assert_eq!(map.get("tags"), Some(&Value::Nested));
        assert_eq!(map.str("note"), Some("line1\nline2"));
        assert_eq!(map.0.len(), 11);
    }

    #[test]
    fn folded_scalars_keep_every_character() {
        // PyYAML's own emitter ends a folded double-quoted line with an escaped line break
        // and escapes the space that follows it.
        let pyyaml = parse("k: \"two  spaces\\\n  \\ end\"\n").unwrap();
        assert_eq!(pyyaml.str("k"), Some("two  spaces end"));
        // YAML white space is space and tab only: U+00A0 ending a line and U+3000 starting
        // the next are content.
        let unicode = parse("k: 'ab\u{a0}\n  \u{3000}cd'\n").unwrap();
        assert_eq!(unicode.str("k"), Some("ab\u{a0} \u{3000}cd"));
        let tab = parse("k: \"a\\tb\"\n").unwrap();
        assert_eq!(tab.str("k"), Some("a\tb"));
    }

    #[test]
    fn block_scalars_indented_with_unicode_spaces() {
        // Measuring indentation with a Unicode-aware trim and slicing bytes used to panic
        // here (inside U+3000's three bytes).
        let map = parse("k: |\n  \u{3000}x\n   y\n").unwrap();
        assert_eq!(map.str("k"), Some("\u{3000}x\n y\n"));
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
            "\u{a0}lead and trail\u{3000}",
        ] {
            let text = Writer::new().str("k", value).finish();
            assert_eq!(parse(&text).unwrap().str("k"), Some(value), "{text}");
        }
    }

    #[test]
    fn reports_bad_lines() {
        assert_eq!(parse("").unwrap(), Mapping::default());
        let unterminated = parse("a: 1\nk: 'open\n").unwrap_err();
        assert!(unterminated.starts_with("line 2"), "{unterminated}");
        let not_a_mapping = parse("- a\n").unwrap_err();
        assert_eq!(not_a_mapping, "line 1: expected `key: value` lines");
        let two = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(two, "line 2: a second document; a meta file holds one");
    }
}
