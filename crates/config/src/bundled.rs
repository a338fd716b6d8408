//! The market data sets shipped in `data/` and the example configs in `configs/`, built into
//! the binary so that the default configuration and the README's commands
//! (`ratchet train --config configs/dqn-eurusd.toml`, `ratchet sweep
//! configs/sweep-cartpole.toml`) work from any directory, `cargo install`ed included.

use std::path::{Component, Path};

/// `(path relative to the repository, contents)` of each bundled file.
const BUNDLED: [(&str, &[u8]); 10] = [
    (
        "data/STOCKS_GOOGL.csv",
        include_bytes!("../../../data/STOCKS_GOOGL.csv"),
    ),
    (
        "data/FOREX_EURUSD_1H_ASK.csv",
        include_bytes!("../../../data/FOREX_EURUSD_1H_ASK.csv"),
    ),
    (
        "data/UNIVERSE_DEMO.csv",
        include_bytes!("../../../data/UNIVERSE_DEMO.csv"),
    ),
    (
        "configs/universe-ppo.toml",
        include_bytes!("../../../configs/universe-ppo.toml"),
    ),
    (
        "configs/cartpole-dqn.toml",
        include_bytes!("../../../configs/cartpole-dqn.toml"),
    ),
    (
        "configs/dqn-eurusd.toml",
        include_bytes!("../../../configs/dqn-eurusd.toml"),
    ),
    (
        "configs/ppo-googl.toml",
        include_bytes!("../../../configs/ppo-googl.toml"),
    ),
    (
        "configs/slo.toml",
        include_bytes!("../../../configs/slo.toml"),
    ),
    (
        "configs/sweep-cartpole.toml",
        include_bytes!("../../../configs/sweep-cartpole.toml"),
    ),
    (
        "configs/sweep-googl.toml",
        include_bytes!("../../../configs/sweep-googl.toml"),
    ),
];

/// The built-in copy of `path` when it names a bundled file (as the configs and the README
/// do: `data/NAME.csv`, `configs/NAME.toml`, `./` allowed) and no such file exists here; a
/// file that exists always wins.
pub fn file(path: &Path) -> Option<&'static [u8]> {
    if path.exists() {
        return None;
    }
    contents(path)
}

/// The bundled file `path` names, whether or not a file exists there.
fn contents(path: &Path) -> Option<&'static [u8]> {
    let relative: Vec<Component> = path
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    BUNDLED
        .iter()
        .find(|(name, _)| Path::new(name).components().eq(relative.iter().copied()))
        .map(|(_, bytes)| *bytes)
}

/// Whether `path` can be read: a file here, or a bundled one.
pub fn is_available(path: &Path) -> bool {
    path.is_file() || file(path).is_some()
}

/// The text of `path`: the file here, else its bundled copy, else the error of reading it.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    match file(path) {
        Some(bytes) => String::from_utf8(bytes.to_vec())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        None => std::fs::read_to_string(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_paths_match_with_or_without_a_leading_dot() {
        let slo = include_bytes!("../../../configs/slo.toml").as_slice();
        for path in [
            "configs/slo.toml",
            "./configs/slo.toml",
            "configs/./slo.toml",
        ] {
            assert_eq!(contents(Path::new(path)), Some(slo), "{path}");
        }
        for path in [
            "slo.toml",
            "configs/nope.toml",
            "../configs/slo.toml",
            "/configs/slo.toml",
        ] {
            assert_eq!(contents(Path::new(path)), None, "{path}");
        }
    }
}
