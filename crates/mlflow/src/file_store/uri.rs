//! `file:` URIs of local paths and back, as MLflow writes and reads them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `file://` URI of an absolute path, percent-encoding what a URI cannot hold verbatim.
pub fn file_uri(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::from("file://");
    for byte in text.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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
            PathBuf::from(percent_decode(rest).ok_or_else(|| {
                Error::InvalidArgument(format!("tracking URI {uri}: bad percent-encoding"))
            })?)
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

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
    }
}
