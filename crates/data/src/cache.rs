//! A directory of materialised feature frames, keyed by feature-config hash and data hash.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::config::{FEATURE_SCHEMA_VERSION, FeatureConfig};
use crate::features::{FeatureFrame, compute_features};
use crate::{Bars, DataError};

const TIMESTAMP_COLUMN: &str = "timestamp";
const KEY_FEATURE_HASH: &str = "ratchet.feature_hash";
const KEY_DATA_SHA256: &str = "ratchet.data_sha256";
const KEY_SCHEMA_VERSION: &str = "ratchet.feature_schema_version";
const KEY_FIRST_BAR: &str = "ratchet.first_bar";
const KEY_CONTENT_SHA256: &str = "ratchet.content_sha256";

/// What [`FeatureCache::load_or_compute`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Read from the cache file.
    Hit,
    /// No cache file: computed and stored.
    Miss,
    /// A cache file existed but could not be trusted (unreadable, truncated, checksum or shape
    /// mismatch): computed again and the file replaced. `reason` says what was wrong.
    Recomputed { reason: String },
    /// Computed without the cache: the features read outside sources (or every symbol of a
    /// universe), which the cache's key does not cover.
    Uncached,
}

impl std::fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheOutcome::Hit => f.write_str("cache hit"),
            CacheOutcome::Miss => f.write_str("cache miss (computed and stored)"),
            CacheOutcome::Recomputed { reason } => {
                write!(f, "cache file rejected ({reason}); recomputed")
            }
            CacheOutcome::Uncached => f.write_str("computed, not cached"),
        }
    }
}

/// Feature frames stored as Parquet files in one directory, one file per (feature-config hash,
/// data sha256). A file also carries, in its Parquet key-value metadata, the keys it was made for,
/// the feature schema version, the warm-up and a SHA-256 of its content, so a damaged or foreign
/// file is recomputed rather than trusted. Files are written to a temporary name and renamed into
/// place, so readers (and concurrent writers) never see a partial file.
///
/// ```
/// use ratchet_data::{load_bars, CacheOutcome, FeatureCache, FeatureConfig, LoadOptions};
/// let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/STOCKS_GOOGL.csv");
/// let loaded = load_bars(&data, &LoadOptions::default())?;
/// let dir = tempfile::tempdir().unwrap();
/// let cache = FeatureCache::new(dir.path());
/// let cfg = FeatureConfig::default();
/// let (first, outcome) = cache.load_or_compute(&loaded.bars, &loaded.sha256, &cfg)?;
/// assert_eq!(outcome, CacheOutcome::Miss);
/// let (second, outcome) = cache.load_or_compute(&loaded.bars, &loaded.sha256, &cfg)?;
/// assert_eq!(outcome, CacheOutcome::Hit);
/// assert_eq!(first, second);
/// # Ok::<(), ratchet_data::DataError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureCache {
    dir: PathBuf,
}

impl FeatureCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FeatureCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds the features of `cfg` over the data with this sha256.
    pub fn path_for(&self, cfg: &FeatureConfig, data_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("features-{}-{}.parquet", cfg.hash(), data_sha256))
    }

    /// Reads the features of `cfg` over `bars` from the cache, or computes and stores them.
    ///
    /// `data_sha256` identifies the data the bars were loaded from ([`LoadedBars::sha256`](crate::LoadedBars));
    /// it must be 64 hex characters. A cached file is only used when its recorded keys, names,
    /// warm-up, row count, timestamps (against `bars`) and content checksum all match.
    pub fn load_or_compute(
        &self,
        bars: &Bars,
        data_sha256: &str,
        cfg: &FeatureConfig,
    ) -> Result<(FeatureFrame, CacheOutcome), DataError> {
        if data_sha256.len() != 64 || !data_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DataError::Cache {
                path: self.dir.clone(),
                message: format!(
                    "data_sha256 {data_sha256:?} is not a SHA-256 hex digest; pass LoadedBars::sha256"
                ),
            });
        }
        let data_sha256 = data_sha256.to_ascii_lowercase();
        cfg.validate()?;
        let path = self.path_for(cfg, &data_sha256);
        let outcome = match File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheOutcome::Miss,
            Err(e) => CacheOutcome::Recomputed {
                reason: format!("cannot open: {e}"),
            },
            Ok(file) => match read_frame(file, bars, &data_sha256, cfg) {
                Ok(frame) => return Ok((frame, CacheOutcome::Hit)),
                Err(reason) => CacheOutcome::Recomputed { reason },
            },
        };
        let frame = compute_features(bars, cfg)?;
        write_frame(&path, &frame, &data_sha256, cfg).map_err(|message| DataError::Cache {
            path: path.clone(),
            message: format!(
                "{message}; check that the cache directory is writable, or use another one"
            ),
        })?;
        Ok((frame, outcome))
    }
}

/// SHA-256 over the frame's timestamps and values, little-endian.
fn content_sha256(timestamps: &[i64], values: &[f32]) -> String {
    let mut hasher = Sha256::new();
    let mut buf = Vec::with_capacity(1 << 16);
    for t in timestamps {
        buf.extend_from_slice(&t.to_le_bytes());
    }
    hasher.update(&buf);
    for chunk in values.chunks(1 << 14) {
        buf.clear();
        for v in chunk {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        hasher.update(&buf);
    }
    hex::encode(hasher.finalize())
}

fn read_frame(
    file: File,
    bars: &Bars,
    data_sha256: &str,
    cfg: &FeatureConfig,
) -> Result<FeatureFrame, String> {
    let unreadable = |e: PolarsError| {
        format!(
            "unreadable Parquet: {}",
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let mut reader = ParquetReader::new(file);
    let metadata: Vec<(String, String)> = reader
        .get_metadata()
        .map_err(unreadable)?
        .key_value_metadata()
        .iter()
        .flatten()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
        .collect();
    let meta = |key: &str| -> Result<&str, String> {
        metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("metadata {key} missing"))
    };
    let expect = |key: &str, want: &str| -> Result<(), String> {
        let got = meta(key)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("metadata {key} is {got:?}, expected {want:?}"))
        }
    };
    let first_bar = cfg.warm_up();
    expect(KEY_FEATURE_HASH, &cfg.hash())?;
    expect(KEY_DATA_SHA256, data_sha256)?;
    expect(KEY_SCHEMA_VERSION, FEATURE_SCHEMA_VERSION)?;
    expect(KEY_FIRST_BAR, &first_bar.to_string())?;
    let checksum = meta(KEY_CONTENT_SHA256)?.to_string();

    let df = reader.finish().map_err(unreadable)?;
    let names = cfg.column_names();
    let stored: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let expected: Vec<String> = std::iter::once(TIMESTAMP_COLUMN.to_string())
        .chain(names.iter().cloned())
        .collect();
    if stored != expected {
        return Err(format!(
            "columns {stored:?} differ from the config's {expected:?}"
        ));
    }
    let rows = bars.len().saturating_sub(first_bar);
    if df.height() != rows {
        return Err(format!(
            "{} rows stored, {rows} expected for these bars",
            df.height()
        ));
    }
    let timestamps: Vec<i64> = df
        .column(TIMESTAMP_COLUMN)
        .and_then(|c| c.i64().cloned())
        .map_err(unreadable)?
        .iter()
        .collect::<Option<Vec<_>>>()
        .ok_or("null timestamp")?;
    if timestamps[..] != bars.timestamps[first_bar.min(bars.len())..] {
        return Err("timestamps differ from the bars'".to_string());
    }
    let width = names.len();
    let mut values = vec![0f32; rows * width];
    for (c, name) in names.iter().enumerate() {
        let col = df
            .column(name)
            .and_then(|c| c.f32().cloned())
            .map_err(unreadable)?;
        for (r, v) in col.iter().enumerate() {
            values[r * width + c] = v.ok_or_else(|| format!("null value in column {name}"))?;
        }
    }
    if content_sha256(&timestamps, &values) != checksum {
        return Err("content checksum mismatch".to_string());
    }
    Ok(FeatureFrame {
        names,
        values,
        first_bar,
        timestamps,
    })
}

/// Writes the frame to a temporary file in the cache directory, syncs it and renames it into place.
fn write_frame(
    path: &Path,
    frame: &FeatureFrame,
    data_sha256: &str,
    cfg: &FeatureConfig,
) -> Result<(), String> {
    let dir = path.parent().expect("cache paths have a directory");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory: {e}"))?;

    let rows = frame.rows();
    let mut columns = Vec::with_capacity(frame.width() + 1);
    columns.push(Column::new(
        TIMESTAMP_COLUMN.into(),
        frame.timestamps.clone(),
    ));
    for (c, name) in frame.names.iter().enumerate() {
        let values: Vec<f32> = frame
            .values
            .iter()
            .skip(c)
            .step_by(frame.width())
            .copied()
            .collect();
        columns.push(Column::new(name.as_str().into(), values));
    }
    let mut df = DataFrame::new(rows, columns).map_err(|e| e.to_string())?;
    let metadata = KeyValueMetadata::from_static(vec![
        (KEY_FEATURE_HASH.to_string(), cfg.hash()),
        (KEY_DATA_SHA256.to_string(), data_sha256.to_string()),
        (
            KEY_SCHEMA_VERSION.to_string(),
            FEATURE_SCHEMA_VERSION.to_string(),
        ),
        (KEY_FIRST_BAR.to_string(), frame.first_bar.to_string()),
        (
            KEY_CONTENT_SHA256.to_string(),
            content_sha256(&frame.timestamps, &frame.values),
        ),
    ]);

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        path.file_name()
            .expect("cache paths have a file name")
            .to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file =
            File::create(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        ParquetWriter::new(&mut file)
            .with_key_value_metadata(Some(metadata))
            .finish(&mut df)
            .map_err(|e| format!("cannot write Parquet: {e}"))?;
        file.flush()
            .and_then(|_| file.sync_all())
            .map_err(|e| format!("cannot write: {e}"))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot move the new file into place: {e}"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
