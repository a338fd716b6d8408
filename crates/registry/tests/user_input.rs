//! Every parser of user input in the registry, fed arbitrary text: an answer or one error
//! line, never a panic.

#![allow(clippy::unwrap_used)] // a test that unwraps fails with the value it did not expect

use std::str::FromStr;

use proptest::prelude::*;
use ratchet_registry::model_version::is_human_id;
use ratchet_registry::{ModelRef, SemVer, VersionStatus};

/// Text shaped like what a user types, with arbitrary characters where it matters: a
/// `models:/` prefix, names, `@`, `/`, version ids cut at any character.
fn user_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("models:/".to_string()),
        Just("v2026-11-22--14h05".to_string()),
        Just("@".to_string()),
        Just("/".to_string()),
        Just(".".to_string()),
        "[0-9]{1,25}",
        "\\PC{0,6}",
        "[a-z-]{0,8}",
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// `vYYYY-MM-DD--HHhMM`, optionally `-N`: the shape checked character by character.
fn looks_like_an_id(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let shape: Vec<char> = "vDDDD-DD-DD--DDhDD".chars().collect();
    if chars.len() < shape.len() {
        return false;
    }
    let base_ok = chars.iter().zip(&shape).all(|(c, s)| match s {
        'D' => c.is_ascii_digit(),
        _ => c == s,
    });
    let suffix = &chars[shape.len()..];
    base_ok
        && (suffix.is_empty()
            || (suffix.len() > 1
                && suffix[0] == '-'
                && suffix[1..].iter().all(char::is_ascii_digit)))
}

fn one_line(err: impl std::fmt::Display) {
    let message = err.to_string();
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{message:?}"
    );
}

proptest! {
    // No regression files: CI runs on a fresh clone, and a failure prints its minimal input.
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn model_uris_parse_or_say_why(text in user_text()) {
        if let Err(e) = ModelRef::parse(&text) {
            one_line(e);
        }
    }

    #[test]
    fn version_ids_are_recognised_without_panicking(cut in 0usize..20, tail in "\\PC{0,3}") {
        let id = "v2026-11-22--14h05";
        let text = format!("{}{tail}", id.get(..cut).unwrap_or(id));
        prop_assert_eq!(is_human_id(&text), looks_like_an_id(&text));
        if let Err(e) = ModelRef::parse(&format!("models:/m/{text}")) {
            one_line(e);
        }
    }

    #[test]
    fn semvers_and_statuses_parse_or_say_why(text in user_text()) {
        if let Err(e) = SemVer::from_str(&text) {
            one_line(e);
        }
        if let Err(e) = VersionStatus::from_str(&text) {
            one_line(e);
        }
    }
}

#[test]
fn the_reported_panic_is_an_error() {
    let err = ModelRef::parse("models:/m/v2026-11-22--14h0é").unwrap_err();
    assert_eq!(
        err.to_string(),
        "model URI \"models:/m/v2026-11-22--14h0é\": \"v2026-11-22--14h0é\" is neither a version \
         number nor a version id; expected models:/NAME/VERSION (a number or an id like \
         v2026-11-22--14h05), models:/NAME@ALIAS or models:/NAME/latest"
    );
}
