//! Where reading starts on a partition the lake has no offset for (`kafka.start`). A partition
//! with an offset in the lake always continues from the lake, whatever this says: the policy
//! only decides the first read of a new table, of a table adopted from another writer, or of a
//! partition the broker added.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::events::Micros;
use crate::lake::Offsets;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The earliest message the broker still keeps.
    Earliest,
    /// The next message produced after the partition is taken.
    Latest,
    /// The first message whose timestamp is at or after this time.
    Time(Micros),
    /// Where the old stack's Spark query stopped (its checkpoint and the table's snapshots,
    /// `shopwatch migrate plan`); resolved to [`StartAt::Offsets`] before the pipeline starts.
    Spark,
    /// Given offsets per partition; partitions not listed start at the earliest.
    Offsets(Offsets),
}

impl StartAt {
    /// `earliest`, `latest`, `spark` or an RFC 3339 time.
    pub fn parse(text: &str) -> Result<StartAt, String> {
        match text.trim() {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            "spark" => Ok(StartAt::Spark),
            t => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| StartAt::Time(d.timestamp_micros()))
                .map_err(|e| {
                    format!(
                        "{t:?} is not earliest, latest, spark or an RFC 3339 time such as 2026-12-01T00:00:00Z ({e})"
                    )
                }),
        }
    }

    /// The offset to start `partition` at, given the broker's retained `[low, high)` and, for
    /// a time, the broker's answer to "first offset at or after" (`None`: nothing that late,
    /// so the end).
    pub fn resolve(&self, partition: i32, (low, high): (i64, i64), by_time: Option<i64>) -> i64 {
        let at = match self {
            StartAt::Earliest | StartAt::Spark => low,
            StartAt::Latest => high,
            StartAt::Time(_) => by_time.unwrap_or(high),
            StartAt::Offsets(o) => o.get(&partition).copied().unwrap_or(low),
        };
        at.clamp(low, high)
    }
}

impl fmt::Display for StartAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartAt::Earliest => f.write_str("earliest"),
            StartAt::Latest => f.write_str("latest"),
            StartAt::Spark => f.write_str("spark"),
            StartAt::Time(t) => match chrono::DateTime::from_timestamp_micros(*t) {
                Some(d) => write!(
                    f,
                    "{}",
                    d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
                None => write!(f, "{t}µs"),
            },
            StartAt::Offsets(o) => {
                let parts: Vec<String> = o.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                write!(f, "offsets {}", parts.join(","))
            }
        }
    }
}

/// The policy of every topic: one default and per-topic exceptions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartPolicy {
    pub default: StartAt,
    pub topics: BTreeMap<String, StartAt>,
    pub pins: Pins,
}

/// Fresh starts this process already resolved, per (topic, partition). `latest` and a time
/// are resolved once: a partition taken again before its first commit (a rebalance, a consumer
/// restart) starts where it did the first time, instead of at a newer end that would skip what
/// came in between. Once the lake has an offset for the partition, the lake decides.
#[derive(Clone, Debug, Default)]
pub struct Pins(Arc<Mutex<BTreeMap<(String, i32), i64>>>);

impl Pins {
    /// The first resolution of `topic/partition`, or `resolved` if this is it.
    pub fn pin(&self, topic: &str, partition: i32, resolved: i64) -> i64 {
        match self.0.lock() {
            Ok(mut m) => *m.entry((topic.to_string(), partition)).or_insert(resolved),
            Err(_) => resolved,
        }
    }
}

// Pins are state, not policy: two policies that say the same are equal.
impl PartialEq for Pins {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Pins {}

impl Default for StartAt {
    fn default() -> Self {
        StartAt::Earliest
    }
}

impl StartPolicy {
    pub fn for_topic(&self, topic: &str) -> &StartAt {
        self.topics.get(topic).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_resolving() {
        assert_eq!(StartAt::parse("latest"), Ok(StartAt::Latest));
        assert_eq!(StartAt::parse(" earliest "), Ok(StartAt::Earliest));
        assert_eq!(StartAt::parse("spark"), Ok(StartAt::Spark));
        let t = StartAt::parse("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(t, StartAt::Time(1_796_083_200_000_000));
        assert_eq!(t.to_string(), "2026-12-01T00:00:00Z");
        let e = StartAt::parse("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339"), "{e}");
        // (policy, partition, retained, by time) → offset
        let offsets = StartAt::Offsets([(0, 40), (1, 500)].into());
        let cases = [
            (StartAt::Earliest, 0, (10, 100), None, 10),
            (StartAt::Latest, 0, (10, 100), None, 100),
            (t.clone(), 0, (10, 100), Some(55), 55),
            (t.clone(), 0, (10, 100), None, 100), // nothing that late: the end
            (offsets.clone(), 0, (10, 100), None, 40),
            (offsets.clone(), 1, (10, 100), None, 100), // clamped to the broker
            (offsets, 2, (10, 100), None, 10),          // a partition Spark never had
        ];
        for (at, p, range, by_time, want) in cases {
            assert_eq!(at.resolve(p, range, by_time), want, "{at} {p} {range:?}");
        }
    }

    #[test]
    fn per_topic_exceptions() {
        let policy = StartPolicy {
            default: StartAt::Latest,
            topics: [("clicks_topic".to_string(), StartAt::Earliest)].into(),
            pins: Pins::default(),
        };
        assert_eq!(policy.for_topic("clicks_topic"), &StartAt::Earliest);
        assert_eq!(policy.for_topic("orders_topic"), &StartAt::Latest);
    }

    #[test]
    fn a_fresh_start_is_resolved_once_per_partition() {
        let pins = Pins::default();
        // `latest` at 100 the first time the partition is taken…
        assert_eq!(pins.pin("orders_topic", 0, 100), 100);
        // …taken again after 40 more messages, before any commit: still 100, nothing skipped.
        assert_eq!(pins.pin("orders_topic", 0, 140), 100);
        // Other partitions and topics resolve on their own; clones share the pins (restarts).
        assert_eq!(pins.pin("orders_topic", 1, 7), 7);
        assert_eq!(pins.clone().pin("clicks_topic", 0, 9), 9);
        assert_eq!(pins.clone().pin("orders_topic", 1, 70), 7);
    }
}
