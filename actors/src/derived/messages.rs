//! Typed messages of the derived actors.

use std::sync::Arc;

use crate::events::{EventKind, Micros};
use crate::lake::Ranges;
use crate::schema::derived::DerivedRows;
use crate::schema::Rows;

/// A batch the raw table has committed, shared by every subscriber.
#[derive(Debug)]
pub struct Delivery {
    pub topic: String,
    pub kind: EventKind,
    pub ranges: Ranges,
    pub rows: Arc<Rows>,
}

/// Windows an aggregator has durably committed, for the detector.
#[derive(Clone, Debug)]
pub struct Closed {
    pub table: &'static str,
    /// Every window ending at or before this is final (empty ones count as zero).
    pub until: Micros,
    pub rows: DerivedRows,
}

pub enum DerivedMsg {
    Ingest(Arc<Delivery>),
    Closed(Closed),
    Tick,
    /// Answered once everything queued before it has been handled (used when stopping).
    Sync(ractor::RpcReplyPort<()>),
}
