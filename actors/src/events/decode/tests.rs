use super::*;
use DeadLetterReason::*;

const ORDER: &str = r#"{"order_id":"o1","user_id":"u1","product_id":"p1","quantity":2,"price":9.5,"order_time":"2026-11-24T01:02:03.456789","status":"CREATED"}"#;

#[test]
fn the_fast_timestamp_path_agrees_with_chrono() {
    use chrono::NaiveDateTime;
    let slow = |v: &str| {
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
            .map(|d| d.and_utc().timestamp_micros())
    };
    for v in [
        "2026-11-24T01:02:03.456789",
        "2026-11-24T01:02:03",
        "2026-11-24 01:02:03.5",
        "2026-11-24T01:02:03.123456789",
        "2024-02-29T23:59:59.000001",
        "2000-01-01T00:00:00",
    ] {
        assert_eq!(parse_naive_fast(v.as_bytes()), slow(v), "{v}");
        assert!(parse_naive_fast(v.as_bytes()).is_some(), "{v}");
    }
    for v in [
        "2023-02-29T00:00:00",
        "2026-13-01T00:00:00",
        "2026-11-24T24:00:00",
        "2026-11-24T01:02:03.",
        "2026-11-24T01:02:03.1234567890",
        "2026-11-24T01:02:03Z",
        "2026-11-24T01:02:03+01:00",
        "2026-1a-24T01:02:03",
        "yesterday at noon!!",
    ] {
        assert_eq!(parse_naive_fast(v.as_bytes()), None, "{v}");
    }
    // The general path still takes what the fast one leaves.
    assert_eq!(
        parse_timestamp("2026-11-24T01:02:03Z"),
        parse_timestamp("2026-11-24T01:02:03")
    );
}

/// Read on 2026-11-24 at noon, as the fixtures are stamped.
const NOW: Micros = 1_795_521_600_000_000;

fn limits(max_event_bytes: usize) -> Limits {
    Limits {
        max_event_bytes,
        ..Limits::default()
    }
}

fn reason(kind: EventKind, payload: &[u8]) -> Option<DeadLetterReason> {
    decode(kind, Some(payload), &limits(65_536), NOW)
        .err()
        .map(|r| r.reason)
}

#[test]
fn valid_order_decodes_with_microseconds() {
    let Event::Order(o) = decode(
        EventKind::Orders,
        Some(ORDER.as_bytes()),
        &limits(1024),
        NOW,
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(o.quantity, 2);
    assert_eq!(o.status, "CREATED");
    assert_eq!(o.order_ts, 1_795_482_123_456_789);
}

#[test]
fn table_of_rejections() {
    let long = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70_000));
    let deep = "{\"a\":".repeat(10_000);
    let cases: Vec<(EventKind, Vec<u8>, Option<DeadLetterReason>)> = vec![
        (EventKind::Orders, ORDER.as_bytes().to_vec(), None),
        (EventKind::Orders, b"not json".to_vec(), Some(DecodeError)),
        (EventKind::Orders, ORDER.as_bytes()[..40].to_vec(), Some(DecodeError)),
        (EventKind::Orders, b"{\"order_id\":\"\xff\xfe\"}".to_vec(), Some(DecodeError)),
        // Not UTF-8 anywhere is a decode error, even after a field of the wrong type.
        (EventKind::Orders, b"{\"order_id\":5,\"x\":\"\xff\"}".to_vec(), Some(DecodeError)),
        // Escapes in the fields that are only checked (not borrowed then): still valid.
        (EventKind::Orders, ORDER.replace("CREATED", "\\u0043REATED").replace("T01", "\\u005401").into_bytes(), None),
        (EventKind::Orders, deep.into_bytes(), Some(DecodeError)),
        (EventKind::Orders, ORDER.replace("\"quantity\":2", "\"quantity\":-1").into_bytes(), Some(InvalidValue)),
        (EventKind::Orders, ORDER.replace("\"quantity\":2", "\"quantity\":99999999999").into_bytes(), Some(InvalidValue)),
        (EventKind::Orders, ORDER.replace("\"quantity\":2", "\"quantity\":1e30").into_bytes(), Some(SchemaViolation)),
        (EventKind::Orders, ORDER.replace("9.5", "\"9.5\"").into_bytes(), Some(SchemaViolation)),
        (EventKind::Orders, ORDER.replace("9.5", "NaN").into_bytes(), Some(DecodeError)),
        (EventKind::Orders, ORDER.replace("\"order_id\":\"o1\",", "").into_bytes(), Some(SchemaViolation)),
        (EventKind::Orders, ORDER.replace("CREATED", "LOST").into_bytes(), Some(InvalidValue)),
        (EventKind::Orders, ORDER.replace("2026-11-24T01:02:03.456789", "yesterday").into_bytes(), Some(InvalidTimestamp)),
        (EventKind::Orders, ORDER.replace("2026-11-24T01:02:03.456789", "1970-01-01T00:00:00").into_bytes(), Some(InvalidTimestamp)),
        (EventKind::Orders, ORDER.replace("}", ",\"extra\":{\"a\":[1,2]}}").into_bytes(), None),
        (EventKind::Orders, long.into_bytes(), Some(PayloadTooLarge)),
        (EventKind::Orders, Vec::new(), Some(EmptyValue)),
        (EventKind::Clicks, br#"{"click_id":"c","user_id":"u","url":"/x","device_type":"watch","click_time":"2026-11-24T01:02:03"}"#.to_vec(), Some(InvalidValue)),
        (EventKind::Errors, br#"{"error_id":"e","service_name":"s","error_message":"<img src=x>","severity":"FATAL","error_time":"2026-11-24T01:02:03Z"}"#.to_vec(), None),
        // Ids and names past their limits; a stamp more than a day ahead of ingestion.
        (EventKind::Orders, ORDER.replace("\"u1\"", &format!("{:?}", "u".repeat(1025))).into_bytes(), Some(FieldTooLong)),
        (EventKind::Orders, ORDER.replace("\"u1\"", &format!("{:?}", "u".repeat(1024))).into_bytes(), None),
        (EventKind::Clicks, format!(r#"{{"click_id":"c","user_id":"u","url":"/{}","device_type":"mobile","click_time":"2026-11-24T01:02:03"}}"#, "x".repeat(9000)).into_bytes(), Some(FieldTooLong)),
        (EventKind::Errors, format!(r#"{{"error_id":"e","service_name":"{}","error_message":"m","severity":"WARN","error_time":"2026-11-24T01:02:03"}}"#, "s".repeat(2000)).into_bytes(), Some(FieldTooLong)),
        (EventKind::Orders, ORDER.replace("2026-11-24T01:02:03.456789", "2026-11-25T13:00:00").into_bytes(), Some(InvalidTimestamp)),
        (EventKind::Orders, ORDER.replace("2026-11-24T01:02:03.456789", "2026-11-25T11:00:00").into_bytes(), None),
        (EventKind::Orders, ORDER.replace("2026-11-24T01:02:03.456789", "9999-12-31T23:59:59").into_bytes(), Some(InvalidTimestamp)),
    ];
    for (i, (kind, payload, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            reason(kind, &payload),
            expected,
            "case {i}: {}",
            String::from_utf8_lossy(&payload[..payload.len().min(80)])
        );
    }
}

#[test]
fn a_field_past_its_limit_is_named_with_the_limit_and_its_key() {
    let long = ORDER.replace("\"p1\"", &format!("{:?}", "p".repeat(2000)));
    let r = decode(
        EventKind::Orders,
        Some(long.as_bytes()),
        &limits(65_536),
        NOW,
    )
    .unwrap_err();
    assert_eq!(r.reason, FieldTooLong);
    assert_eq!(
        r.detail,
        "field `product_id` is 2000 bytes, limit is 1024 (pipeline.max_id_bytes)"
    );
}

#[test]
fn timestamps_accept_seed_forms() {
    let base = parse_timestamp("2026-11-24T01:02:03").unwrap();
    assert_eq!(parse_timestamp("2026-11-24T01:02:03Z"), Some(base));
    assert_eq!(parse_timestamp("2026-11-24T02:02:03+01:00"), Some(base));
    assert_eq!(parse_timestamp("2026-11-24 01:02:03.000000"), Some(base));
    assert_eq!(
        parse_timestamp("2026-11-24T01:02:03.5"),
        Some(base + 500_000)
    );
    assert_eq!(parse_timestamp("24/11/2026"), None);
}

#[test]
fn tombstone_is_empty_value() {
    assert_eq!(
        decode(EventKind::Clicks, None, &limits(10), NOW)
            .unwrap_err()
            .reason,
        EmptyValue
    );
}
