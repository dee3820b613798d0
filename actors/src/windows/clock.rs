//! Event-time watermarks. Per partition: max event time − allowed lateness. Per topic: the
//! minimum over partitions that are still active; a partition silent for `idle_timeout` stops
//! holding the topic back, and a topic whose partitions are all silent advances with the
//! processing clock, so windows close when traffic stops. Silence counts as idleness only when
//! the source confirms the partition is drained ([`Drained`]): while our own pipeline stalls
//! (storage down, broker unreachable, a restart) the events are on their way, not absent.

use std::collections::BTreeMap;

use crate::events::Micros;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockParams {
    pub lateness: Micros,
    pub idle_timeout: Micros,
}

/// Whether the source has delivered everything of a partition (or, with `None`, of every
/// partition of a topic) that exists so far.
pub trait Drained {
    fn drained(&self, topic: usize, partition: Option<i32>) -> bool;
    /// Every partition of `topic` the source knows (the broker's list); empty when unknown.
    fn partitions(&self, _topic: usize) -> Vec<i32> {
        Vec::new()
    }
}

/// For callers without a source to ask (tests, replays): silence alone means idle.
pub struct AlwaysDrained;

impl Drained for AlwaysDrained {
    fn drained(&self, _: usize, _: Option<i32>) -> bool {
        true
    }
}

#[derive(Clone, Copy, Debug)]
struct PartitionClock {
    max_event: Micros,
    last_seen: Micros,
}

/// Watermark state of one topic.
#[derive(Clone, Debug, Default)]
pub struct TopicClock {
    partitions: BTreeMap<i32, PartitionClock>,
}

impl TopicClock {
    /// An event with time `event_time` arrived on `partition` at processing time `now`.
    pub fn observe(&mut self, partition: i32, event_time: Micros, now: Micros) {
        let p = self.partitions.entry(partition).or_insert(PartitionClock {
            max_event: event_time,
            last_seen: now,
        });
        p.max_event = p.max_event.max(event_time);
        p.last_seen = p.last_seen.max(now);
    }

    /// The topic's watermark at processing time `now`; `None` before its first event.
    pub fn watermark(&self, now: Micros, p: ClockParams) -> Option<Micros> {
        self.watermark_with(now, p, |_| true)
    }

    /// `watermark`, where a silent partition is idle only if `drained(partition)`.
    pub fn watermark_with(
        &self,
        now: Micros,
        p: ClockParams,
        drained: impl Fn(i32) -> bool,
    ) -> Option<Micros> {
        if self.partitions.is_empty() {
            return None;
        }
        let active = self
            .partitions
            .iter()
            .filter(|(part, c)| now - c.last_seen < p.idle_timeout || !drained(**part))
            .map(|(_, c)| c)
            .map(|c| c.max_event)
            .min();
        Some(match active {
            Some(max_event) => max_event - p.lateness,
            // Every partition is idle: nothing in flight can be older than the processing clock.
            None => now - p.lateness,
        })
    }
}

/// The partition (or topic) a watermark waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holding {
    pub topic: usize,
    /// `None`: the topic delivered nothing yet.
    pub partition: Option<i32>,
    /// Its newest event time; `None` before its first event.
    pub max_event: Option<Micros>,
    /// Processing time since it last delivered an event (or since the clock started).
    pub silent_for: Micros,
}

/// Watermark over several topics (a KPI may read more than one): the minimum over topics that
/// have seen events, never moving backwards.
#[derive(Clone, Debug)]
pub struct Watermark {
    params: ClockParams,
    topics: Vec<TopicClock>,
    current: Option<Micros>,
    /// Processing time of the first call: a topic not heard from yet holds the watermark back
    /// for one idle timeout, so a KPI over several topics does not close windows before the
    /// slower consumers delivered anything.
    started: Option<Micros>,
}

impl Watermark {
    pub fn new(topics: usize, params: ClockParams) -> Self {
        Watermark {
            params,
            topics: vec![TopicClock::default(); topics],
            current: None,
            started: None,
        }
    }

    pub fn params(&self) -> ClockParams {
        self.params
    }

    pub fn observe(&mut self, topic: usize, partition: i32, event_time: Micros, now: Micros) {
        self.started.get_or_insert(now);
        if let Some(t) = self.topics.get_mut(topic) {
            t.observe(partition, event_time, now);
        }
    }

    /// Recompute at `now` and return the (monotonic) watermark.
    pub fn advance(&mut self, now: Micros) -> Option<Micros> {
        self.advance_with(now, &AlwaysDrained)
    }

    /// `advance`, asking `source` before treating silence as idleness.
    pub fn advance_with(&mut self, now: Micros, source: &dyn Drained) -> Option<Micros> {
        let started = *self.started.get_or_insert(now);
        let waiting = self.topics.iter().enumerate().any(|(i, t)| {
            (t.partitions.is_empty()
                && (now - started < self.params.idle_timeout || !source.drained(i, None)))
                // A partition that has delivered nothing yet while others race ahead (one
                // partition's first batch may span an hour of a backlog) holds the topic back
                // until it delivers or its source says it has nothing.
                || source.partitions(i).iter().any(|p| {
                    !t.partitions.contains_key(p) && !source.drained(i, Some(*p))
                })
        });
        if waiting {
            return self.current;
        }
        let params = self.params;
        let candidate = self
            .topics
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.watermark_with(now, params, |p| source.drained(i, Some(p))))
            .min();
        self.current = match (self.current, candidate) {
            (Some(c), Some(n)) => Some(c.max(n)),
            (c, n) => c.or(n),
        };
        self.current
    }

    /// What holds the watermark back at `now` (for the log when windows stop closing): the
    /// first topic waiting for a partition, or the active partition with the oldest event.
    pub fn holding(&self, now: Micros, source: &dyn Drained) -> Option<Holding> {
        let started = self.started.unwrap_or(now);
        for (i, t) in self.topics.iter().enumerate() {
            if t.partitions.is_empty() && !source.drained(i, None) {
                let silent_for = now - started;
                return Some(Holding {
                    topic: i,
                    partition: None,
                    max_event: None,
                    silent_for,
                });
            }
            for p in source.partitions(i) {
                if !t.partitions.contains_key(&p) && !source.drained(i, Some(p)) {
                    let silent_for = now - started;
                    return Some(Holding {
                        topic: i,
                        partition: Some(p),
                        max_event: None,
                        silent_for,
                    });
                }
            }
        }
        let params = self.params;
        self.topics
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.partitions.iter().map(move |(p, c)| (i, *p, *c)))
            .filter(|(i, p, c)| {
                now - c.last_seen < params.idle_timeout || !source.drained(*i, Some(*p))
            })
            .min_by_key(|(_, _, c)| c.max_event)
            .map(|(topic, p, c)| Holding {
                topic,
                partition: Some(p),
                max_event: Some(c.max_event),
                silent_for: now - c.last_seen,
            })
    }

    pub fn current(&self) -> Option<Micros> {
        self.current
    }

    /// Restore a watermark recorded before a restart (it never goes back).
    pub fn restore(&mut self, at_least: Micros) {
        self.current = Some(self.current.map_or(at_least, |c| c.max(at_least)));
    }

    pub fn topic(&self, topic: usize, now: Micros) -> Option<Micros> {
        self.topics.get(topic)?.watermark(now, self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;
    const P: ClockParams = ClockParams {
        lateness: 10 * S,
        idle_timeout: 30 * S,
    };

    #[test]
    fn minimum_over_active_partitions_minus_lateness() {
        let mut t = TopicClock::default();
        t.observe(0, 100 * S, 0);
        t.observe(1, 80 * S, 0);
        assert_eq!(t.watermark(S, P), Some(70 * S));
    }

    #[test]
    fn idle_partition_stops_holding_back_and_idle_topic_follows_processing_time() {
        let mut t = TopicClock::default();
        t.observe(0, 100 * S, 0);
        t.observe(1, 80 * S, 0);
        t.observe(0, 140 * S, 40 * S);
        // Partition 1 has been silent for 40 s > 30 s: only partition 0 counts.
        assert_eq!(t.watermark(40 * S, P), Some(130 * S));
        // Everything silent: processing time minus lateness.
        assert_eq!(t.watermark(1_000 * S, P), Some(990 * S));
    }

    /// The source vouches for some partitions only.
    struct Only(Vec<(usize, Option<i32>)>);
    impl Drained for Only {
        fn drained(&self, topic: usize, partition: Option<i32>) -> bool {
            self.0.contains(&(topic, partition))
        }
    }

    #[test]
    fn silence_without_the_sources_word_is_a_stall_not_idleness() {
        let mut t = TopicClock::default();
        t.observe(0, 100 * S, 0);
        t.observe(1, 80 * S, 0);
        // Both silent for 1,000 s, but only partition 0 is drained: partition 1's events are
        // stuck in our pipeline, so it still holds the topic back.
        assert_eq!(t.watermark_with(1_000 * S, P, |p| p == 0), Some(70 * S));
        assert_eq!(t.watermark_with(1_000 * S, P, |_| false), Some(70 * S));
        assert_eq!(t.watermark_with(1_000 * S, P, |_| true), Some(990 * S));

        // A topic that never delivered holds the watermark back until its source says it is
        // empty, however long that takes.
        let mut w = Watermark::new(2, P);
        w.observe(0, 0, 100 * S, 0);
        let stalled = Only(vec![(0, Some(0)), (0, None)]);
        assert_eq!(w.advance_with(1_000 * S, &stalled), None);
        let empty = Only(vec![(0, Some(0)), (0, None), (1, None)]);
        assert_eq!(w.advance_with(1_000 * S, &empty), Some(990 * S));
        // And it never goes back when the source stops vouching.
        assert_eq!(w.advance_with(2_000 * S, &stalled), Some(990 * S));
    }

    /// A source listing partitions 0..3 of topic 0, vouching for `drained` only.
    struct Listed(Vec<i32>);
    impl Drained for Listed {
        fn drained(&self, _: usize, partition: Option<i32>) -> bool {
            partition.is_some_and(|p| self.0.contains(&p))
        }
        fn partitions(&self, _: usize) -> Vec<i32> {
            vec![0, 1, 2]
        }
    }

    #[test]
    fn what_holds_the_watermark_is_named() {
        let mut w = Watermark::new(1, P);
        w.observe(0, 0, 3_600 * S, 0);
        // Partitions 1 and 2 have delivered nothing: the first of them is named.
        let h = w.holding(5 * S, &Listed(vec![])).unwrap();
        assert_eq!(
            (h.partition, h.max_event, h.silent_for),
            (Some(1), None, 5 * S)
        );
        w.observe(0, 1, 100 * S, S);
        w.observe(0, 2, 200 * S, S);
        // All delivered: the oldest active one, and how long it has been silent.
        let h = w.holding(11 * S, &Listed(vec![])).unwrap();
        assert_eq!(
            (h.partition, h.max_event, h.silent_for),
            (Some(1), Some(100 * S), 10 * S)
        );
        // Silent past the idle timeout and drained: it no longer holds anything back.
        let h = w.holding(40 * S, &Listed(vec![1])).unwrap();
        assert_eq!((h.partition, h.max_event), (Some(2), Some(200 * S)));
        // Silent but not drained: it still does.
        let h = w.holding(40 * S, &Listed(vec![])).unwrap();
        assert_eq!(h.partition, Some(1));
    }

    #[test]
    fn a_partition_that_delivered_nothing_yet_holds_back_until_it_does_or_is_drained() {
        let mut w = Watermark::new(1, P);
        // Partition 0's first batch spans an hour of backlog; 1 and 2 have not delivered.
        w.observe(0, 0, 3_600 * S, 0);
        assert_eq!(w.advance_with(S, &Listed(vec![])), None);
        w.observe(0, 1, 100 * S, S);
        assert_eq!(w.advance_with(2 * S, &Listed(vec![])), None);
        // Partition 2 is empty (its source vouches): the minimum of the two that delivered.
        assert_eq!(w.advance_with(3 * S, &Listed(vec![2])), Some(90 * S));
    }

    #[test]
    fn topics_without_events_do_not_hold_back_and_watermark_never_regresses() {
        let mut w = Watermark::new(2, P);
        assert_eq!(w.advance(0), None);
        w.observe(0, 0, 100 * S, 0);
        // Topic 1 has not delivered yet: it holds back for one idle timeout.
        assert_eq!(w.advance(S), None);
        w.observe(0, 0, 100 * S, 31 * S);
        assert_eq!(w.advance(31 * S), Some(90 * S));
        w.observe(1, 0, 50 * S, 31 * S);
        // The second topic is behind, but the watermark does not move back.
        assert_eq!(w.advance(32 * S), Some(90 * S));
        w.restore(10 * S);
        assert_eq!(w.current(), Some(90 * S));
    }
}
