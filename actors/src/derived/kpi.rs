//! The four KPIs as one type the aggregator actor can hold: definition, engine and rows.

use crate::events::{EventKind, Micros};
use crate::schema::derived::{self, DerivedRows};
use crate::schema::{Rows, TableSpec};
use crate::windows::{
    Engine, EngineParams, ErrorsAcc, Fact, Fold, Input, OrdersAcc, TrafficAcc, UsersAcc,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KpiKind {
    OrdersRevenue,
    ActiveUsers,
    Errors,
    Traffic,
}

impl KpiKind {
    pub const ALL: [KpiKind; 4] = [
        KpiKind::OrdersRevenue,
        KpiKind::ActiveUsers,
        KpiKind::Errors,
        KpiKind::Traffic,
    ];

    pub fn table(self) -> &'static str {
        match self {
            KpiKind::OrdersRevenue => derived::ORDERS_REVENUE_TABLE,
            KpiKind::ActiveUsers => derived::ACTIVE_USERS_TABLE,
            KpiKind::Errors => derived::ERRORS_TABLE,
            KpiKind::Traffic => derived::TRAFFIC_TABLE,
        }
    }

    /// Config section name.
    pub fn key(self) -> &'static str {
        match self {
            KpiKind::OrdersRevenue => "orders_revenue",
            KpiKind::ActiveUsers => "active_users",
            KpiKind::Errors => "errors",
            KpiKind::Traffic => "traffic",
        }
    }

    pub fn spec(self) -> TableSpec {
        match self {
            KpiKind::OrdersRevenue => derived::orders_revenue_spec(),
            KpiKind::ActiveUsers => derived::active_users_spec(),
            KpiKind::Errors => derived::errors_spec(),
            KpiKind::Traffic => derived::traffic_spec(),
        }
    }

    /// The topics (by kind) this KPI reads, in input order.
    pub fn inputs(self) -> &'static [EventKind] {
        match self {
            KpiKind::OrdersRevenue => &[EventKind::Orders],
            KpiKind::ActiveUsers => &[EventKind::Clicks],
            KpiKind::Errors => &[EventKind::Errors],
            KpiKind::Traffic => &[EventKind::Orders, EventKind::Clicks, EventKind::Errors],
        }
    }

    /// The KPI that counts late and skewed events for a topic (each event is counted once).
    pub fn primary_for(kind: EventKind) -> KpiKind {
        match kind {
            EventKind::Orders => KpiKind::OrdersRevenue,
            EventKind::Clicks => KpiKind::ActiveUsers,
            EventKind::Errors => KpiKind::Errors,
        }
    }
}

pub enum AnyEngine {
    Orders(Engine<OrdersAcc>),
    Users(Engine<UsersAcc>),
    Errors(Engine<ErrorsAcc>),
    Traffic(Engine<TrafficAcc>),
}

/// Counts from folding one batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldStats {
    pub folded: u64,
    pub late: u64,
    pub dropped: u64,
    pub skewed: u64,
}

macro_rules! each {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            AnyEngine::Orders($e) => $body,
            AnyEngine::Users($e) => $body,
            AnyEngine::Errors($e) => $body,
            AnyEngine::Traffic($e) => $body,
        }
    };
}

impl AnyEngine {
    pub fn new(kind: KpiKind, params: EngineParams) -> Self {
        let n = kind.inputs().len();
        match kind {
            KpiKind::OrdersRevenue => AnyEngine::Orders(Engine::new(params, n)),
            KpiKind::ActiveUsers => AnyEngine::Users(Engine::new(params, n)),
            KpiKind::Errors => AnyEngine::Errors(Engine::new(params, n)),
            KpiKind::Traffic => AnyEngine::Traffic(Engine::new(params, n)),
        }
    }

    pub fn restore(&mut self, emitted_until: Option<Micros>, watermark: Option<Micros>) {
        each!(self, e => e.restore(emitted_until, watermark))
    }
    pub fn emitted_until(&self) -> Option<Micros> {
        each!(self, e => e.emitted_until())
    }
    pub fn watermark(&self) -> Option<Micros> {
        each!(self, e => e.watermark())
    }
    pub fn replay_offsets(&self) -> std::collections::BTreeMap<(usize, i32), i64> {
        each!(self, e => e.replay_offsets())
    }
    pub fn params(&self) -> EngineParams {
        each!(self, e => e.params())
    }

    /// Fold the rows of `rows` (from input `topic`) whose offset passes `keep`.
    pub fn fold_rows(
        &mut self,
        topic: usize,
        rows: &Rows,
        now: Micros,
        keep: impl Fn(i32, i64) -> bool,
    ) -> FoldStats {
        let mut stats = FoldStats::default();
        let mut one = |partition, offset, event_time, ingested_at, fact| {
            if !keep(partition, offset) {
                return;
            }
            let input = Input {
                topic,
                partition,
                offset,
                event_time,
                ingested_at,
                fact,
            };
            match each!(self, e => e.fold(&input, now)) {
                Fold::OnTime => stats.folded += 1,
                Fold::Late => {
                    stats.folded += 1;
                    stats.late += 1
                }
                Fold::Dropped => {
                    stats.late += 1;
                    stats.dropped += 1
                }
                Fold::Skewed => stats.skewed += 1,
            }
        };
        match rows {
            Rows::Orders(v) => {
                for (s, o) in v {
                    let total = f64::from(o.quantity) * o.price;
                    one(
                        s.partition,
                        s.offset,
                        o.order_ts,
                        s.ingested_at,
                        Fact::Order { total },
                    );
                }
            }
            Rows::Clicks(v) => {
                for (s, c) in v {
                    one(
                        s.partition,
                        s.offset,
                        c.click_ts,
                        s.ingested_at,
                        Fact::Click {
                            user_id: &c.user_id,
                        },
                    );
                }
            }
            Rows::Errors(v) => {
                for (s, e) in v {
                    let fact = Fact::Error {
                        service: &e.service_name,
                        severity: e.severity,
                    };
                    one(s.partition, s.offset, e.error_ts, s.ingested_at, fact);
                }
            }
            Rows::DeadLetters(_) => {}
        }
        stats
    }

    /// Close what the watermark passed: (until, rows of the closed windows).
    pub fn advance(
        &mut self,
        now: Micros,
        source: &dyn crate::windows::clock::Drained,
    ) -> Option<(Micros, DerivedRows)> {
        fn flat<R>(windows: Vec<(Micros, Micros, Vec<R>)>) -> Vec<R> {
            windows.into_iter().flat_map(|(_, _, r)| r).collect()
        }
        Some(match self {
            AnyEngine::Orders(e) => e
                .advance_with(now, source)
                .map(|em| (em.until, DerivedRows::Orders(flat(em.windows))))?,
            AnyEngine::Users(e) => e
                .advance_with(now, source)
                .map(|em| (em.until, DerivedRows::Users(flat(em.windows))))?,
            AnyEngine::Errors(e) => e
                .advance_with(now, source)
                .map(|em| (em.until, DerivedRows::Errors(flat(em.windows))))?,
            AnyEngine::Traffic(e) => e
                .advance_with(now, source)
                .map(|em| (em.until, DerivedRows::Traffic(flat(em.windows))))?,
        })
    }

    /// Running values of open windows (provisional).
    pub fn open_rows(&self) -> DerivedRows {
        fn flat<R>(windows: Vec<(Micros, Micros, Vec<R>)>) -> Vec<R> {
            windows.into_iter().flat_map(|(_, _, r)| r).collect()
        }
        match self {
            AnyEngine::Orders(e) => DerivedRows::Orders(flat(e.open_windows())),
            AnyEngine::Users(e) => DerivedRows::Users(flat(e.open_windows())),
            AnyEngine::Errors(e) => DerivedRows::Errors(flat(e.open_windows())),
            AnyEngine::Traffic(e) => DerivedRows::Traffic(flat(e.open_windows())),
        }
    }
}
