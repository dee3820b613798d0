//! The rollup: what turns the raw tables into the KPI and alert tables — one window aggregator
//! per registered KPI and the alert detector, run by the one supervisor as a group (`RollupGroup`). They read what the
//! consumers committed; any failure restarts the set, which rebuilds itself from the lake (raw
//! tables and checkpoints).

pub mod aggregator;
mod checkpoint;
pub mod contest;
pub mod detector;
pub mod feed;
pub mod input;
pub mod live;
pub mod messages;
pub mod partials;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use crate::alerts::{GroupParams, RuleSet};
use crate::error::Error;
use crate::events::EventKind;
use crate::faults::Faults;
use crate::handoff::{BrokerView, CommitFeed, Ownership, Slot, SourceProgress, Subscribers};
use crate::kpis::Kpi;
use crate::lake::{HygieneParams, Lake};
use crate::supervision::{ChildInfo, ChildSpecs, Spawner, SupervisionParams};
use crate::telemetry::Metrics;
use crate::windows::EngineParams;
use aggregator::{AggregatorActor, AggregatorArgs};
use detector::{DetectorActor, DetectorArgs};
use messages::RollupMsg;

/// The group's name in metrics and `/readyz`.
pub const GROUP: &str = "rollup";
pub const DETECTOR: &str = "detector";

/// One slot per rollup actor, created once so consumers keep them across restarts.
#[derive(Clone, Debug)]
pub struct RollupSlots {
    pub kpis: Vec<(&'static dyn Kpi, Arc<Slot>)>,
    pub detector: Arc<Slot>,
    /// The partials writer's (every instance folds what it commits, [`partials`]).
    pub partials: Arc<Slot>,
    /// What the consumers confirmed they have delivered (idleness needs it).
    pub source: Arc<SourceProgress>,
    /// Every landed commit, raw or rollup (readers of the lake follow it).
    pub commits: CommitFeed,
    /// Where every aggregator stands (the feed starts other instances' partitions there).
    pub standing: Arc<Standing>,
}

/// Per (topic, KPI): how far the aggregator folded each partition. When a partition moves to
/// another instance, the feed reads its raw rows from the slowest aggregator's position once,
/// instead of every aggregator reading them for itself.
#[derive(Debug, Default)]
pub struct Standing(
    std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), crate::lake::Offsets>>,
);

impl Standing {
    pub fn set(&self, topic: &str, kpi: &'static str, positions: &crate::lake::Offsets) {
        if let Ok(mut m) = self.0.lock() {
            m.insert((topic.to_string(), kpi), positions.clone());
        }
    }

    /// The lowest position of `partition` among the aggregators of `topic`; `None` unless
    /// all `kpis` of them have one.
    pub fn lowest(&self, topic: &str, partition: i32, kpis: &[&'static str]) -> Option<i64> {
        let m = self.0.lock().ok()?;
        kpis.iter()
            .map(|k| m.get(&(topic.to_string(), *k))?.get(&partition).copied())
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .min()
    }
}

impl RollupSlots {
    pub fn new(kpis: &[&'static dyn Kpi]) -> Self {
        RollupSlots {
            kpis: kpis
                .iter()
                .map(|k| (*k, Arc::new(Slot::default())))
                .collect(),
            detector: Arc::new(Slot::default()),
            partials: Arc::new(Slot::default()),
            source: Arc::default(),
            commits: CommitFeed::default(),
            standing: Arc::default(),
        }
    }

    /// Who must receive the committed batches a consumer of a topic of `kind` commits.
    pub fn subscribers(&self, kind: EventKind) -> Subscribers {
        let mut s = self.kpi_subscribers(kind);
        s.slots.push(self.detector.clone());
        s.slots.push(self.partials.clone());
        s
    }

    /// The aggregators of the KPIs reading `kind`.
    pub fn kpi_subscribers(&self, kind: EventKind) -> Subscribers {
        self.with(
            self.kpis
                .iter()
                .filter(|(k, _)| k.inputs().contains(&kind))
                .map(|(_, s)| s.clone())
                .collect(),
        )
    }

    pub fn detector_subscribers(&self) -> Subscribers {
        self.with(vec![self.detector.clone()])
    }

    fn with(&self, slots: Vec<Arc<Slot>>) -> Subscribers {
        Subscribers {
            slots,
            source: self.source.clone(),
            commits: self.commits.clone(),
        }
    }

    fn slot(&self, kpi: &dyn Kpi) -> Option<Arc<Slot>> {
        self.kpis
            .iter()
            .find(|(k, _)| k.name() == kpi.name())
            .map(|(_, s)| s.clone())
    }
}

#[derive(Clone, Debug)]
pub struct RollupParams {
    pub lake: Lake,
    /// Topic names for orders, clicks, errors.
    pub topics: [String; 3],
    /// The KPIs to run (from the registry) with their configured windows.
    pub kpis: Vec<(&'static dyn Kpi, EngineParams)>,
    pub rules: RuleSet,
    pub hygiene: HygieneParams,
    pub metrics: Metrics,
    pub supervision: SupervisionParams,
    pub faults: Arc<Faults>,
    /// How often watermarks are advanced by the processing clock.
    pub tick: Duration,
    /// The detector records its state at least this often while it changes.
    pub checkpoint_every: Duration,
    pub slots: RollupSlots,
    /// Where committed alerts are also sent (grouped), if configured.
    pub webhook: Option<webhook::Webhook>,
    /// How alerts group into pages.
    pub grouping: GroupParams,
    /// Whether this instance computes the rollup tables (the group stands by otherwise).
    pub ownership: Ownership,
    /// The broker, for partitions other instances consume (read from the lake by the
    /// [`feed`]); `None` when nobody else can consume (tests, replays).
    pub broker: Option<Arc<dyn BrokerView>>,
    /// Where aggregators push provisional values of their open windows (the live page).
    pub live: Option<live::Live>,
}

impl RollupParams {
    pub fn topic(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::Orders => &self.topics[0],
            EventKind::Clicks => &self.topics[1],
            EventKind::Errors => &self.topics[2],
        }
    }

    /// Engine parameters of the KPI writing `table`.
    pub fn kpi(&self, table: &str) -> Option<EngineParams> {
        self.kpis
            .iter()
            .find(|(k, _)| k.table() == table)
            .map(|(_, e)| *e)
    }
}

/// Create every table the rollup actors read and write, unless it exists. Each instance does
/// it at start (readers query the KPI tables before any owner computed them), and the group
/// again before it starts reading.
pub async fn ensure_tables(p: &RollupParams) -> Result<(), Error> {
    let specs: Vec<_> = crate::tables::all()
        .iter()
        .map(crate::tables::Table::spec)
        .collect();
    // Every existing table is checked before any is changed: a table that cannot be adopted
    // stops start-up with the lake as it was.
    // A table that cannot be adopted stays so (stop); a catalog that cannot be reached now
    // may be back on the next try (restart).
    p.lake.check_existing(&specs).await.map_err(|e| {
        if e.downcast_ref::<crate::lake::adopt::AdoptError>().is_some() {
            Error::Unrecoverable(format!("{e:#}"))
        } else {
            Error::Transient(format!("checking the tables: {e:#}"))
        }
    })?;
    // Every table there is (dead letters included: a reader of them must not fail either).
    for spec in specs {
        p.lake
            .ensure_table(&spec)
            .await
            .map_err(|e| Error::Transient(format!("creating table {}: {e:#}", spec.name)))?;
    }
    Ok(())
}

/// The rollup group: the detector first (it must be there before aggregators report closed
/// windows), then one aggregator per KPI.
pub struct RollupGroup(pub RollupParams);

#[async_trait::async_trait]
impl ChildSpecs for RollupGroup {
    async fn spawn(&self, s: &mut Spawner) -> Result<(), Error> {
        let p = &self.0;
        ensure_tables(p).await?;
        contest::stand_aside_if_contested(p).await?;
        let detector = s
            .spawn(DETECTOR, DetectorActor, |progress| DetectorArgs {
                params: p.clone(),
                slot: p.slots.detector.clone(),
                progress,
            })
            .await?;
        for (kpi, engine) in &p.kpis {
            let Some(slot) = p.slots.slot(*kpi) else {
                return Err(Error::Transient(format!("no slot for KPI {}", kpi.name())));
            };
            s.spawn(kpi.name(), AggregatorActor, |progress| AggregatorArgs {
                kpi: *kpi,
                engine: *engine,
                params: p.clone(),
                slot,
                detector: Some(detector.clone()),
                progress,
            })
            .await?;
        }
        // Last: it delivers to the slots the actors above have taken.
        if let Some(broker) = &p.broker {
            s.spawn(feed::FEED, feed::Feed, |progress| feed::FeedArgs {
                params: p.clone(),
                broker: broker.clone(),
                progress,
            })
            .await?;
        }
        Ok(())
    }

    /// Another instance owns the rollup tables.
    fn standby(&self) -> bool {
        !self.0.ownership.is_owner()
    }

    fn step_down(&self) -> bool {
        self.0.ownership.step_down()
    }

    /// Another instance must own the rollup tables now: this one cannot compute them.
    fn failed(&self) {
        self.0.ownership.resign();
    }

    /// Open windows are rebuilt from the lake on the next start; what matters is that
    /// deliveries already queued (FATAL errors above all) are handled: aggregators first (they
    /// may send closed windows to the detector), then the detector.
    async fn drain(&self, children: &[ChildInfo]) {
        let (detector, aggregators): (Vec<_>, Vec<_>) = children
            .iter()
            .filter(|c| c.role != feed::FEED)
            .partition(|c| c.role == DETECTOR);
        for child in aggregators.into_iter().chain(detector) {
            let actor: ractor::ActorRef<RollupMsg> = child.cell.clone().into();
            let _ = ractor::call_t!(actor, RollupMsg::Sync, 10_000);
        }
    }
}
