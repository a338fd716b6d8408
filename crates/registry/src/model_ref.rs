//! [`ModelRef`]: a parsed `models:/` URI naming one version of a registered model.

use std::fmt;
use std::str::FromStr;

use ratchet_mlflow::names;

use crate::error::{RegistryError, Result};
use crate::model_version::is_human_id;

/// Which version of a model a reference means.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionSelector {
    /// MLflow's version number: `models:/NAME/3`.
    Number(u64),
    /// Ratchet's human id: `models:/NAME/v2026-11-22--14h05`.
    HumanId(String),
    /// An alias: `models:/NAME@production`.
    Alias(String),
    /// The highest live version number: `models:/NAME/latest`.
    Latest,
}

/// A parsed `models:/` URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    pub name: String,
    pub selector: VersionSelector,
}

impl ModelRef {
    /// Parses `models:/NAME/3`, `models:/NAME/v2026-11-22--14h05`, `models:/NAME@ALIAS` or
    /// `models:/NAME/latest`.
    pub fn parse(uri: &str) -> Result<Self> {
        let usage = "expected models:/NAME/VERSION (a number or an id like \
                     v2026-11-22--14h05), models:/NAME@ALIAS or models:/NAME/latest";
        let bad = |why: &str| {
            RegistryError::InvalidArgument(format!("model URI {uri:?}: {why}; {usage}"))
        };
        let rest = uri
            .trim()
            .strip_prefix("models:/")
            .ok_or_else(|| bad("it does not start with models:/"))?;
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        if let Some((name, alias)) = rest.rsplit_once('@') {
            names::validate_model_name(name)?;
            names::validate_alias(alias)?;
            return Ok(ModelRef {
                name: name.to_string(),
                selector: VersionSelector::Alias(alias.to_string()),
            });
        }
        let (name, version) = rest
            .rsplit_once('/')
            .ok_or_else(|| bad("no version or alias given"))?;
        names::validate_model_name(name)?;
        let selector = if version.eq_ignore_ascii_case("latest") {
            VersionSelector::Latest
        } else if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
            let number = version
                .parse::<u64>()
                .map_err(|_| bad("version number is too large"))?;
            if number == 0 {
                return Err(bad("version numbers start at 1"));
            }
            VersionSelector::Number(number)
        } else if is_human_id(version) {
            VersionSelector::HumanId(version.to_string())
        } else {
            return Err(bad(&format!(
                "{version:?} is neither a version number nor a version id"
            )));
        };
        Ok(ModelRef {
            name: name.to_string(),
            selector,
        })
    }

    /// A reference to a version number.
    pub fn number(name: &str, version: u64) -> Self {
        ModelRef {
            name: name.to_string(),
            selector: VersionSelector::Number(version),
        }
    }
}

impl FromStr for ModelRef {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self> {
        ModelRef::parse(text)
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            VersionSelector::Number(n) => write!(f, "models:/{}/{n}", self.name),
            VersionSelector::HumanId(id) => write!(f, "models:/{}/{id}", self.name),
            VersionSelector::Alias(alias) => write!(f, "models:/{}@{alias}", self.name),
            VersionSelector::Latest => write!(f, "models:/{}/latest", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_uris() {
        assert_eq!(
            ModelRef::parse("models:/m/3").unwrap(),
            ModelRef::number("m", 3)
        );
        assert_eq!(
            ModelRef::parse("models:/googl-ppo/v2026-11-22--14h05-2")
                .unwrap()
                .selector,
            VersionSelector::HumanId("v2026-11-22--14h05-2".into())
        );
        assert_eq!(
            ModelRef::parse("models:/m@production").unwrap().selector,
            VersionSelector::Alias("production".into())
        );
        assert_eq!(
            ModelRef::parse("models:/m/latest").unwrap().selector,
            VersionSelector::Latest
        );
        for uri in [
            "m/3",
            "models:/m",
            "models:/m/0",
            "models:/m/abc",
            "models:/../x/1",
            "models:/m@latest",
            "models:/a/b/1",
        ] {
            assert!(ModelRef::parse(uri).is_err(), "{uri} accepted");
        }
        let err = ModelRef::parse("models:/m/abc").unwrap_err().to_string();
        assert!(err.contains("models:/NAME@ALIAS"), "{err}");
        for uri in [
            "models:/m/3",
            "models:/m@prod",
            "models:/m/v2026-11-22--14h05",
        ] {
            assert_eq!(ModelRef::parse(uri).unwrap().to_string(), uri);
        }
    }
}
