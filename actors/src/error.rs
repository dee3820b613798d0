//! The one error of the pipeline crate. Its [`Kind`] decides what happens, never its text:
//! a transient failure restarts the actor's group after a backoff (within the restart budget),
//! a fatal one stops the group and `/readyz` says why, a bad record goes to the dead letters.

use std::sync::Arc;

use crate::events::Rejection;
use crate::lake::commit::CommitError;
use crate::lake::io::scan::ScanError;

/// What a failure means for the pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Retry: the group restarts from the lake after a backoff, within its budget.
    Transient,
    /// No restart can fix it (offsets fenced, the broker behind the lake): the group stops.
    Fatal,
    /// One record cannot be handled: it goes to the dead letters, nothing else stops.
    BadRecord,
    /// Another instance committed the group's state (two believed they owned the rollup
    /// tables): this one steps down and asks the election again, without charging the budget.
    Deposed,
}

impl Kind {
    /// The restart reason label (`shopwatch_actor_restarts_total{reason}`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transient => "error",
            Kind::Fatal => "fatal",
            Kind::BadRecord => "bad_record",
            Kind::Deposed => "deposed",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("{context}: {source}")]
    Iceberg {
        context: String,
        source: iceberg::Error,
    },
    #[error("kafka: {context}: {source}")]
    Kafka {
        context: String,
        source: rdkafka::error::KafkaError,
    },
    /// The lake and the source disagree in a way a restart cannot fix.
    #[error("{0}")]
    Unrecoverable(String),
    /// A recorded checkpoint or offset map cannot be read back.
    #[error("{0}")]
    Corrupt(String),
    /// Something that a retry may fix (a timeout, an actor that went away).
    #[error("{0}")]
    Transient(String),
    /// One record that cannot be handled.
    #[error("record {partition}/{offset}: {}: {}", rejection.reason.as_str(), rejection.detail)]
    BadRecord {
        partition: i32,
        offset: i64,
        rejection: Rejection,
    },
    /// A fault injected by a test or drill, of the kind it asked for.
    #[error(transparent)]
    Injected(#[from] crate::faults::Injected),
    /// The failure of an actor we called (by its role), shared with its supervisor: its kind
    /// is the cause's, and the supervisor blames that actor, not the caller.
    #[error("{actor}: {source}")]
    Downstream {
        actor: &'static str,
        source: Arc<Error>,
    },
}

impl Error {
    pub fn kind(&self) -> Kind {
        match self {
            Error::Commit(e) if e.is_fatal() => Kind::Fatal,
            // Our own late commit is a stale worker, not another owner: restart, stay elected.
            Error::Commit(CommitError::Deposed {
                by_this_process: false,
                ..
            }) => Kind::Deposed,
            Error::Unrecoverable(_) | Error::Corrupt(_) => Kind::Fatal,
            Error::BadRecord { .. } => Kind::BadRecord,
            Error::Injected(i) if i.fatal => Kind::Fatal,
            Error::Injected(_) => Kind::Transient,
            Error::Downstream { source, .. } => source.kind(),
            Error::Commit(_)
            | Error::Scan(_)
            | Error::Iceberg { .. }
            | Error::Kafka { .. }
            | Error::Transient(_) => Kind::Transient,
        }
    }

    pub fn iceberg(context: impl Into<String>) -> impl FnOnce(iceberg::Error) -> Error {
        let context = context.into();
        move |source| Error::Iceberg { context, source }
    }

    pub fn kafka(context: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> Error {
        let context = context.into();
        move |source| Error::Kafka { context, source }
    }

    /// A failed call to another actor (timeout, gone): transient.
    pub fn call<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
        move |e| Error::Transient(format!("{what}: {e}"))
    }

    /// The actor whose failure this is, when it is not the one reporting it.
    pub fn blame(&self) -> Option<&'static str> {
        match self {
            Error::Downstream { actor, .. } => Some(actor),
            _ => None,
        }
    }

    /// The record a bad-record failure is about.
    pub fn record(&self) -> Option<(i32, i64)> {
        match self {
            Error::BadRecord {
                partition, offset, ..
            } => Some((*partition, *offset)),
            Error::Downstream { source, .. } => source.record(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How an actor's failure reached its supervisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The actor panicked (ractor hands us the panic message, not a typed error).
    Panic(String),
    /// The actor returned one of our errors.
    Error {
        kind: Kind,
        record: Option<(i32, i64)>,
        /// The actor at fault, when another one reported it (a caller of a failed committer).
        blame: Option<&'static str>,
        text: String,
    },
}

impl Failure {
    /// Classify what ractor reports: a typed error is ours, anything else is a caught panic,
    /// because every handler returns [`Error`] (the compiler sees to it through `Handled`).
    pub fn of(err: &(dyn std::error::Error + Send + Sync + 'static)) -> Failure {
        match err.downcast_ref::<Error>() {
            Some(e) => Failure::Error {
                kind: e.kind(),
                record: e.record(),
                blame: e.blame(),
                text: e.to_string(),
            },
            None => Failure::Panic(err.to_string()),
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Panic(_) => "panic",
            Failure::Error { kind, .. } => kind.as_str(),
        }
    }

    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Failure::Error {
                kind: Kind::Fatal,
                ..
            }
        )
    }

    pub fn text(&self) -> &str {
        match self {
            Failure::Panic(t) => t,
            Failure::Error { text, .. } => text,
        }
    }
}

/// What every handler of ours returns; `into_actor` turns it into ractor's boxed error, so
/// a supervisor can always downcast a failure back to [`Error`].
pub type Handled = Result<(), Error>;

pub fn into_actor<T>(r: Result<T, Error>) -> Result<T, ractor::ActorProcessingErr> {
    r.map_err(|e| Box::new(e) as ractor::ActorProcessingErr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::DeadLetterReason;

    #[test]
    fn the_kind_decides_and_survives_boxing() {
        let cases: Vec<(Error, Kind, &str)> = vec![
            (Error::Transient("timeout".into()), Kind::Transient, "error"),
            (
                Error::Unrecoverable("broker recreated".into()),
                Kind::Fatal,
                "fatal",
            ),
            (
                Error::BadRecord {
                    partition: 1,
                    offset: 7,
                    rejection: Rejection {
                        reason: DeadLetterReason::HandlerFailure,
                        detail: "x".into(),
                    },
                },
                Kind::BadRecord,
                "bad_record",
            ),
            (
                Error::Downstream {
                    actor: "raw_committer",
                    source: Arc::new(Error::Corrupt("bad offsets".into())),
                },
                Kind::Fatal,
                "fatal",
            ),
            (
                Error::Injected(crate::faults::Injected {
                    at: "consumer.record".into(),
                    fatal: false,
                    timeout_ms: None,
                }),
                Kind::Transient,
                "error",
            ),
            (
                Error::Injected(crate::faults::Injected {
                    at: "detector (actor.handler)".into(),
                    fatal: true,
                    timeout_ms: None,
                }),
                Kind::Fatal,
                "fatal",
            ),
            (
                Error::Commit(CommitError::Deposed {
                    table: "alerts".into(),
                    detail: "rollup state is at seq 9".into(),
                    by_this_process: false,
                }),
                Kind::Deposed,
                "deposed",
            ),
            (
                Error::Commit(CommitError::Deposed {
                    table: "alerts".into(),
                    detail: "rollup state is at seq 9".into(),
                    by_this_process: true,
                }),
                Kind::Transient,
                "error",
            ),
        ];
        for (e, kind, reason) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            let boxed: ractor::ActorProcessingErr = Box::new(e);
            let f = Failure::of(boxed.as_ref());
            assert_eq!(f.reason(), reason);
            assert_eq!(f.is_fatal(), kind == Kind::Fatal);
        }
        let panic: ractor::ActorProcessingErr = From::from("injected panic at consumer");
        assert_eq!(Failure::of(panic.as_ref()).reason(), "panic");
    }
}
