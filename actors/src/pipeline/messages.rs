//! Typed messages between a topic pipeline's actors.

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::error::Error;
use crate::lake::{CommitReport, Recorded, TableBatch};

pub enum ConsumerMsg {
    /// Poll one batch, hand it to the committers, then poll again (self-sent loop).
    Poll,
}

/// A committer's answer: the failure is shared with its supervisor, so the caller sees the
/// same typed error (and kind) the supervisor acts on.
pub type Reply<T> = Result<T, Arc<Error>>;

pub enum CommitterMsg {
    /// Commit a batch; the reply is the bounded hand-off: the consumer polls again only after it.
    Commit(TableBatch, RpcReplyPort<Reply<CommitReport>>),
    /// What this table has recorded for a topic (offsets, and where dead letters may be
    /// missing from).
    Recorded(String, RpcReplyPort<Reply<Recorded>>),
    /// Timer: a maintenance round if this table landed nothing here for a while.
    Maintain,
}
