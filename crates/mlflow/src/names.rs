//! Validation of every name, key and id that becomes a path or a URI component.
//!
//! The rules are MLflow's (so MLflow accepts what we write) plus what keeps the local store
//! safe: no path separators where a name is one directory, no `.`/`..` components, no
//! control characters, bounded length.

use crate::error::{Error, Result};

/// Longest registered-model or experiment name accepted (one directory name; most
/// filesystems allow 255 bytes, and `version-N`/temp names must still fit beside it).
pub const MAX_NAME_BYTES: usize = 200;
/// Longest metric/param/tag key MLflow accepts.
pub const MAX_KEY_CHARS: usize = 250;
/// Longest alias MLflow accepts.
pub const MAX_ALIAS_CHARS: usize = 255;

fn invalid(kind: &'static str, value: &str, reason: impl Into<String>) -> Error {
    Error::InvalidName {
        kind,
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn check_common(kind: &'static str, value: &str, max_bytes: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(invalid(kind, value, "must not be empty or blank"));
    }
    if value.len() > max_bytes {
        return Err(invalid(
            kind,
            value,
            format!("is {} bytes long; the limit is {max_bytes}", value.len()),
        ));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(invalid(
            kind,
            value,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

/// A registered model name: one directory under `models/`. MLflow forbids `/`, `:` and `%`;
/// we also forbid `\`, leading/trailing spaces and names starting with `.`.
pub fn validate_model_name(name: &str) -> Result<()> {
    const KIND: &str = "model name";
    check_common(KIND, name, MAX_NAME_BYTES)?;
    if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\' | ':' | '%')) {
        return Err(invalid(
            KIND,
            name,
            format!("must not contain {c:?} (path separators, ':' and '%' are not allowed)"),
        ));
    }
    if name.starts_with('.') {
        return Err(invalid(
            KIND,
            name,
            "must not start with '.' (hidden or `..`)",
        ));
    }
    if name != name.trim() {
        return Err(invalid(KIND, name, "must not start or end with whitespace"));
    }
    Ok(())
}

/// An experiment name (stored inside `meta.yaml`, not as a path, but shown everywhere).
pub fn validate_experiment_name(name: &str) -> Result<()> {
    check_common("experiment name", name, 500)
}

/// A metric, param or tag key, following MLflow's rules: letters, digits, `_`, `-`, `.`,
/// space, `/` and `:`; `/` makes sub-directories so the key must be a normalised relative
/// path (no leading/trailing/double `/`, no `.`/`..` components).
pub fn validate_key(kind: &'static str, key: &str) -> Result<()> {
    check_common(kind, key, MAX_KEY_CHARS * 4)?;
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(invalid(
            kind,
            key,
            format!("is longer than MLflow's limit of {MAX_KEY_CHARS} characters"),
        ));
    }
    if let Some(c) = key
        .chars()
        .find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':')))
    {
        return Err(invalid(
            kind,
            key,
            format!(
                "contains {c:?}; keys may only contain letters, digits, '_', '-', '.', ' ', ':' and '/'"
            ),
        ));
    }
    for component in key.split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(invalid(
                kind,
                key,
                "must be a normalised relative path (no leading, trailing or doubled '/', no '.' or '..')",
            ));
        }
    }
    Ok(())
}

/// An alias: letters, digits, `_` and `-`, at most 255 characters, not `latest` and not
/// `v<digits>` (MLflow reserves both).
pub fn validate_alias(alias: &str) -> Result<()> {
    const KIND: &str = "alias";
    check_common(KIND, alias, MAX_ALIAS_CHARS)?;
    if let Some(c) = alias
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(invalid(
            KIND,
            alias,
            format!("contains {c:?}; aliases may only contain ASCII letters, digits, '_' and '-'"),
        ));
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Err(invalid(KIND, alias, "'latest' is reserved by MLflow"));
    }
    let mut chars = alias.chars();
    if matches!(chars.next(), Some('v' | 'V'))
        && chars.clone().count() > 0
        && chars.all(|c| c.is_ascii_digit())
    {
        return Err(invalid(
            KIND,
            alias,
            "'v<number>' aliases are reserved by MLflow",
        ));
    }
    Ok(())
}

/// A run or experiment id as it appears in directory names: `[A-Za-z0-9][A-Za-z0-9_-]*`.
pub fn validate_id(kind: &'static str, id: &str) -> Result<()> {
    check_common(kind, id, 256)?;
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid(
            kind,
            id,
            "must start with a letter or digit and contain only letters, digits, '_' and '-'",
        ));
    }
    Ok(())
}

/// A relative artifact path (`checkpoints/v1`, `""` for the root): `/`-separated, no `..`,
/// no `.` components, no backslashes, no control characters.
pub fn validate_artifact_path(path: &str) -> Result<()> {
    const KIND: &str = "artifact path";
    if path.is_empty() {
        return Ok(());
    }
    check_common(KIND, path, 1024)?;
    if path.contains('\\') {
        return Err(invalid(KIND, path, "must use '/' as separator, not '\\'"));
    }
    if path.starts_with('/') {
        return Err(invalid(KIND, path, "must be relative (no leading '/')"));
    }
    for component in path.trim_end_matches('/').split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(invalid(
                KIND,
                path,
                "must not contain empty, '.' or '..' components",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names() {
        assert!(validate_model_name("ppo-googl_v2 daily").is_ok());
        for bad in [
            "",
            "  ",
            "a/b",
            "a\\b",
            "..",
            ".hidden",
            "a:b",
            "50%",
            "tab\there",
            " padded",
        ] {
            assert!(validate_model_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_model_name(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn keys() {
        assert!(validate_key("param key", "opt/lr").is_ok());
        assert!(validate_key("param key", "été:1 x.y-z").is_ok());
        for bad in ["a@b", "/a", "a/", "a//b", "a/../b", "./a", "a\nb", ""] {
            assert!(validate_key("param key", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn aliases() {
        assert!(validate_alias("production").is_ok());
        assert!(validate_alias("v2-candidate").is_ok());
        assert!(validate_alias("v").is_ok());
        for bad in ["latest", "LATEST", "v3", "V10", "a b", "a/b", "é"] {
            assert!(validate_alias(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn artifact_paths() {
        assert!(validate_artifact_path("").is_ok());
        assert!(validate_artifact_path("checkpoints/v1").is_ok());
        for bad in ["../x", "a/../b", "/abs", "a\\b", "a//b"] {
            assert!(validate_artifact_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
