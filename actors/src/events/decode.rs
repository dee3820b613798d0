//! The strict decoder: one record's bytes into a typed event, or a [`Rejection`] with its
//! bounded reason. Raw shapes carry exactly the seed's field names.

use std::borrow::Cow;

use serde::Deserialize;

use super::*;

/// Timestamps before this are rejected: they are zero/epoch defaults, not real events.
const MIN_VALID_MICROS: Micros = 946_684_800_000_000; // 2000-01-01T00:00:00Z

/// What one event may hold. Every id and name ends up in a set or map of some open window
/// (distinct users, products, services) and in the raw table, so each has a bound far above
/// any real value; a timestamp far in the future would open a day partition of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_event_bytes: usize,
    /// `order_id`, `user_id`, `product_id`, `click_id`, `error_id`.
    pub max_id_bytes: usize,
    /// `service_name`.
    pub max_name_bytes: usize,
    pub max_url_bytes: usize,
    /// How far ahead of its ingestion time an event may be stamped.
    pub max_future: Micros,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 256 * 1024,
            max_id_bytes: 1024,
            max_name_bytes: 1024,
            max_url_bytes: 8 * 1024,
            max_future: 86_400 * 1_000_000,
        }
    }
}

/// Decode and validate one record value of the given kind, read at `now`.
pub fn decode<'a>(
    kind: EventKind,
    payload: Option<&'a [u8]>,
    limits: &Limits,
    now: Micros,
) -> Result<Event<'a>, Rejection> {
    let max_event_bytes = limits.max_event_bytes;
    let bytes = match payload {
        None => {
            return Err(Rejection::new(
                DeadLetterReason::EmptyValue,
                "record has no value (tombstone)",
            ))
        }
        Some(b) if b.is_empty() => {
            return Err(Rejection::new(
                DeadLetterReason::EmptyValue,
                "record value is empty",
            ))
        }
        Some(b) => b,
    };
    if bytes.len() > max_event_bytes {
        return Err(Rejection::new(
            DeadLetterReason::PayloadTooLarge,
            format!("value is {} bytes, limit is {max_event_bytes}", bytes.len()),
        ));
    }
    let check = Check {
        limits,
        not_after: now.saturating_add(limits.max_future),
    };
    match kind {
        EventKind::Orders => parse::<RawOrder>(bytes)?.validate(&check).map(Event::Order),
        EventKind::Clicks => parse::<RawClick>(bytes)?.validate(&check).map(Event::Click),
        EventKind::Errors => parse::<RawError>(bytes)?.validate(&check).map(Event::Error),
    }
}

/// The limits of one record, with its ingestion time applied.
struct Check<'l> {
    limits: &'l Limits,
    not_after: Micros,
}

impl Check<'_> {
    fn id<'a>(&self, field: &str, value: Cow<'a, str>) -> Result<Cow<'a, str>, Rejection> {
        bounded(
            field,
            non_empty(field, value)?,
            self.limits.max_id_bytes,
            "pipeline.max_id_bytes",
        )
    }

    fn timestamp(&self, field: &str, value: &str) -> Result<Micros, Rejection> {
        let t = timestamp(field, value)?;
        if t > self.not_after {
            return Err(Rejection::new(
                DeadLetterReason::InvalidTimestamp,
                format!(
                    "field `{field}` is more than {} s ahead of its ingestion time (pipeline.max_future_s): {value:?}",
                    self.limits.max_future / 1_000_000
                ),
            ));
        }
        Ok(t)
    }
}

fn bounded<'a>(
    field: &str,
    value: Cow<'a, str>,
    limit: usize,
    key: &str,
) -> Result<Cow<'a, str>, Rejection> {
    if value.len() > limit {
        return Err(Rejection::new(
            DeadLetterReason::FieldTooLong,
            format!(
                "field `{field}` is {} bytes, limit is {limit} ({key})",
                value.len()
            ),
        ));
    }
    Ok(value)
}

fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Rejection> {
    // The whole value is checked as UTF-8 at once (invalid anywhere is a decode error, as the
    // reason says); parsing a `str` then skips serde_json's check of every string.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            DeadLetterReason::DecodeError,
            format!("value is not UTF-8: {e}"),
        )
    })?;
    serde_json::from_str(text).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Data => DeadLetterReason::SchemaViolation,
            _ => DeadLetterReason::DecodeError,
        };
        Rejection::new(reason, e.to_string())
    })
}

// Raw shapes: exactly the seed's field names; unknown fields are ignored (serde default) so
// producers can add fields without breaking us. No `#[serde(default)]`: a missing field is a
// schema violation, and serde_json never coerces "12.3" into a number. Every string borrows
// from the payload unless escaped: no allocation per event.
#[derive(Deserialize)]
struct RawOrder<'a> {
    #[serde(borrow)]
    order_id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    product_id: Cow<'a, str>,
    quantity: i64,
    price: f64,
    #[serde(borrow)]
    order_time: Cow<'a, str>,
    #[serde(borrow)]
    status: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawClick<'a> {
    #[serde(borrow)]
    click_id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow)]
    device_type: Cow<'a, str>,
    #[serde(borrow)]
    click_time: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawError<'a> {
    #[serde(borrow)]
    error_id: Cow<'a, str>,
    #[serde(borrow)]
    service_name: Cow<'a, str>,
    #[serde(borrow)]
    error_message: Cow<'a, str>,
    #[serde(borrow)]
    severity: Cow<'a, str>,
    #[serde(borrow)]
    error_time: Cow<'a, str>,
}

fn non_empty<'a>(field: &str, value: Cow<'a, str>) -> Result<Cow<'a, str>, Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::new(
            DeadLetterReason::InvalidValue,
            format!("field `{field}` is empty"),
        ));
    }
    Ok(value)
}

fn one_of(field: &str, value: &str, allowed: &[&'static str]) -> Result<&'static str, Rejection> {
    allowed
        .iter()
        .copied()
        .find(|a| *a == value)
        .ok_or_else(|| {
            Rejection::new(
                DeadLetterReason::InvalidValue,
                format!("field `{field}` has unknown value {value:?}, expected one of {allowed:?}"),
            )
        })
}

fn timestamp(field: &str, value: &str) -> Result<Micros, Rejection> {
    let micros = parse_timestamp(value).ok_or_else(|| {
        Rejection::new(
            DeadLetterReason::InvalidTimestamp,
            format!("field `{field}` is not an ISO-8601 timestamp: {value:?}"),
        )
    })?;
    if micros < MIN_VALID_MICROS {
        return Err(Rejection::new(
            DeadLetterReason::InvalidTimestamp,
            format!("field `{field}` is before 2000-01-01: {value:?}"),
        ));
    }
    Ok(micros)
}

/// Parse the seed's naive ISO-8601 UTC timestamps (`2026-11-24T01:02:03.456789`, fraction
/// optional as Python's `isoformat()` omits it when zero), also with `Z` or a `±HH:MM` offset.
pub fn parse_timestamp(value: &str) -> Option<Micros> {
    use chrono::{DateTime, NaiveDateTime};
    let value = value.trim();
    if let Some(micros) = parse_naive_fast(value.as_bytes()) {
        return Some(micros);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(value) {
        return Some(dt.timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(value, fmt) {
            return Some(naive.and_utc().timestamp_micros());
        }
    }
    None
}

/// The seed's own shape, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]`, without chrono's format
/// interpreter (3 % of the pipeline's CPU in the ingest profile). Anything else: `None`, and
/// the general parser decides.
fn parse_naive_fast(b: &[u8]) -> Option<Micros> {
    fn num(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let micros = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let digits = num(frac)?;
            // Scale to microseconds: pad short fractions, cut nanoseconds.
            let scaled = u64::from(digits) * 10u64.pow(9 - frac.len() as u32);
            (scaled / 1_000) as u32
        }
        _ => return None,
    };
    let date =
        chrono::NaiveDate::from_ymd_opt(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)?;
    let dt =
        date.and_hms_micro_opt(num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?, micros)?;
    Some(dt.and_utc().timestamp_micros())
}

impl<'a> RawOrder<'a> {
    fn validate(self, check: &Check<'_>) -> Result<Order<'a>, Rejection> {
        if self.quantity <= 0 || self.quantity > i64::from(i32::MAX) {
            return Err(Rejection::new(
                DeadLetterReason::InvalidValue,
                format!(
                    "field `quantity` must be between 1 and {}, got {}",
                    i32::MAX,
                    self.quantity
                ),
            ));
        }
        if !self.price.is_finite() || self.price < 0.0 {
            return Err(Rejection::new(
                DeadLetterReason::InvalidValue,
                format!(
                    "field `price` must be a finite number >= 0, got {}",
                    self.price
                ),
            ));
        }
        Ok(Order {
            order_id: check.id("order_id", self.order_id)?,
            user_id: check.id("user_id", self.user_id)?,
            product_id: check.id("product_id", self.product_id)?,
            quantity: self.quantity as i32,
            price: self.price,
            status: one_of("status", &self.status, &ORDER_STATUSES)?,
            order_ts: check.timestamp("order_time", &self.order_time)?,
        })
    }
}

impl<'a> RawClick<'a> {
    fn validate(self, check: &Check<'_>) -> Result<Click<'a>, Rejection> {
        Ok(Click {
            click_id: check.id("click_id", self.click_id)?,
            user_id: check.id("user_id", self.user_id)?,
            url: bounded(
                "url",
                self.url,
                check.limits.max_url_bytes,
                "pipeline.max_url_bytes",
            )?,
            device_type: one_of("device_type", &self.device_type, &DEVICE_TYPES)?,
            click_ts: check.timestamp("click_time", &self.click_time)?,
        })
    }
}

impl<'a> RawError<'a> {
    fn validate(self, check: &Check<'_>) -> Result<ErrorEvent<'a>, Rejection> {
        Ok(ErrorEvent {
            error_id: check.id("error_id", self.error_id)?,
            service_name: bounded(
                "service_name",
                non_empty("service_name", self.service_name)?,
                check.limits.max_name_bytes,
                "pipeline.max_name_bytes",
            )?,
            // Free text, bounded by the event's size; alert descriptions truncate it.
            error_message: self.error_message,
            severity: one_of("severity", &self.severity, &SEVERITIES)?,
            error_ts: check.timestamp("error_time", &self.error_time)?,
        })
    }
}

#[cfg(test)]
mod tests;
