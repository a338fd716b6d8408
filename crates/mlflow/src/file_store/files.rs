//! Reading and writing the file store's plain files: key files (`tags/`, `params/`,
//! `metrics/`), metric history lines, directory listings and atomic copies.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::store::Metric;
use ratchet_fsutil as fsutil;

/// Copies `from` (file or directory) to `to` through a temp in `temp_dir`, so `to` appears
/// complete or not at all. Fails if `to` is an existing non-empty directory.
pub(super) fn place_copy(from: &Path, to: &Path, temp_dir: &Path) -> Result<()> {
    let temp = fsutil::temp_path(temp_dir, "upload");
    let copied = (|| -> Result<()> {
        fsutil::copy_tree(from, &temp, true)?;
        if let Some(parent) = to.parent() {
            fsutil::create_dir_all(parent)?;
        }
        fs::rename(&temp, to).map_err(|e| Error::io(to, e))
    })();
    if copied.is_err() {
        let _ = fsutil::remove_tree(&temp);
    }
    copied
}

/// Names in a directory (empty when it does not exist), sorted.
pub(super) fn list_dir_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        match entry.file_name().into_string() {
            Ok(name) => names.push(name),
            Err(raw) => {
                return Err(Error::corrupt(
                    dir.join(&raw),
                    "file name is not valid UTF-8; MLflow stores need UTF-8 names",
                ));
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Reads a `tags/`, `params/` or `metrics/` directory: every file below it is one key (the
/// path relative to the directory, `/`-joined) whose content is the value.
pub(super) fn read_key_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in fsutil::walk(dir)?.into_iter().filter(|e| !e.is_dir) {
        let value = fsutil::read_optional(&entry.path)?.unwrap_or_default();
        out.insert(entry.relative, value);
    }
    Ok(out)
}

pub(super) fn read_metric_file(path: &Path, key: &str) -> Result<Vec<Metric>> {
    let text = fsutil::read_optional(path)?.unwrap_or_default();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        let fields: Vec<&str> = line.split(' ').collect();
        let bad = |what: &str| Error::corrupt(path, format!("line {}: {what}: {line:?}", i + 1));
        let (timestamp, value, step) = match fields.as_slice() {
            [ts, value] => (*ts, *value, "0"),
            [ts, value, step] | [ts, value, step, _, _] => (*ts, *value, *step),
            _ => return Err(bad("expected `timestamp value step`")),
        };
        out.push(Metric {
            key: key.to_string(),
            timestamp: timestamp
                .parse()
                .map_err(|_| bad("timestamp is not an integer"))?,
            value: parse_python_float(value).ok_or_else(|| bad("value is not a number"))?,
            step: step.parse().map_err(|_| bad("step is not an integer"))?,
        });
    }
    Ok(out)
}

fn parse_python_float(text: &str) -> Option<f64> {
    text.parse::<f64>().ok()
}

pub(super) fn check_value_len(kind: &str, key: &str, value: &str, max: usize) -> Result<()> {
    let len = value.chars().count();
    if len > max {
        return Err(Error::InvalidArgument(format!(
            "{kind} {key:?} is {len} characters long; MLflow's limit is {max}"
        )));
    }
    Ok(())
}

/// Writes tag `key` of the object in `dir` (`dir/tags/key`, replaced atomically; not fsynced:
/// a tag lost to a power cut leaves the older value).
pub(super) fn write_tag(dir: &Path, key: &str, value: &str) -> Result<()> {
    Ok(fsutil::write_atomic(
        &dir.join("tags").join(key),
        value.as_bytes(),
        dir,
        false,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_lines_parse_like_python() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss");
        fs::write(
            &path,
            "1 1.0 0\n2 NaN 1\n3 inf -2\n4 1e-7\n5 -inf 3 ds digest\n",
        )
        .unwrap();
        let points = read_metric_file(&path, "loss").unwrap();
        assert_eq!(points.len(), 5);
        assert!(points[1].value.is_nan());
        assert_eq!(points[2].value, f64::INFINITY);
        assert_eq!(points[2].step, -2);
        assert_eq!(points[3].step, 0);
        fs::write(&path, "1  1.0 0\n").unwrap();
        assert!(
            read_metric_file(&path, "loss")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
