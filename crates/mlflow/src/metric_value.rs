//! Metric values in JSON. JSON has no NaN or infinities, so MLflow writes them as the
//! strings `"NaN"`, `"Infinity"` and `"-Infinity"`; every other value is a number. Read
//! exactly: an answer from a server goes through [`quote_metric_values`] first.
//!
//! ```
//! use ratchet_mlflow::MetricValue;
//!
//! assert_eq!(serde_json::to_string(&MetricValue(f64::NEG_INFINITY)).unwrap(), r#""-Infinity""#);
//! let back: MetricValue = serde_json::from_str("\"0.09090909090909091\"").unwrap();
//! assert_eq!(back.0, 1.0 / 11.0);
//! ```

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An `f64` that serialises as MLflow does (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue(pub f64);

impl Serialize for MetricValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() {
            s.serialize_f64(v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }
}

/// Read with a visitor rather than `#[serde(untagged)]`, which buffers every value
/// (listing parses thousands of these).
impl<'de> Deserialize<'de> for MetricValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NumberOrName;
        impl Visitor<'_> for NumberOrName {
            type Value = MetricValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E>(self, v: f64) -> Result<MetricValue, E> {
                Ok(MetricValue(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<MetricValue, E> {
                Ok(MetricValue(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<MetricValue, E> {
                Ok(MetricValue(v as f64))
            }
            /// MLflow's three names, and (leniently) a number sent as text; Rust's parser
            /// reads "NaN", "Infinity" and "-Infinity" as MLflow means them.
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MetricValue, E> {
                v.parse()
                    .map(MetricValue)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(NumberOrName)
    }
}

/// Turns every number that is the value of a `"value"` key into a string, so metric values
/// reach [`MetricValue`] as text and are parsed by Rust's correctly rounded `str::parse`.
/// serde_json's default number parser is an ulp off for about one 17-digit decimal in five
/// (measured: 1.2M of 6M); its `float_roundtrip` feature parses all 6M exactly, but turning
/// it on rebuilds every crate that uses serde_json (Burn, CubeCL, polars among them). Only
/// metric values are numbers under that key in MLflow's answers (tag and param values are
/// strings), and strings are copied untouched.
pub(crate) fn quote_metric_values(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 16);
    let mut i = 0;
    let mut key_is_value = false; // the last string was `"value"`
    let mut number_expected = false; // ... and a ':' followed it
    while i < json.len() {
        match json[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(json.len());
                out.extend_from_slice(&json[start..i]);
                key_is_value = &json[start..i] == b"\"value\"";
                number_expected = false;
            }
            b':' => {
                out.push(b':');
                number_expected = key_is_value;
                key_is_value = false;
                i += 1;
            }
            b'-' | b'0'..=b'9' if number_expected => {
                let start = i;
                while i < json.len()
                    && matches!(json[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                out.push(b'"');
                out.extend_from_slice(&json[start..i]);
                out.push(b'"');
                number_expected = false;
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                out.push(json[i]);
                i += 1;
            }
            other => {
                out.push(other);
                key_is_value = false;
                number_expected = false;
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_answers_keep_every_bit() {
        let body =
            br#"{"metrics": [{"key": "value", "value" : 0.09090909090909091, "timestamp": 17},
            {"key": "x\"value\"", "value": -1.5e-7}], "tags": [{"key": "value", "value": "3.0"}]}"#;
        let quoted: serde_json::Value = serde_json::from_slice(&quote_metric_values(body)).unwrap();
        assert_eq!(quoted["metrics"][0]["value"], "0.09090909090909091");
        assert_eq!(quoted["metrics"][0]["key"], "value");
        assert_eq!(quoted["metrics"][0]["timestamp"], 17);
        assert_eq!(quoted["metrics"][1]["key"], "x\"value\"");
        assert_eq!(quoted["metrics"][1]["value"], "-1.5e-7");
        assert_eq!(quoted["tags"][0]["value"], "3.0");
        let value: MetricValue =
            serde_json::from_value(quoted["metrics"][0]["value"].clone()).unwrap();
        assert_eq!(value.0.to_bits(), (1.0f64 / 11.0).to_bits());
    }

    #[test]
    fn non_finite_values_use_mlflow_names() {
        let text = serde_json::to_string(&[
            MetricValue(f64::NAN),
            MetricValue(f64::INFINITY),
            MetricValue(f64::NEG_INFINITY),
            MetricValue(-0.5),
        ])
        .unwrap();
        assert_eq!(text, r#"["NaN","Infinity","-Infinity",-0.5]"#);
        let back: Vec<MetricValue> = serde_json::from_str(&text).unwrap();
        assert!(back[0].0.is_nan());
        assert_eq!(
            back[1..],
            [
                MetricValue(f64::INFINITY),
                MetricValue(f64::NEG_INFINITY),
                MetricValue(-0.5)
            ]
        );
        assert!(serde_json::from_str::<MetricValue>(r#""many""#).is_err());
    }
}
