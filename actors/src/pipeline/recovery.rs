//! How long taking partitions costs: from an assignment (at start, after a crash, from a
//! rebalance) until the lake holds everything the broker had when the partitions were given,
//! and how many records were read again below the raw table's position meanwhile. Pure; the
//! consumer feeds it and reports what it returns.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::group::Start;
pub use crate::telemetry::Recovered;

/// The recovery in progress, if any.
#[derive(Debug, Default)]
pub struct Recovery {
    started: Option<Instant>,
    /// Partition → the broker's high watermark when it was given to us, until the raw table
    /// holds it.
    targets: BTreeMap<i32, i64>,
    /// Partition → its raw position, until the records below it (read again to rebuild dead
    /// letters) have been read.
    replays: BTreeMap<i32, i64>,
    partitions: Vec<i32>,
    reread: u64,
    read: u64,
}

impl Recovery {
    /// Partitions were given to us. A recovery already running takes them on (one report for
    /// what one rebalance, or a burst of them, cost).
    pub fn assigned(&mut self, starts: &[Start], now: Instant) {
        if self.started.is_none() {
            *self = Recovery {
                started: Some(now),
                ..Recovery::default()
            };
        }
        for s in starts {
            self.partitions.push(s.partition);
            if s.high > s.raw {
                self.targets.insert(s.partition, s.high);
            } else {
                self.targets.remove(&s.partition);
            }
            if s.rereads() > 0 {
                self.replays.insert(s.partition, s.raw);
            } else {
                self.replays.remove(&s.partition);
            }
        }
    }

    /// True while a recovery runs (the consumer reports its reads only then).
    pub fn running(&self) -> bool {
        self.started.is_some()
    }

    /// Partitions were taken away: nothing more to wait for on them.
    pub fn revoked(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.targets.remove(p);
            self.replays.remove(p);
        }
    }

    /// A record was read while recovering.
    pub fn read(&mut self, partition: i32, offset: i64) {
        if self.started.is_none() {
            return;
        }
        self.read += 1;
        if let Some(&raw) = self.replays.get(&partition) {
            if offset < raw {
                self.reread += 1;
            }
            if offset + 1 >= raw {
                self.replays.remove(&partition);
            }
        }
    }

    /// The raw table now holds `partition` up to `position`. Returns the finished recovery
    /// once every partition reached its target.
    pub fn committed(&mut self, partition: i32, position: i64, now: Instant) -> Option<Recovered> {
        if self.targets.get(&partition).is_some_and(|&t| position >= t) {
            self.targets.remove(&partition);
        }
        self.finished(now)
    }

    /// The finished recovery, when nothing is left to wait for (also right after an
    /// assignment that had nothing to read).
    pub fn finished(&mut self, now: Instant) -> Option<Recovered> {
        let started = self.started?;
        if !self.targets.is_empty() || !self.replays.is_empty() {
            return None;
        }
        let mut partitions = std::mem::take(&mut self.partitions);
        partitions.sort_unstable();
        partitions.dedup();
        let done = Recovered {
            partitions,
            took_ms: now.saturating_duration_since(started).as_millis() as u64,
            reread: self.reread,
            read: self.read,
        };
        *self = Recovery::default();
        Some(done)
    }

    /// How long the recovery in progress has run.
    pub fn running_for(&self, now: Instant) -> Option<Duration> {
        self.started.map(|s| now.saturating_duration_since(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(partition: i32, raw: i64, dead_letters: i64, high: i64) -> Start {
        Start {
            partition,
            raw,
            dead_letters,
            high,
        }
    }

    #[test]
    fn nothing_to_read_finishes_at_once() {
        let t0 = Instant::now();
        let mut r = Recovery::default();
        r.assigned(&[start(0, 100, 100, 100), start(1, 50, 50, 50)], t0);
        let done = r.finished(t0).expect("finished");
        assert_eq!(done.partitions, vec![0, 1]);
        assert_eq!((done.took_ms, done.reread, done.read), (0, 0, 0));
        assert_eq!(r.finished(t0), None, "reported once");
    }

    #[test]
    fn finishes_when_every_partition_reached_the_high_watermark_of_its_assignment() {
        let t0 = Instant::now();
        let mut r = Recovery::default();
        r.assigned(&[start(0, 100, 90, 120), start(1, 50, 50, 60)], t0);
        for o in 90..120 {
            r.read(0, o);
        }
        for o in 50..60 {
            r.read(1, o);
        }
        assert_eq!(r.committed(0, 120, t0 + Duration::from_millis(5)), None);
        // Records produced after the assignment do not prolong it.
        let done = r
            .committed(1, 70, t0 + Duration::from_millis(30))
            .expect("finished");
        assert_eq!(done.took_ms, 30);
        assert_eq!((done.reread, done.read), (10, 40));
        // Reads after it count toward nothing.
        r.read(0, 121);
        assert_eq!(r.finished(t0), None);
    }

    #[test]
    fn a_replay_below_the_raw_position_must_be_read_through_even_when_the_lake_is_current() {
        let t0 = Instant::now();
        let mut r = Recovery::default();
        // Raw at the high watermark, dead letters rebuilt from 95.
        r.assigned(&[start(0, 100, 95, 100)], t0);
        assert_eq!(r.finished(t0), None);
        for o in 95..99 {
            r.read(0, o);
        }
        assert_eq!(r.finished(t0), None);
        r.read(0, 99);
        let done = r.finished(t0 + Duration::from_millis(2)).expect("finished");
        assert_eq!((done.reread, done.read, done.took_ms), (5, 5, 2));
    }

    #[test]
    fn a_revoked_partition_is_not_waited_for_and_a_second_assignment_joins_the_first() {
        let t0 = Instant::now();
        let mut r = Recovery::default();
        r.assigned(&[start(0, 0, 0, 10)], t0);
        r.assigned(&[start(1, 0, 0, 10)], t0 + Duration::from_millis(1));
        r.revoked(&[0]);
        assert_eq!(r.finished(t0), None);
        let done = r
            .committed(1, 10, t0 + Duration::from_millis(9))
            .expect("finished");
        assert_eq!(done.partitions, vec![0, 1]);
        assert_eq!(done.took_ms, 9, "from the first assignment");
        assert!(r.running_for(t0).is_none());
    }
}
