//! Metric values in JSON. JSON has no NaN or infinities, so MLflow writes them as the
//! strings `"NaN"`, `"Infinity"` and `"-Infinity"`; every other value is a number, read
//! exactly (the workspace turns on serde_json's `float_roundtrip`).
//!
//! ```
//! use ratchet_mlflow::MetricValue;
//!
//! assert_eq!(serde_json::to_string(&MetricValue(f64::NEG_INFINITY)).unwrap(), r#""-Infinity""#);
//! let back: MetricValue = serde_json::from_str("0.09090909090909091").unwrap();
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

#[cfg(test)]
mod tests {
    use super::*;

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
