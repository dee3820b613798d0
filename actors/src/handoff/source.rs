//! What each consumer last confirmed about its partitions: every record up to `high` (the
//! broker's high watermark, asked over the network, not cached) had been committed and handed
//! to the derived actors; the confirmation holds until `valid_until` (a few consumer cycles).
//! An aggregator lets a silent partition count as idle only when it has folded up to that
//! `high` and the confirmation still holds; otherwise the silence is our own pipeline stalling
//! (storage refusing writes, the broker unreachable, a restart), and closing windows would
//! turn the stalled events into late ones.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::events::Micros;

#[derive(Debug, Default)]
pub struct SourceProgress {
    confirmed: Mutex<HashMap<(String, i32), (i64, Micros)>>,
}

impl SourceProgress {
    pub fn confirm(&self, topic: &str, partition: i32, high: i64, valid_until: Micros) {
        if let Ok(mut c) = self.confirmed.lock() {
            c.insert((topic.to_string(), partition), (high, valid_until));
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<(i64, Micros)> {
        self.confirmed
            .lock()
            .ok()?
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// (partition, high watermark, valid until) of `topic`.
    pub fn of_topic(&self, topic: &str) -> Vec<(i32, i64, Micros)> {
        self.confirmed
            .lock()
            .map(|c| {
                c.iter()
                    .filter(|((t, _), _)| t == topic)
                    .map(|((_, p), (h, at))| (*p, *h, *at))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Is a partition drained for a reader that has folded everything before `folded`?
/// `confirmed` is the source's (high, valid until).
pub fn drained(folded: Option<i64>, confirmed: Option<(i64, Micros)>, now: Micros) -> bool {
    match confirmed {
        Some((high, valid_until)) => now <= valid_until && folded.unwrap_or(0) >= high,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    #[test]
    fn drained_needs_a_fresh_confirmation_and_everything_folded() {
        let now = 100 * S;
        // (folded, confirmed (high, valid until), expected)
        let cases = [
            (Some(50), Some((50, now + S)), true),
            (Some(60), Some((50, now + S)), true),
            (Some(49), Some((50, now + S)), false), // a delivery still on its way
            (None, Some((0, now)), true),           // an empty partition
            (None, Some((5, now)), false),
            (Some(50), Some((50, now - 1)), false), // expired: the consumer may be stuck
            (Some(50), None, false),                // never confirmed (just restarted)
        ];
        for (folded, confirmed, want) in cases {
            assert_eq!(
                drained(folded, confirmed, now),
                want,
                "{folded:?} {confirmed:?}"
            );
        }
    }

    #[test]
    fn confirmations_are_kept_per_topic_and_partition() {
        let s = SourceProgress::default();
        s.confirm("orders", 0, 10, 1);
        s.confirm("orders", 1, 20, 2);
        s.confirm("clicks", 0, 30, 3);
        s.confirm("orders", 0, 15, 4);
        let mut o = s.of_topic("orders");
        o.sort();
        assert_eq!(o, vec![(0, 15, 4), (1, 20, 2)]);
    }
}
