use super::*;

fn ms(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

#[test]
fn detects_iso_dates_and_datetimes() {
    let (v, f) = parse_timestamps(&["2009-05-22", "2009-05-26"], None).unwrap();
    assert_eq!(
        v,
        vec![ms("2009-05-22T00:00:00Z"), ms("2009-05-26T00:00:00Z")]
    );
    assert_eq!(f, "%Y-%m-%d");
    let (v, _) = parse_timestamps(&["2017-01-01 22:00:00", "2017-01-01 23:00:00.5"], None).unwrap();
    assert_eq!(v[1] - v[0], 3_600_500);
    // Mixing layouts within a column is reported at the first row that differs.
    let err = parse_timestamps(&["2017-01-01 22:00:00", "2017-01-01T23:00:00"], None).unwrap_err();
    assert!(
        matches!(err, TimestampError::Value { index: 1, .. }),
        "{err:?}"
    );
    let (v, f) =
        parse_timestamps(&["2017-01-01T22:00:00Z", "2017-01-01T23:00:00+01:00"], None).unwrap();
    assert_eq!(
        v,
        vec![ms("2017-01-01T22:00:00Z"), ms("2017-01-01T22:00:00Z")]
    );
    assert_eq!(f, "rfc3339");
}

#[test]
fn detects_day_first_dotted_format() {
    let (v, f) = parse_timestamps(
        &["01.01.2017 22:00:00.000", "13.02.2017 23:00:00.000"],
        None,
    )
    .unwrap();
    assert_eq!(
        v,
        vec![ms("2017-01-01T22:00:00Z"), ms("2017-02-13T23:00:00Z")]
    );
    assert_eq!(f, "%d.%m.%Y %H:%M:%S%.f");
}

#[test]
fn ambiguous_day_month_order_is_an_error() {
    let err = parse_timestamps(&["01/02/2017", "03/04/2017"], None).unwrap_err();
    let TimestampError::Format(msg) = err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("%d/%m/%Y") && msg.contains("%m/%d/%Y"),
        "{msg}"
    );
    // A day above 12 settles it.
    let (v, f) = parse_timestamps(&["01/02/2017", "25/04/2017"], None).unwrap();
    assert_eq!(f, "%d/%m/%Y");
    assert_eq!(v[1], ms("2017-04-25T00:00:00Z"));
}

#[test]
fn epoch_units_by_magnitude() {
    let s = ms("2017-01-01T22:00:00Z");
    let secs = (s / 1000).to_string();
    let millis = s.to_string();
    let micros = (s * 1000).to_string();
    assert_eq!(
        parse_timestamps(&[secs.as_str()], None).unwrap(),
        (vec![s], "epoch_s".to_string())
    );
    assert_eq!(
        parse_timestamps(&[millis.as_str()], None).unwrap(),
        (vec![s], "epoch_ms".to_string())
    );
    assert_eq!(
        parse_timestamps(&[micros.as_str()], None).unwrap(),
        (vec![s], "epoch_us".to_string())
    );
    assert_eq!(
        epoch_ints_to_ms(&[s * 1_000_000], None).unwrap(),
        (vec![s], "epoch_ns".to_string())
    );
    // Forced unit.
    assert_eq!(
        parse_timestamps(&["1000"], Some("epoch_ms")).unwrap().0,
        vec![1000]
    );
}

#[test]
fn compact_dates_and_epoch_seconds_are_ambiguous() {
    assert!(matches!(
        parse_timestamps(&["20170101", "20170102"], None),
        Err(TimestampError::Format(_))
    ));
    assert_eq!(
        parse_timestamps(&["20170101"], Some("%Y%m%d")).unwrap().0,
        vec![ms("2017-01-01T00:00:00Z")]
    );
}

#[test]
fn explicit_format_and_bad_rows() {
    let (v, _) = parse_timestamps(&["2017/01/02 03:04"], Some("%Y/%m/%d %H:%M")).unwrap();
    assert_eq!(v, vec![ms("2017-01-02T03:04:00Z")]);
    let err = parse_timestamps(&["2017-01-01", "2017-01-02", "yesterday"], None).unwrap_err();
    assert!(
        matches!(err, TimestampError::Value { index: 2, .. }),
        "{err:?}"
    );
    let err = parse_timestamps(&["soon"], None).unwrap_err();
    assert!(
        matches!(err, TimestampError::Value { index: 0, .. }),
        "{err:?}"
    );
    let err = parse_timestamps(&["2017-01-01", "2017-13-01"], Some("%Y-%m-%d")).unwrap_err();
    assert!(
        matches!(err, TimestampError::Value { index: 1, .. }),
        "{err:?}"
    );
    let err = parse_timestamps(&["2017-01-01"], Some("%Y-%Q")).unwrap_err();
    assert!(
        matches!(&err, TimestampError::Format(m) if m.contains("not a valid chrono strftime")),
        "{err:?}"
    );
}

#[test]
fn formats_and_boundaries() {
    let t = ms("2017-01-01T22:00:00Z");
    assert_eq!(format_timestamp(t), "2017-01-01T22:00:00Z");
    assert_eq!(format_date(t), "2017-01-01");
    assert_eq!(
        parse_boundary("2017-01-01"),
        Some(ms("2017-01-02T00:00:00Z"))
    );
    assert_eq!(parse_boundary("2017-01-01T22:00:00Z"), Some(t + 1));
    assert_eq!(parse_boundary("2017-01-01 22:00"), Some(t + 1));
    assert_eq!(parse_boundary("next week"), None);
}
