//! The file store's registered models and versions: reading and writing their `meta.yaml`,
//! the per-model lock and generation counter, and the version-listing cache.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::files::{check_value_len, list_dir_names, read_key_files};
use super::version_cache::{self, Decoded};
use super::{
    FileStore, GENERATION, MAX_REGISTRY_TAG_VALUE, META, META_LOCK, STAGE_DELETED, VERSION_CACHE,
};
use crate::error::{Error, Result};
use crate::store::{RegisteredModel, StoredVersion, now_ms};
use crate::yaml;
use ratchet_fsutil as fsutil;

impl FileStore {
    pub(super) fn read_registered_model(&self, dir: &Path) -> Result<Option<RegisteredModel>> {
        let meta_path = dir.join(META);
        let Some(text) = fsutil::read_optional(&meta_path)? else {
            return Ok(None);
        };
        let map = yaml::parse(&text).map_err(|e| Error::corrupt(&meta_path, e))?;
        let name = map
            .str("name")
            .ok_or_else(|| Error::corrupt(&meta_path, "missing field `name`"))?
            .to_string();
        Ok(Some(RegisteredModel {
            creation_timestamp: map.i64("creation_timestamp"),
            last_updated_timestamp: map.i64("last_updated_timestamp"),
            description: map.str("description").map(str::to_string),
            tags: read_key_files(&dir.join("tags"))?,
            aliases: read_aliases(&dir.join("aliases"))?,
            name,
        }))
    }

    pub(super) fn registered_model_meta(model: &RegisteredModel) -> String {
        yaml::Writer::new()
            .opt_int("creation_timestamp", model.creation_timestamp)
            .opt_str("description", model.description.as_deref())
            .opt_int("last_updated_timestamp", model.last_updated_timestamp)
            .str("name", &model.name)
            .finish()
    }

    pub(super) fn existing_model_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.model_dir(name)?;
        if !dir.join(META).is_file() {
            return Err(Error::NotFound(format!("registered model {name:?}")));
        }
        Ok(dir)
    }

    /// Runs `change` on a model under the meta lock, then stamps the model's
    /// `last_updated_timestamp` (as MLflow does on every change).
    ///
    /// The version cache stays correct whatever happens: the generation counter is bumped
    /// before the change (so a writer killed mid-change leaves a cache that no longer
    /// matches and is rebuilt by the next reader) and after it; when the cache was valid
    /// before, only the `affected` version is re-read into it.
    pub(super) fn change_model<T>(
        &self,
        dir: &Path,
        change: impl FnOnce() -> Result<T>,
        affected: impl FnOnce(&T) -> Option<u64>,
    ) -> Result<T> {
        let _lock = fsutil::lock_file(&dir.join(META_LOCK))?;
        let cache = Self::valid_cache(dir)?;
        self.bump_generation(dir)?;
        let result = change();
        // Stamp and bump even on failure: part of the change may have landed.
        let stamped = self.touch_model(dir);
        self.bump_generation(dir)?;
        let value = result?;
        stamped?;
        if let Some(mut cache) = cache {
            if let Some(number) = affected(&value) {
                cache.versions.retain(|v| v.version != number);
                if let Some((stored, false)) = self.read_version(dir, number)? {
                    let at = cache.versions.partition_point(|v| v.version < number);
                    cache.versions.insert(at, stored);
                }
            }
            cache.token = Self::cache_token(dir)?;
            Self::write_cache(dir, &cache);
        }
        Ok(value)
    }

    /// The version cache if it describes the model as it is now.
    pub(super) fn valid_cache(dir: &Path) -> Result<Option<VersionCache>> {
        let (token, bytes) = Self::read_cache(dir)?;
        Ok(bytes
            .as_deref()
            .and_then(Decoded::decode)
            .filter(|c| c.token == token)
            .map(|c| VersionCache {
                versions: c.into_versions(),
                token,
            }))
    }

    /// The current cache token and the cache file's bytes, if any (valid when they decode
    /// and carry that token).
    pub(super) fn read_cache(dir: &Path) -> Result<(String, Option<Vec<u8>>)> {
        let token = Self::cache_token(dir)?;
        Ok((token, fs::read(dir.join(VERSION_CACHE)).ok()))
    }

    pub(super) fn write_cache(dir: &Path, cache: &VersionCache) {
        let bytes = version_cache::encode(&cache.token, &cache.versions);
        // A cache that cannot be written only costs speed.
        let _ = fsutil::write_atomic(&dir.join(VERSION_CACHE), &bytes, dir, false);
    }

    /// Called with the meta lock held.
    pub(super) fn bump_generation(&self, dir: &Path) -> Result<()> {
        let path = dir.join(GENERATION);
        let current: u64 = fsutil::read_optional(&path)?
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Ok(fsutil::write_atomic(
            &path,
            (current + 1).to_string().as_bytes(),
            dir,
            false,
        )?)
    }

    /// Called with the meta lock held.
    pub(super) fn touch_model(&self, dir: &Path) -> Result<()> {
        let Some(mut model) = self.read_registered_model(dir)? else {
            return Err(Error::NotFound(format!(
                "registered model at {}",
                dir.display()
            )));
        };
        model.last_updated_timestamp = Some(now_ms());
        let meta = Self::registered_model_meta(&model);
        // Not fsynced: a timestamp lost to a power cut leaves the older, valid file.
        Ok(fsutil::write_atomic(
            &dir.join(META),
            meta.as_bytes(),
            dir,
            false,
        )?)
    }

    pub(super) fn version_dir(model_dir: &Path, version: u64) -> PathBuf {
        model_dir.join(format!("version-{version}"))
    }

    /// Version numbers of every `version-N` directory, deleted ones included (numbers are
    /// never reused).
    pub(super) fn version_numbers(model_dir: &Path) -> Result<Vec<u64>> {
        let mut numbers: Vec<u64> = list_dir_names(model_dir)?
            .iter()
            .filter_map(|n| n.strip_prefix("version-")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Reads a version; `None` when its directory or `meta.yaml` is missing. Deleted
    /// versions are returned with `status == "Deleted_Internal"` marked in `stage`.
    pub(super) fn read_version(
        &self,
        model_dir: &Path,
        version: u64,
    ) -> Result<Option<(StoredVersion, bool)>> {
        let dir = Self::version_dir(model_dir, version);
        let meta_path = dir.join(META);
        let Some(text) = fsutil::read_optional(&meta_path)? else {
            return Ok(None);
        };
        let map = yaml::parse(&text).map_err(|e| Error::corrupt(&meta_path, e))?;
        let missing = |key: &str| Error::corrupt(&meta_path, format!("missing field `{key}`"));
        let recorded = map.i64("version").ok_or_else(|| missing("version"))?;
        if recorded != version as i64 {
            return Err(Error::corrupt(
                &meta_path,
                format!("`version: {recorded}` does not match the directory version-{version}"),
            ));
        }
        let creation_timestamp = map
            .i64("creation_timestamp")
            .ok_or_else(|| missing("creation_timestamp"))?;
        let deleted = map.str("current_stage") == Some(STAGE_DELETED);
        Ok(Some((
            StoredVersion {
                name: map.str("name").ok_or_else(|| missing("name"))?.to_string(),
                version,
                creation_timestamp,
                last_updated_timestamp: map
                    .i64("last_updated_timestamp")
                    .unwrap_or(creation_timestamp),
                source: map
                    .str("source")
                    .ok_or_else(|| missing("source"))?
                    .to_string(),
                run_id: map
                    .str("run_id")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                description: map.str("description").map(str::to_string),
                status: map.str("status").unwrap_or("READY").to_string(),
                tags: read_key_files(&dir.join("tags"))?,
                aliases: Vec::new(),
            },
            deleted,
        )))
    }

    pub(super) fn version_meta(version: &StoredVersion, stage: &str) -> String {
        yaml::Writer::new()
            .int("creation_timestamp", version.creation_timestamp)
            .str("current_stage", stage)
            .opt_str("description", version.description.as_deref())
            .int("last_updated_timestamp", version.last_updated_timestamp)
            .str("name", &version.name)
            .opt_str("run_id", version.run_id.as_deref())
            .null("run_link")
            .str("source", &version.source)
            .str("status", &version.status)
            .null("status_message")
            .str("storage_location", &version.source)
            .null("user_id")
            .int("version", version.version as i64)
            .finish()
    }

    pub(super) fn live_version(
        &self,
        model_dir: &Path,
        name: &str,
        version: u64,
    ) -> Result<StoredVersion> {
        match self.read_version(model_dir, version)? {
            Some((mut stored, false)) => {
                let aliases = read_aliases(&model_dir.join("aliases"))?;
                stored.aliases = aliases_of(&aliases, version);
                Ok(stored)
            }
            _ => Err(Error::NotFound(format!("model version {name} v{version}"))),
        }
    }

    /// Cache token: everything that changes when a model's versions or their tags change.
    pub(super) fn cache_token(model_dir: &Path) -> Result<String> {
        let generation = fsutil::read_optional(&model_dir.join(GENERATION))?.unwrap_or_default();
        let meta_path = model_dir.join(META);
        let meta = fsutil::read_optional(&meta_path)?.unwrap_or_default();
        let stamp = fs::metadata(&meta_path)
            .ok()
            .and_then(|m| {
                let modified = m
                    .modified()
                    .ok()?
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?;
                Some(format!("{}:{}", modified.as_nanos(), m.len()))
            })
            .unwrap_or_default();
        Ok(format!("{generation}|{stamp}|{meta}"))
    }

    pub(super) fn scan_versions(
        &self,
        model_dir: &Path,
        numbers: &[u64],
    ) -> Result<Vec<StoredVersion>> {
        let mut versions = Vec::with_capacity(numbers.len());
        for &number in numbers {
            // A directory without meta.yaml is not a version (MLflow would fail on it; we
            // never create one, but a foreign writer might be mid-way).
            if let Some((stored, false)) = self.read_version(model_dir, number)? {
                versions.push(stored);
            }
        }
        Ok(versions)
    }

    /// Registers the next version of the model in `model_dir`: built complete under a
    /// hidden name, then claimed with one rename (a taken number moves on to the next).
    pub(super) fn add_version(
        &self,
        name: &str,
        source: &str,
        run_id: &str,
        tags: &[(String, String)],
        description: Option<&str>,
    ) -> Result<StoredVersion> {
        let model_dir = self.existing_model_dir(name)?;
        for (key, value) in tags {
            check_value_len("model version tag", key, value, MAX_REGISTRY_TAG_VALUE)?;
        }
        // Assemble the complete version (meta.yaml + tags) under a name MLflow ignores.
        let staging = fsutil::temp_path(&model_dir, "version");
        fsutil::create_dir_all(&staging.join("tags"))?;
        let built = (|| -> Result<StoredVersion> {
            for (key, value) in tags {
                let path = staging.join("tags").join(key);
                if let Some(parent) = path.parent() {
                    fsutil::create_dir_all(parent)?;
                }
                fsutil::write_new_file(&path, value.as_bytes(), false).map_err(|e| match e {
                    fsutil::Error::Io { error, .. }
                        if error.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        Error::InvalidArgument(format!("model version tag {key:?} given twice"))
                    }
                    other => other.into(),
                })?;
            }
            self.change_model(
                &model_dir,
                || {
                    let mut next = Self::version_numbers(&model_dir)?
                        .last()
                        .copied()
                        .unwrap_or(0)
                        + 1;
                    loop {
                        let now = now_ms();
                        let version = StoredVersion {
                            name: name.to_string(),
                            version: next,
                            creation_timestamp: now,
                            last_updated_timestamp: now,
                            source: source.to_string(),
                            run_id: Some(run_id.to_string()),
                            description: description.map(str::to_string),
                            status: "READY".into(),
                            tags: tags.iter().cloned().collect(),
                            aliases: Vec::new(),
                        };
                        let meta = Self::version_meta(&version, "None");
                        fsutil::write_atomic(&staging.join(META), meta.as_bytes(), &staging, true)?;
                        fsutil::sync_dir(&staging)?;
                        // The claim: renaming onto an existing (non-empty) version-N fails.
                        let target = Self::version_dir(&model_dir, next);
                        match fs::rename(&staging, &target) {
                            Ok(()) => {
                                return Ok(version);
                            }
                            Err(e) if fsutil::is_target_exists(&e, &target) => next += 1,
                            Err(e) => return Err(Error::io(&target, e)),
                        }
                    }
                },
                |v: &StoredVersion| Some(v.version),
            )
        })();
        if built.is_err() {
            let _ = fsutil::remove_tree(&staging);
        }
        built
    }

    /// Creates the model's directory and `meta.yaml`, or returns the model that is already there.
    pub(super) fn add_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let dir = self.model_dir(name)?;
        if let Some(model) = self.read_registered_model(&dir)? {
            return Ok(model);
        }
        let now = now_ms();
        let model = RegisteredModel {
            name: name.to_string(),
            creation_timestamp: Some(now),
            last_updated_timestamp: Some(now),
            description: None,
            tags: BTreeMap::new(),
            aliases: BTreeMap::new(),
        };
        let staging = fsutil::temp_path(&self.staging_root(), "model");
        fsutil::create_dir_all(&staging)?;
        let meta = Self::registered_model_meta(&model);
        fsutil::write_new_file(&staging.join(META), meta.as_bytes(), true)?;
        fsutil::sync_dir(&staging)?;
        let result = fs::rename(&staging, &dir);
        match result {
            Ok(()) => {
                fsutil::sync_dir(&self.models_dir())?;
                Ok(model)
            }
            Err(e) => {
                let _ = fsutil::remove_tree(&staging);
                if fsutil::is_target_exists(&e, &dir) {
                    // Created concurrently by another writer: wait for its meta.yaml.
                    for _ in 0..50 {
                        if let Some(model) = self.read_registered_model(&dir)? {
                            return Ok(model);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    return Err(Error::corrupt(
                        &dir,
                        "registered model directory exists without meta.yaml; another writer \
                         may have crashed while creating it (remove the directory if it is empty)",
                    ));
                }
                Err(Error::io(&dir, e))
            }
        }
    }
}

/// The decoded listing cache with the token it was valid for.
pub(super) struct VersionCache {
    pub(super) token: String,
    pub(super) versions: Vec<StoredVersion>,
}

pub(super) fn read_aliases(dir: &Path) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for name in list_dir_names(dir)? {
        let path = dir.join(&name);
        let Some(text) = fsutil::read_optional(&path)? else {
            continue;
        };
        let version = text.parse::<u64>().map_err(|_| {
            Error::corrupt(
                &path,
                format!("alias content {text:?} is not a version number"),
            )
        })?;
        out.insert(name, version);
    }
    Ok(out)
}

pub(super) fn aliases_of(aliases: &BTreeMap<String, u64>, version: u64) -> Vec<String> {
    aliases
        .iter()
        .filter(|(_, v)| **v == version)
        .map(|(alias, _)| alias.clone())
        .collect()
}
