//! The lenient decode of a batch being read, for the provisional values on the page (the
//! batch is decoded again, strictly, when it is committed: `split`).

use std::sync::Arc;

use super::kafka::Polled;
use crate::events::{decode, Event, EventKind, Limits};
use crate::handoff::Delivery;
use crate::lake::Ranges;
use crate::schema::{Rows, Source};

/// The valid events among `records`, decoded for a preview (provisional values only; the
/// batch is decoded again, strictly, when it is committed). Only runs while someone watches.
pub(super) fn preview(
    topic: &str,
    kind: EventKind,
    (polled, shown): (&Polled, std::ops::Range<usize>),
    limits: &Limits,
) -> Delivery {
    let now = chrono::Utc::now().timestamp_micros();
    let records = polled.records.get(shown).unwrap_or_default();
    let mut rows = Rows::with_capacity(kind, records.len());
    let mut ranges = Ranges::new();
    for r in records {
        let range = ranges.entry(r.partition).or_insert((r.offset, r.offset));
        range.1 = r.offset + 1;
        if let Ok(event) = decode(kind, polled.payload(r), limits, now) {
            let source = Source {
                partition: r.partition,
                offset: r.offset,
                ingested_at: now,
            };
            push_event(&mut rows, source, event);
        }
    }
    Delivery {
        topic: topic.to_string(),
        kind,
        ranges,
        rows: Arc::new(rows),
    }
}

pub(super) fn push_event(rows: &mut Rows, source: Source, event: Event) {
    match (rows, event) {
        (Rows::Orders(v), Event::Order(e)) => v.push(source, &e),
        (Rows::Clicks(v), Event::Click(e)) => v.push(source, &e),
        (Rows::Errors(v), Event::Error(e)) => v.push(source, &e),
        // decode() only yields the kind it was asked for.
        _ => debug_assert!(false, "event kind does not match pipeline"),
    }
}
