//! Serde helpers that write `f64` state as text (`"0.1"`, `"-0.0"`, `"1e300"`, `"NaN"`), Rust's
//! shortest form that parses back to the same bits. A [`FeatureStream`](crate::FeatureStream)
//! snapshot then restores exactly in any serde format: serde_json's default number parser can be
//! one unit in the last place off for 17-digit numbers, and JSON has no NaN.
//!
//! Use with `#[serde(with = "crate::exact_f64")]` on an `f64` field, or
//! `#[serde(with = "crate::exact_f64::deque")]` on a `VecDeque<f64>` or a `Vec<f64>`.

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::Serializer;

pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{value:?}"))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    parse(&String::deserialize(deserializer)?)
}

fn parse<E: de::Error>(text: &str) -> Result<f64, E> {
    text.parse()
        .map_err(|_| E::custom(format!("{text:?} is not a number")))
}

/// For a sequence of `f64`: a `VecDeque<f64>` or a `Vec<f64>`.
pub(crate) mod deque {
    use serde::de::{Deserialize, Deserializer};
    use serde::ser::Serializer;

    pub(crate) fn serialize<'a, C, S: Serializer>(
        values: &'a C,
        serializer: S,
    ) -> Result<S::Ok, S::Error>
    where
        &'a C: IntoIterator<Item = &'a f64>,
    {
        serializer.collect_seq(values.into_iter().map(|v| format!("{v:?}")))
    }

    pub(crate) fn deserialize<'de, C: FromIterator<f64>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<C, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| super::parse(text))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Value(#[serde(with = "super")] f64);

    #[test]
    fn round_trips_every_bit_pattern_in_json() {
        // 17 significant digits, subnormals, extremes, signed zeros and non-finite values.
        let values = [
            0.1 + 0.2,
            1.0 / 3.0,
            -0.0,
            0.0,
            f64::MIN_POSITIVE / 3.0,
            f64::MAX,
            -1e300,
            2.0f64.sqrt() * 1e3,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for v in values {
            let json = serde_json::to_string(&Value(v)).unwrap();
            let back: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back.0.to_bits(), v.to_bits(), "{json}");
        }
        let nan: Value = serde_json::from_str("\"NaN\"").unwrap();
        assert!(nan.0.is_nan());
        assert_eq!(serde_json::to_string(&Value(0.1)).unwrap(), "\"0.1\"");
        let err = serde_json::from_str::<Value>("\"ten\"").unwrap_err();
        assert!(
            err.to_string().starts_with("\"ten\" is not a number"),
            "{err}"
        );
    }
}
