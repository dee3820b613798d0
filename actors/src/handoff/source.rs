//! What each consumer last confirmed about its partitions: every record up to `high` (the
//! broker's high watermark, asked over the network, not cached) had been committed and handed
//! to the rollup actors; the confirmation holds until `valid_until` (a few consumer cycles).
//! An aggregator lets a silent partition count as idle only when it has folded up to that
//! `high` and the confirmation still holds; otherwise the silence is our own pipeline stalling
//! (storage refusing writes, the broker unreachable, a restart), and closing windows would
//! turn the stalled events into late ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use crate::events::Micros;

#[derive(Debug, Default)]
pub struct SourceProgress {
    confirmed: Mutex<HashMap<(String, i32), (i64, Micros)>>,
    /// Every partition of each topic, as the broker listed them: a topic is drained only when
    /// each of them is (confirmations may come for some partitions only, from this instance's
    /// consumer and from the rollup owner's view of the others).
    known: Mutex<HashMap<String, BTreeSet<i32>>>,
}

impl SourceProgress {
    /// The broker lists these partitions for `topic`.
    pub fn know(&self, topic: &str, partitions: impl IntoIterator<Item = i32>) {
        if let Ok(mut k) = self.known.lock() {
            k.entry(topic.to_string()).or_default().extend(partitions);
        }
    }

    /// Every known partition of `topic`.
    pub fn partitions(&self, topic: &str) -> Vec<i32> {
        self.known
            .lock()
            .ok()
            .and_then(|k| k.get(topic).map(|ps| ps.iter().copied().collect()))
            .unwrap_or_default()
    }

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
}

/// What the broker says about the partitions of a topic, for those this instance does not read
/// (the rollup owner's view of what other instances consume). Blocking: call it off the
/// async runtime.
pub trait BrokerView: Send + Sync + std::fmt::Debug {
    /// Partition → high watermark, asked now (not a cached answer).
    fn high_watermarks(&self, topic: &str) -> Result<BTreeMap<i32, i64>, String>;
}

/// What a broker's high watermark says about a partition read up to `position` (the next
/// offset), given the highest watermark it ever answered for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vouch {
    /// Everything up to `high` has been read: the partition is drained.
    Drained(i64),
    /// Records are waiting.
    Behind,
    /// The answer is below what was already read: the broker under-reports (Tansu with
    /// `memory://` storage does, ../shared/reference/realparts.md). Only a reader that fetched
    /// the partition itself knows nothing more was served; anyone else must not trust it.
    BelowRead,
    /// The answer is below an earlier one: not trusted by anyone.
    WentBack,
}

pub fn vouch(position: i64, high: i64, highest_seen: Option<i64>) -> Vouch {
    if highest_seen.is_some_and(|h| h > high) {
        Vouch::WentBack
    } else if position > high {
        Vouch::BelowRead
    } else if position == high {
        Vouch::Drained(high)
    } else {
        Vouch::Behind
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
    fn a_watermark_is_trusted_only_when_consistent() {
        // (position, high, highest seen before, expected)
        let cases = [
            (50, 50, None, Vouch::Drained(50)),
            (50, 50, Some(50), Vouch::Drained(50)),
            (50, 50, Some(40), Vouch::Drained(50)),
            (0, 0, None, Vouch::Drained(0)), // an empty partition
            (40, 50, None, Vouch::Behind),
            (40, 50, Some(50), Vouch::Behind),
            (55, 50, None, Vouch::BelowRead), // read past the broker's answer
            (55, 50, Some(50), Vouch::BelowRead),
            (50, 50, Some(60), Vouch::WentBack), // the answer went back
            (40, 50, Some(60), Vouch::WentBack),
            (55, 50, Some(60), Vouch::WentBack),
        ];
        for (position, high, seen, want) in cases {
            assert_eq!(
                vouch(position, high, seen),
                want,
                "{position} {high} {seen:?}"
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
        assert_eq!(s.get("orders", 0), Some((15, 4)));
        assert_eq!(s.get("orders", 1), Some((20, 2)));
        assert_eq!(s.get("clicks", 1), None);
        assert!(s.partitions("orders").is_empty());
        s.know("orders", [0, 1]);
        s.know("orders", [2]);
        assert_eq!(s.partitions("orders"), vec![0, 1, 2]);
    }
}
