//! The rollup owner's view of partitions other instances consume. Their rows reach this
//! process only through the raw tables, so every tick the feed reads what the lake recorded
//! for those partitions beyond what it handed over, and delivers it to the rollup actors the
//! way a local consumer would. It also vouches for them being drained: the lake holds
//! everything the broker has (its high watermark, asked now and checked by [`vouch`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{debug, warn};

use super::input::{positions, raw_between, raw_table};
use super::partials::read;
use super::RollupParams;
use crate::error::{into_actor, Error, Handled};
use crate::events::EventKind;
use crate::handoff::source::{vouch, BrokerView, Vouch};
use crate::handoff::Delivery;
use crate::lake::io::index::FileIndex;
use crate::lake::io::scan::read_raw_indexed;
use crate::lake::{Offsets, Ranges};
use crate::schema::Rows;
use crate::supervision::Progress;

pub const FEED: &str = "feed";

/// What one tick does for one topic.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FeedPlan {
    /// Partitions to read from the raw table, from these offsets.
    pub read_from: Offsets,
    /// The ranges the delivery covers: every remote partition, `(handed over, recorded)`.
    /// A partition seen for the first time starts at what the lake recorded (the rollup
    /// actors fill anything before it from the raw table themselves).
    pub ranges: Ranges,
}

/// Plan a tick: `local` partitions are delivered by this instance's consumer; the others are
/// read from the lake, from `fed` (what was handed over) up to `recorded`.
pub fn plan(
    partitions: &BTreeSet<i32>,
    local: &BTreeSet<i32>,
    recorded: &Offsets,
    fed: &Offsets,
) -> FeedPlan {
    let mut out = FeedPlan::default();
    for p in partitions.difference(local) {
        let end = recorded.get(p).copied().unwrap_or(0);
        let start = fed.get(p).copied().unwrap_or(end).min(end);
        if start < end {
            out.read_from.insert(*p, start);
        }
        out.ranges.insert(*p, (start, end));
    }
    out
}

pub struct Feed;

pub struct FeedArgs {
    pub params: RollupParams,
    pub broker: Arc<dyn BrokerView>,
    pub progress: Arc<Progress>,
}

pub struct FeedState {
    args: FeedArgs,
    /// Per topic: the next offset handed over per remote partition.
    fed: BTreeMap<String, Offsets>,
    /// Per topic: the highest watermark the broker ever answered per partition.
    highest: BTreeMap<String, Offsets>,
    /// Topics the detector has event rules on.
    watched: Vec<EventKind>,
    /// The aggregators' side: per topic, where each remote partition was handed over up to.
    merged: BTreeMap<String, Offsets>,
    /// Per (topic, partition): since when the raw table is ahead of the partials.
    lagging: BTreeMap<(String, i32), std::time::Instant>,
    /// Each partials table's files, each manifest parsed once.
    files: BTreeMap<EventKind, FileIndex>,
    /// Each raw table's files, for the detector's rows (read every tick).
    raw_files: BTreeMap<EventKind, FileIndex>,
}

pub enum FeedMsg {
    Tick,
}

impl Actor for Feed {
    type Msg = FeedMsg;
    type State = FeedState;
    type Arguments = FeedArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<FeedMsg>,
        args: FeedArgs,
    ) -> Result<FeedState, ActorProcessingErr> {
        myself.send_interval(args.params.tick, || FeedMsg::Tick);
        let watched = crate::alerts::Evaluator::new(args.params.rules.clone(), Default::default())
            .watched_topics();
        Ok(FeedState {
            args,
            fed: BTreeMap::new(),
            highest: BTreeMap::new(),
            watched,
            merged: BTreeMap::new(),
            lagging: BTreeMap::new(),
            files: BTreeMap::new(),
            raw_files: BTreeMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<FeedMsg>,
        _msg: FeedMsg,
        state: &mut FeedState,
    ) -> Result<(), ActorProcessingErr> {
        let progress = state.args.progress.clone();
        let _busy = progress.busy();
        for kind in EventKind::ALL {
            into_actor(state.tick(kind).await)?;
            progress.beat();
        }
        Ok(())
    }
}

impl FeedState {
    async fn tick(&mut self, kind: EventKind) -> Handled {
        let p = &self.args.params;
        let topic = p.topic(kind).to_string();
        let broker = self.args.broker.clone();
        let t = topic.clone();
        let highs = match tokio::task::spawn_blocking(move || broker.high_watermarks(&t)).await {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                // Nothing is vouched for: windows wait rather than close on a guess.
                debug!(%topic, error = %e, "broker watermarks unavailable");
                return Ok(());
            }
            Err(e) => return Err(Error::Transient(format!("asking watermarks: {e}"))),
        };
        let partitions: BTreeSet<i32> = highs.keys().copied().collect();
        p.slots.source.know(&topic, partitions.iter().copied());
        let local: BTreeSet<i32> = p
            .metrics
            .group
            .snapshot()
            .get(&topic)
            .map(|ps| ps.iter().copied().collect())
            .unwrap_or_default();
        if partitions.is_subset(&local) {
            // One instance reads everything: its consumer delivers and vouches.
            self.fed.remove(&topic);
            return Ok(());
        }
        let table = raw_table(&p.lake, kind).await?;
        let recorded = positions(&table, &topic)?;
        let fed = self.fed.entry(topic.clone()).or_default();
        fed.retain(|p, _| !local.contains(p));
        let plan = plan(&partitions, &local, &recorded, fed);
        for (part, (_, end)) in &plan.ranges {
            fed.insert(*part, *end);
        }
        // The detector's rules need single events: it gets the raw rows of the topics it
        // watches, the others only where they stand.
        let mut rows = Rows::empty_for(kind);
        if !plan.read_from.is_empty() && self.watched.contains(&kind) {
            let files = self.raw_files.entry(kind).or_default();
            rows = read_raw_indexed(&table, kind, &plan.read_from, files).await?;
            rows.retain(|part, o| plan.ranges.get(&part).is_some_and(|(_, end)| o < *end));
        }
        if !rows.is_empty() {
            debug!(%topic, rows = rows.len(), "delivered rows other instances committed");
        }
        p.slots.detector_subscribers().deliver(Delivery {
            topic: topic.clone(),
            kind,
            ranges: plan.ranges.clone(),
            rows: Arc::new(rows),
        });
        self.merge_partials(kind, &topic, &local, &partitions, &recorded)
            .await?;
        let p = &self.args.params;
        // Drained: the lake holds everything the broker says exists.
        let valid_until =
            chrono::Utc::now().timestamp_micros() + (p.tick * 3).as_micros() as i64 + 2_000_000;
        let highest = self.highest.entry(topic.clone()).or_default();
        let source = p.slots.detector_subscribers();
        for (part, (_, end)) in &plan.ranges {
            let Some(high) = highs.get(part).copied() else {
                continue;
            };
            let seen = highest.get(part).copied();
            highest.insert(*part, seen.unwrap_or(high).max(high));
            match vouch(*end, high, seen) {
                Vouch::Drained(h) => source.confirm_drained(&topic, *part, h, valid_until),
                Vouch::Behind => {}
                // Second hand: only the lake says what the other instance read; a broker that
                // answers less than that may hold back more, and a window must not close on it.
                Vouch::BelowRead | Vouch::WentBack => {
                    p.metrics.watermark_lies.with_label_values(&[&topic]).inc();
                    warn!(%topic, partition = part, lake = end, high, highest_seen = ?seen, "the broker's high watermark is below what the lake holds or answered before; not trusting it");
                }
            }
        }
        Ok(())
    }
}

impl FeedState {
    /// Hand the aggregators what other instances folded of their partitions: merged partials
    /// where the partials table has them; where it has a gap, or has not moved for
    /// [`STALE`] while the raw table did (a writer that died with a partition nobody sent
    /// anything to since), the aggregators read the raw rows themselves (a range starting
    /// past their position: they fill it from the raw table).
    async fn merge_partials(
        &mut self,
        kind: EventKind,
        topic: &str,
        local: &BTreeSet<i32>,
        partitions: &BTreeSet<i32>,
        recorded: &Offsets,
    ) -> Handled {
        let p = &self.args.params;
        let merged = self.merged.entry(topic.to_string()).or_default();
        merged.retain(|p, _| !local.contains(p));
        let readers: Vec<&'static str> = p
            .kpis
            .iter()
            .filter(|(k, _)| k.inputs().contains(&kind))
            .map(|(k, _)| k.name())
            .collect();
        let mut from = Offsets::new();
        let mut ranges = Ranges::new();
        for part in partitions.difference(local) {
            let raw = recorded.get(part).copied().unwrap_or(0);
            // First sight: where the slowest aggregator stands (what it misses is read once,
            // below), or where the lake is.
            let at = *merged.entry(*part).or_insert_with(|| {
                p.slots
                    .standing
                    .lowest(topic, *part, &readers)
                    .map_or(raw, |s| s.min(raw))
            });
            ranges.insert(*part, (at, at));
            if raw > at {
                from.insert(*part, at);
            } else {
                self.lagging.remove(&(topic.to_string(), *part));
            }
        }
        let mut rows = Vec::new();
        let mut spans = Ranges::new();
        let mut reasons: BTreeMap<i32, &str> = BTreeMap::new();
        if !from.is_empty() {
            let table = read::table(&p.lake, kind).await?;
            let files = self.files.entry(kind).or_default();
            let taken = read::read(&table, files, topic, &from).await?;
            let now = std::time::Instant::now();
            for (part, at) in &from {
                let key = (topic.to_string(), *part);
                let raw = recorded.get(part).copied().unwrap_or(0);
                let (start, end, why) = match taken.takes.get(part) {
                    Some(t) => {
                        self.lagging.remove(&key);
                        (t.from, t.to, "gap")
                    }
                    None if now.duration_since(*self.lagging.entry(key).or_insert(now))
                        >= STALE =>
                    {
                        (raw, raw, "stale")
                    }
                    None => (*at, *at, ""),
                };
                ranges.insert(*part, (start, end));
                if start > *at {
                    spans.insert(*part, (*at, start));
                    reasons.insert(*part, why);
                }
                merged.insert(*part, end.max(*at));
            }
            rows = taken.rows;
        }
        let subscribers = p.slots.kpi_subscribers(kind);
        if !spans.is_empty() {
            // Read once here rather than by every aggregator: what partials do not cover.
            let raw = raw_between(&p.lake, kind, &spans).await?;
            let mut by_reason: BTreeMap<&str, u64> = BTreeMap::new();
            for (part, (from, to)) in &spans {
                let why = reasons.get(part).copied().unwrap_or("gap");
                *by_reason.entry(why).or_default() += (to - from).max(0) as u64;
            }
            for (why, n) in by_reason {
                p.metrics
                    .partials_raw
                    .with_label_values(&[topic, why])
                    .inc_by(n);
            }
            subscribers.deliver(Delivery {
                topic: topic.to_string(),
                kind,
                ranges: spans,
                rows: Arc::new(raw),
            });
        }
        subscribers.deliver(Delivery {
            topic: topic.to_string(),
            kind,
            ranges,
            rows: Arc::new(Rows::Partials(kind, rows)),
        });
        Ok(())
    }
}

/// How long the raw table may be ahead of a partition's partials before the aggregators read
/// the raw rows instead (a writer commits every two ticks).
const STALE: std::time::Duration = std::time::Duration::from_secs(6);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_table() {
        let all: BTreeSet<i32> = [0, 1, 2].into();
        let recorded: Offsets = [(0, 100), (1, 50), (2, 70)].into();
        // One instance holds everything: nothing to read, nothing to deliver.
        assert_eq!(
            plan(&all, &all, &recorded, &Offsets::new()),
            FeedPlan::default()
        );
        // First sight of remote partitions: start at what the lake holds, read nothing.
        let local: BTreeSet<i32> = [0].into();
        let first = plan(&all, &local, &recorded, &Offsets::new());
        assert!(first.read_from.is_empty());
        assert_eq!(first.ranges, [(1, (50, 50)), (2, (70, 70))].into());
        // Later: read what was recorded since.
        let fed: Offsets = [(1, 40), (2, 70)].into();
        let next = plan(&all, &local, &recorded, &fed);
        assert_eq!(next.read_from, [(1, 40)].into());
        assert_eq!(next.ranges, [(1, (40, 50)), (2, (70, 70))].into());
        // A partition the lake has never recorded (nobody committed it yet).
        let sparse: Offsets = [(0, 100)].into();
        let p = plan(&all, &local, &sparse, &Offsets::new());
        assert_eq!(p.ranges, [(1, (0, 0)), (2, (0, 0))].into());
        // Handed over past the lake (cannot happen unless the table went back): never a
        // backwards range.
        let ahead: Offsets = [(1, 60)].into();
        let p = plan(&all, &local, &recorded, &ahead);
        assert_eq!(p.ranges.get(&1), Some(&(50, 50)));
    }
}
