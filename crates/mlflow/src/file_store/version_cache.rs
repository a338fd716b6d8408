//! The file store's version-listing cache (`models/<name>/.ratchet-versions.bin`): every
//! live version of a model in one `postcard` file, read with one `read` and decoded in place
//! (every string borrows the file's bytes), so that listing 10,000 versions costs no text
//! parsing. It starts with a format name and the validity token; anything that does not
//! decode completely is no cache at all (the caller rebuilds it from the version
//! directories).

use serde::{Deserialize, Serialize};

use crate::store::{StoredVersion, VersionView};

/// Bumped whenever the layout changes, so an older cache is rebuilt, not misread.
const FORMAT: &str = "ratchet-version-cache-4";

/// A cache as written and as decoded, borrowing every string.
#[derive(Serialize, Deserialize)]
pub(crate) struct Decoded<'a> {
    format: &'a str,
    pub token: &'a str,
    #[serde(borrow)]
    records: Vec<Record<'a>>,
}

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    version: u64,
    creation_timestamp: i64,
    last_updated_timestamp: i64,
    name: &'a str,
    source: &'a str,
    #[serde(borrow)]
    run_id: Option<&'a str>,
    #[serde(borrow)]
    description: Option<&'a str>,
    status: &'a str,
    #[serde(borrow)]
    tags: Vec<(&'a str, &'a str)>,
}

/// The cache for `versions` (ascending, aliases not included: they are read fresh).
pub(crate) fn encode(token: &str, versions: &[StoredVersion]) -> Vec<u8> {
    let cache = Decoded {
        format: FORMAT,
        token,
        records: versions
            .iter()
            .map(|v| Record {
                version: v.version,
                creation_timestamp: v.creation_timestamp,
                last_updated_timestamp: v.last_updated_timestamp,
                name: &v.name,
                source: &v.source,
                run_id: v.run_id.as_deref(),
                description: v.description.as_deref(),
                status: &v.status,
                tags: v
                    .tags
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
            })
            .collect(),
    };
    // Strings, integers and vectors always serialize.
    postcard::to_allocvec(&cache).unwrap_or_default()
}

impl<'a> Decoded<'a> {
    /// `None` for anything but a complete, well-formed cache of this format.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let (cache, rest) = postcard::take_from_bytes::<Decoded<'a>>(bytes).ok()?;
        (cache.format == FORMAT && rest.is_empty()).then_some(cache)
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
                tags: &r.tags,
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
                tags: r
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                aliases: Vec::new(),
            })
            .collect()
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
        // The record count (after the format name and "tok", each behind a one-byte
        // length) claiming u64::MAX records: refused without allocating for them.
        let count_at = 1 + FORMAT.len() + 1 + 3;
        assert_eq!(bytes[count_at], 3);
        let mut huge_count = bytes[..count_at].to_vec();
        huge_count.extend_from_slice(&[0xff; 9]);
        huge_count.push(0x01);
        huge_count.extend_from_slice(&bytes[count_at + 1..]);
        assert!(Decoded::decode(&huge_count).is_none());
        let mut other_format = bytes.clone();
        assert_eq!(other_format[FORMAT.len()], b'4');
        other_format[FORMAT.len()] = b'3';
        assert!(Decoded::decode(&other_format).is_none());
    }
}
