//! Typed messages between the pipeline's actors.

use ractor::RpcReplyPort;

use crate::lake::{CommitReport, Offsets, TableBatch};

pub enum ConsumerMsg {
    /// Poll one batch, hand it to the committers, then poll again (self-sent loop).
    Poll,
}

pub enum CommitterMsg {
    /// Commit a batch; the reply is the bounded hand-off: the consumer polls again only after it.
    Commit(TableBatch, RpcReplyPort<Result<CommitReport, String>>),
    /// Offsets this table has recorded for a topic.
    Offsets(String, RpcReplyPort<Result<Offsets, String>>),
}

pub enum SupervisorMsg {
    /// Heartbeat check of the children.
    Tick,
    /// Respawn the children of this generation after a backoff.
    Restart { generation: u64 },
    /// Stop consuming, commit what is in flight, then reply.
    Drain(RpcReplyPort<()>),
}
