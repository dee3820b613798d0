//! Typed events of the three seed topics and their strict decoder (`decode`).
//!
//! The decoder is the only place that looks at producer bytes; everything it rejects becomes a
//! dead letter with one of the bounded [`DeadLetterReason`] codes, never a panic.

use std::borrow::Cow;

mod decode;

pub use decode::{decode, parse_timestamp, Limits};

/// Which seed topic (and so which raw table and payload shape) a pipeline serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    Orders,
    Clicks,
    Errors,
}

impl EventKind {
    pub const ALL: [EventKind; 3] = [EventKind::Orders, EventKind::Clicks, EventKind::Errors];

    /// Short stable name used in metrics labels and actor names.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Orders => "orders",
            EventKind::Clicks => "clicks",
            EventKind::Errors => "errors",
        }
    }

    /// Raw table written by this kind's pipeline (seed name).
    pub fn raw_table(self) -> &'static str {
        match self {
            EventKind::Orders => "orders_processed",
            EventKind::Clicks => "clicks_processed",
            EventKind::Errors => "errors_processed",
        }
    }
}

/// Microseconds since the Unix epoch, UTC wall time (Iceberg `timestamp`, no zone).
pub type Micros = i64;

/// A decoded event's text: borrowed from the payload (or from a batch's columns) unless the
/// producer escaped it, so decoding allocates nothing per event in the common case.
pub type Text<'a> = Cow<'a, str>;

#[derive(Clone, Debug, PartialEq)]
pub struct Order<'a> {
    pub order_id: Text<'a>,
    pub user_id: Text<'a>,
    pub product_id: Text<'a>,
    pub quantity: i32,
    pub price: f64,
    pub status: &'static str,
    pub order_ts: Micros,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Click<'a> {
    pub click_id: Text<'a>,
    pub user_id: Text<'a>,
    pub url: Text<'a>,
    pub device_type: &'static str,
    pub click_ts: Micros,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ErrorEvent<'a> {
    pub error_id: Text<'a>,
    pub service_name: Text<'a>,
    pub error_message: Text<'a>,
    pub severity: &'static str,
    pub error_ts: Micros,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event<'a> {
    Order(Order<'a>),
    Click(Click<'a>),
    Error(ErrorEvent<'a>),
}

impl Event<'_> {
    /// When it happened (the producer's stamp).
    pub fn time(&self) -> Micros {
        match self {
            Event::Order(o) => o.order_ts,
            Event::Click(c) => c.click_ts,
            Event::Error(e) => e.error_ts,
        }
    }
}

pub const ORDER_STATUSES: [&str; 5] =
    ["CREATED", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED"];
pub const DEVICE_TYPES: [&str; 3] = ["desktop", "mobile", "tablet"];
pub const SEVERITIES: [&str; 3] = ["WARN", "ERROR", "FATAL"];

/// Why a record went to the dead letters. Bounded: these are metric label values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// Not JSON, truncated, invalid UTF-8, nested too deep.
    DecodeError,
    /// JSON, but a field is missing or has the wrong type.
    SchemaViolation,
    /// Right type, impossible value (negative quantity, unknown enum, empty id).
    InvalidValue,
    /// Timestamp unparseable or before 2000-01-01.
    InvalidTimestamp,
    /// Larger than `max_event_bytes`.
    PayloadTooLarge,
    /// An id or name longer than its limit (the detail names the field and the limit).
    FieldTooLong,
    /// Tombstone or zero-length value.
    EmptyValue,
    /// The record made a handler fail twice (poison record).
    HandlerFailure,
}

impl DeadLetterReason {
    pub const ALL: [DeadLetterReason; 8] = [
        DeadLetterReason::DecodeError,
        DeadLetterReason::SchemaViolation,
        DeadLetterReason::InvalidValue,
        DeadLetterReason::InvalidTimestamp,
        DeadLetterReason::PayloadTooLarge,
        DeadLetterReason::FieldTooLong,
        DeadLetterReason::EmptyValue,
        DeadLetterReason::HandlerFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::DecodeError => "decode_error",
            DeadLetterReason::SchemaViolation => "schema_violation",
            DeadLetterReason::InvalidValue => "invalid_value",
            DeadLetterReason::InvalidTimestamp => "invalid_timestamp",
            DeadLetterReason::PayloadTooLarge => "payload_too_large",
            DeadLetterReason::FieldTooLong => "field_too_long",
            DeadLetterReason::EmptyValue => "empty_value",
            DeadLetterReason::HandlerFailure => "handler_failure",
        }
    }
}

/// A rejected record: the reason code plus a human-readable detail.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub reason: DeadLetterReason,
    pub detail: String,
}

impl Rejection {
    pub(crate) fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}
