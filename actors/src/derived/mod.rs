//! The derived side of the pipeline: window aggregators (one per KPI table) and the alert
//! detector, under one supervisor. They read what the consumers committed; any failure
//! restarts the set, which rebuilds itself from the lake (raw tables and checkpoints).

pub mod aggregator;
pub mod detector;
pub mod input;
pub mod kpi;
pub mod messages;
pub mod slots;
pub mod source;
pub mod supervisor;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use crate::alerts::AlertRules;
use crate::events::EventKind;
use crate::lake::{HygieneParams, Lake};
use crate::pipeline::SupervisionParams;
use crate::telemetry::Metrics;
use crate::windows::EngineParams;
pub use kpi::KpiKind;
use slots::{Slot, Subscribers};

/// One slot per derived actor, created once so consumers keep them across restarts.
#[derive(Clone, Debug)]
pub struct DerivedSlots {
    pub kpis: Vec<(KpiKind, Arc<Slot>)>,
    pub detector: Arc<Slot>,
    /// What the consumers confirmed they have delivered (idleness needs it).
    pub source: Arc<source::SourceProgress>,
}

impl DerivedSlots {
    pub fn new(kpis: &[KpiKind]) -> Self {
        DerivedSlots {
            kpis: kpis
                .iter()
                .map(|k| (*k, Arc::new(Slot::default())))
                .collect(),
            detector: Arc::new(Slot::default()),
            source: Arc::default(),
        }
    }

    /// Who must receive the committed batches of a topic of `kind`.
    pub fn subscribers(&self, kind: EventKind) -> Subscribers {
        let mut v: Vec<Arc<Slot>> = self
            .kpis
            .iter()
            .filter(|(k, _)| k.inputs().contains(&kind))
            .map(|(_, s)| s.clone())
            .collect();
        v.push(self.detector.clone());
        Subscribers(v, self.source.clone())
    }
}

#[derive(Clone, Debug)]
pub struct DerivedParams {
    pub lake: Lake,
    /// Topic names for orders, clicks, errors.
    pub topics: [String; 3],
    pub kpis: Vec<(KpiKind, EngineParams)>,
    pub rules: AlertRules,
    pub hygiene: HygieneParams,
    pub metrics: Metrics,
    pub supervision: SupervisionParams,
    /// How often watermarks are advanced by the processing clock.
    pub tick: Duration,
    /// The detector records its state at least this often while it changes.
    pub checkpoint_every: Duration,
    pub slots: DerivedSlots,
    /// Where committed alerts are also sent, if configured.
    pub webhook: Option<webhook::Webhook>,
}

impl DerivedParams {
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
