//! Percent-encoding, in one place: `file:` URIs of local paths (and back), as MLflow writes
//! and reads them, and the path segments and query values of REST requests.

use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::{Error, Result};

/// RFC 3986's unreserved characters stay as they are; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path in a `file:` URI also keeps `/` and the characters RFC 3986 allows in a path
/// segment (sub-delimiters, `:` and `@`).
const FILE_PATH: &AsciiSet = &COMPONENT
    .remove(b'/')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// One URI component (a query value, a path segment): all but unreserved characters
/// encoded.
pub fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A `/`-separated path with each segment encoded.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_component)
        .collect::<Vec<_>>()
        .join("/")
}

/// `file://` URI of an absolute path, percent-encoding what a URI cannot hold verbatim.
pub fn file_uri(path: &Path) -> String {
    format!(
        "file://{}",
        utf8_percent_encode(&path.to_string_lossy(), FILE_PATH)
    )
}

/// The local path a plain path or `file:` URI names, made absolute.
pub fn path_from_uri(uri: &str) -> Result<PathBuf> {
    let path = match uri.strip_prefix("file:") {
        Some(rest) => {
            let rest = match rest.strip_prefix("//") {
                Some(authority_and_path) => {
                    let slash = authority_and_path
                        .find('/')
                        .unwrap_or(authority_and_path.len());
                    let (host, path) = authority_and_path.split_at(slash);
                    if !(host.is_empty() || host == "localhost") {
                        return Err(Error::Unsupported(format!(
                            "tracking URI {uri}: file URIs on another host ({host}) are not supported"
                        )));
                    }
                    path
                }
                None => rest,
            };
            // Undecodable escapes stay as they are, as with Python's `unquote`, which MLflow
            // uses.
            let decoded = percent_decode_str(rest).decode_utf8().map_err(|_| {
                Error::InvalidArgument(format!(
                    "tracking URI {uri}: the percent-encoded path is not UTF-8"
                ))
            })?;
            PathBuf::from(decoded.as_ref())
        }
        None => PathBuf::from(uri),
    };
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidArgument(format!(
            "tracking URI {uri:?} names no directory"
        )));
    }
    std::path::absolute(&path).map_err(|e| Error::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        let path = Path::new("/tmp/my runs/ml%runs");
        let uri = file_uri(path);
        assert_eq!(uri, "file:///tmp/my%20runs/ml%25runs");
        assert_eq!(path_from_uri(&uri).unwrap(), path);
        assert_eq!(path_from_uri("file:///abs/x").unwrap(), Path::new("/abs/x"));
        assert_eq!(
            path_from_uri("file://localhost/abs/x").unwrap(),
            Path::new("/abs/x")
        );
        assert!(path_from_uri("file:rel").unwrap().ends_with("rel"));
        assert!(path_from_uri("file://otherhost/x").is_err());
        assert!(path_from_uri("file:///a%FF").is_err());
    }

    #[test]
    fn components_keep_only_unreserved_characters() {
        assert_eq!(encode_component("a b/ü%~-._"), "a%20b%2F%C3%BC%25~-._");
        assert_eq!(encode_path("1/r/a b/ü%.txt"), "1/r/a%20b/%C3%BC%25.txt");
    }
}
