#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use ratchet_data::{DataError, LoadOptions, Universe};

const LONG: &str = "\
date,ticker,open,high,low,close,volume
2024-01-02,AAA,10,11,9,10.5,100
2024-01-02,BBB,20,21,19,20.5,200
2024-01-03,AAA,10.5,12,10,11,110
2024-01-04,BBB,20.5,22,20,21,210
2024-01-04,AAA,11,11.5,10.5,11.2,120
";

fn parse(files: &[(&str, &str)]) -> Result<Universe, DataError> {
    let files = files
        .iter()
        .map(|(name, text)| (PathBuf::from(name), text.as_bytes().to_vec()))
        .collect();
    Universe::parse(files, &LoadOptions::default())
}

#[test]
fn a_long_file_splits_into_symbols_with_their_own_calendars() {
    let universe = parse(&[("prices.csv", LONG)]).unwrap();
    assert_eq!(universe.symbols(), ["AAA", "BBB"]);
    let aaa = &universe.members[0].loaded.bars;
    let bbb = &universe.members[1].loaded.bars;
    assert_eq!(aaa.close, [10.5, 11.0, 11.2]);
    assert_eq!(bbb.close, [20.5, 21.0]);
    // BBB did not trade on the 3rd: nothing is filled in.
    assert_eq!(bbb.timestamps, [1_704_153_600_000, 1_704_326_400_000]);
    assert_eq!(aaa.volume, [100.0, 110.0, 120.0]);
}

#[test]
fn a_file_without_a_symbol_column_is_named_by_its_file() {
    let one = "date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n";
    let universe = parse(&[("data/CCC.csv", one), ("prices.csv", LONG)]).unwrap();
    assert_eq!(universe.symbols(), ["AAA", "BBB", "CCC"]);
}

#[test]
fn a_bad_row_is_named_by_symbol_and_file_row() {
    let broken = LONG.replace(
        "2024-01-04,BBB,20.5,22,20,21,210",
        "2024-01-04,BBB,20.5,22,20,-21,210",
    );
    let message = parse(&[("prices.csv", &broken)]).unwrap_err().to_string();
    assert_eq!(
        message,
        "symbol BBB: prices.csv: row 5, column \"close\": price is negative (-21); prices must be finite and positive, fix or remove the row"
    );
}

#[test]
fn a_symbol_in_two_files_or_without_a_name_is_refused() {
    let again = "date,symbol,open,high,low,close\n2024-01-05,AAA,1,2,0.5,1.5\n";
    assert_eq!(
        parse(&[("prices.csv", LONG), ("more.csv", again)])
            .unwrap_err()
            .to_string(),
        "universe: symbol AAA is in both prices.csv and more.csv; keep it in one file"
    );
    let odd = "date,symbol,open,high,low,close\n2024-01-05,A/B,1,2,0.5,1.5\n";
    assert_eq!(
        parse(&[("odd.csv", odd)]).unwrap_err().to_string(),
        "universe: symbol \"A/B\" in odd.csv has characters other than letters, digits, '.', '-' and '_'; rename it"
    );
    let unnamed = "date,symbol,open,high,low,close\n2024-01-05,,1,2,0.5,1.5\n";
    assert_eq!(
        parse(&[("more.csv", unnamed)]).unwrap_err().to_string(),
        "more.csv: row 2, column \"symbol\": missing symbol; fill it in or remove the row"
    );
}

#[test]
fn the_universe_hash_follows_symbols_and_bytes_not_file_order() {
    let one = "date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n";
    let a = parse(&[("CCC.csv", one), ("prices.csv", LONG)]).unwrap();
    let b = parse(&[("prices.csv", LONG), ("CCC.csv", one)]).unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.hash().len(), 64);
    let changed = parse(&[
        ("CCC.csv", &one.replace("1.5\n", "1.6\n")),
        ("prices.csv", LONG),
    ])
    .unwrap();
    assert_ne!(a.hash(), changed.hash());
}
