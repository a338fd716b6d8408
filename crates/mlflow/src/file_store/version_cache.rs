//! The file store's version-listing cache (`models/<name>/.ratchet-versions.bin`): every
//! live version of a model in one compact binary file, read with one `read` and decoded in
//! place, so that listing 10,000 versions costs no parsing and no copies beyond what the
//! caller keeps.
//!
//! Layout (little-endian): magic `RVC3`, the validity token, the version count, then per
//! version its number, creation and last-update times, name, source, run id, description,
//! status and tags. A string is a `u32` length and UTF-8 bytes; an absent optional string is
//! the length `u32::MAX`. Anything that does not decode is no cache at all (the caller
//! rebuilds it from the version directories).

use std::ops::Range;

use crate::store::{StoredVersion, VersionView};

const MAGIC: &[u8; 4] = b"RVC3";
const ABSENT: u32 = u32::MAX;

/// The cache for `versions` (ascending, aliases not included: they are read fresh).
pub(crate) fn encode(token: &str, versions: &[StoredVersion]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + versions.len() * 1024);
    out.extend_from_slice(MAGIC);
    put_str(&mut out, token);
    out.extend_from_slice(&(versions.len() as u64).to_le_bytes());
    for v in versions {
        out.extend_from_slice(&v.version.to_le_bytes());
        out.extend_from_slice(&v.creation_timestamp.to_le_bytes());
        out.extend_from_slice(&v.last_updated_timestamp.to_le_bytes());
        put_str(&mut out, &v.name);
        put_str(&mut out, &v.source);
        put_opt(&mut out, v.run_id.as_deref());
        put_opt(&mut out, v.description.as_deref());
        put_str(&mut out, &v.status);
        out.extend_from_slice(&(v.tags.len() as u32).to_le_bytes());
        for (key, value) in &v.tags {
            put_str(&mut out, key);
            put_str(&mut out, value);
        }
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

/// A decoded cache, borrowing every string from the file's bytes.
pub(crate) struct Decoded<'a> {
    pub token: &'a str,
    records: Vec<Record<'a>>,
    /// Every version's tags, back to back; a record holds its range.
    tags: Vec<(&'a str, &'a str)>,
}

struct Record<'a> {
    version: u64,
    creation_timestamp: i64,
    last_updated_timestamp: i64,
    name: &'a str,
    source: &'a str,
    run_id: Option<&'a str>,
    description: Option<&'a str>,
    status: &'a str,
    tags: Range<usize>,
}

impl<'a> Decoded<'a> {
    /// `None` for anything but a complete, well-formed cache.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let mut r = Reader(bytes.strip_prefix(MAGIC)?);
        let token = r.str()?;
        let count = usize::try_from(r.u64()?).ok()?;
        // Each record takes at least 52 bytes: a corrupt count cannot allocate much.
        let mut records = Vec::with_capacity(count.min(bytes.len() / 52));
        let mut tags = Vec::with_capacity(records.capacity() * 16);
        for _ in 0..count {
            let version = r.u64()?;
            let creation_timestamp = r.u64()? as i64;
            let last_updated_timestamp = r.u64()? as i64;
            let name = r.str()?;
            let source = r.str()?;
            let run_id = r.opt()?;
            let description = r.opt()?;
            let status = r.str()?;
            let start = tags.len();
            for _ in 0..r.u32()? {
                tags.push((r.str()?, r.str()?));
            }
            records.push(Record {
                version,
                creation_timestamp,
                last_updated_timestamp,
                name,
                source,
                run_id,
                description,
                status,
                tags: start..tags.len(),
            });
        }
        r.0.is_empty().then_some(Decoded {
            token,
            records,
            tags,
        })
    }

    /// Calls `visit` with each version, its aliases from `aliases_of`.
    pub fn visit<'s>(
        &'s self,
        aliases_of: impl Fn(u64) -> &'s [String],
        visit: &mut dyn FnMut(VersionView<'_>),
    ) {
        for r in &self.records {
            visit(VersionView {
                name: r.name,
                version: r.version,
                creation_timestamp: r.creation_timestamp,
                source: r.source,
                run_id: r.run_id,
                tags: &self.tags[r.tags.clone()],
                aliases: aliases_of(r.version),
            });
        }
    }

    /// The versions as owned values (without aliases).
    pub fn into_versions(self) -> Vec<StoredVersion> {
        self.records
            .iter()
            .map(|r| StoredVersion {
                name: r.name.to_string(),
                version: r.version,
                creation_timestamp: r.creation_timestamp,
                last_updated_timestamp: r.last_updated_timestamp,
                source: r.source.to_string(),
                run_id: r.run_id.map(str::to_string),
                description: r.description.map(str::to_string),
                status: r.status.to_string(),
                tags: self.tags[r.tags.clone()]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                aliases: Vec::new(),
            })
            .collect()
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = self.u32()?;
        if len == ABSENT {
            return None;
        }
        std::str::from_utf8(self.take(len as usize)?).ok()
    }

    fn opt(&mut self) -> Option<Option<&'a str>> {
        let len = self.u32()?;
        if len == ABSENT {
            return Some(None);
        }
        Some(Some(std::str::from_utf8(self.take(len as usize)?).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn version(n: u64) -> StoredVersion {
        StoredVersion {
            name: "m".into(),
            version: n,
            creation_timestamp: -5,
            last_updated_timestamp: 1_700_000_000_000,
            source: "file:///x/é".into(),
            run_id: n.is_multiple_of(2).then(|| "r".into()),
            description: Some(String::new()),
            status: "READY".into(),
            tags: BTreeMap::from([
                ("a".into(), "\"quoted\"\n".into()),
                ("b".into(), String::new()),
            ]),
            aliases: Vec::new(),
        }
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let versions: Vec<_> = (1..=3).map(version).collect();
        let bytes = encode("tok", &versions);
        let decoded = Decoded::decode(&bytes).unwrap();
        assert_eq!(decoded.token, "tok");
        let mut seen = Vec::new();
        let aliases = ["production".to_string()];
        decoded.visit(|v| if v == 2 { &aliases[..] } else { &[] }, &mut |v| {
            seen.push((v.version, v.tags.len(), v.aliases.len(), v.run_id.is_some()))
        });
        assert_eq!(seen, [(1, 2, 0, false), (2, 2, 1, true), (3, 2, 0, false)]);
        assert_eq!(decoded.into_versions(), versions);
        for cut in [0, 3, 10, bytes.len() - 1] {
            assert!(Decoded::decode(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Decoded::decode(&longer).is_none());
        let mut huge_count = bytes.clone();
        huge_count[11..19].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(Decoded::decode(&huge_count).is_none());
    }
}
