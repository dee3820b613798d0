//! Typed messages of the rollup actors.

use std::sync::Arc;

use crate::alerts::ClosedWindows;
use crate::handoff::{Delivery, Preview};

pub enum RollupMsg {
    /// A batch the raw table committed.
    Ingest(Arc<Delivery>),
    /// A batch about to be committed: provisional values only.
    Preview(Preview),
    /// Time to push provisional values that a throttle held back.
    PushProvisional,
    /// Windows an aggregator has durably committed, for the detector.
    Closed(ClosedWindows),
    Tick,
    /// Answered once everything queued before it has been handled (used when stopping).
    Sync(ractor::RpcReplyPort<()>),
}

impl From<Arc<Delivery>> for RollupMsg {
    fn from(d: Arc<Delivery>) -> Self {
        RollupMsg::Ingest(d)
    }
}

impl From<Preview> for RollupMsg {
    fn from(p: Preview) -> Self {
        RollupMsg::Preview(p)
    }
}
