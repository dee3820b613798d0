//! Exactly-once for rollup tables (KPIs, alerts). A rollup table records, in the same commit
//! as its rows, a numbered state: what it has emitted and from which source offsets its open
//! state can be rebuilt. A commit lands only on top of the state it was computed from.

use std::sync::OnceLock;

use iceberg::table::Table;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::offsets::LedgerError;

/// Outcome of comparing a rollup table's recorded chain with the link we computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The table is at the state we computed from: append.
    Commit,
    /// Our own link is there: an earlier attempt landed.
    AlreadyCommitted,
    /// Anything else: another writer (the owner that replaced us, or one we replaced while we
    /// were frozen) moved the chain. Never retried as is: the state is rebuilt from the lake.
    Fenced { detail: String, by: Mover },
}

/// Who moved a chain under us. An earlier worker of this same process (killed, its commit
/// landing late) is not another owner: the election has nothing to do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mover {
    ThisProcess,
    /// Another process, or a link written before links named their writer.
    Another,
}

// The key predates the name "rollup"; tables already carry it, so it stays.
pub const CHAIN_KEY: &str = "shopwatch.derived-state";

/// What a rollup table has recorded. `state` is the owner's (aggregator or detector) JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainState {
    pub seq: u64,
    pub commit_id: String,
    /// The process that wrote the link ([`this_writer`]); empty in links written before it
    /// was recorded.
    #[serde(default)]
    pub writer: String,
    pub state: serde_json::Value,
}

/// This process's name as a chain writer, fixed for its lifetime.
pub fn this_writer() -> &'static str {
    static WRITER: OnceLock<String> = OnceLock::new();
    WRITER.get_or_init(|| Uuid::now_v7().to_string())
}

pub fn recorded_chain(table: &Table) -> Result<ChainState, LedgerError> {
    match table.metadata().properties().get(CHAIN_KEY) {
        None => Ok(ChainState::default()),
        Some(text) => serde_json::from_str(text).map_err(|e| LedgerError::Unreadable {
            key: CHAIN_KEY.to_string(),
            detail: e.to_string(),
        }),
    }
}

/// Commit when the table is still at the state we computed from; recognise our own landed
/// commit (an unknown outcome that succeeded); anything else means another writer moved it.
pub fn decide_chain(
    recorded: &ChainState,
    expected_seq: u64,
    commit_id: &str,
    writer: &str,
) -> Decision {
    if recorded.seq == expected_seq {
        Decision::Commit
    } else if recorded.seq == expected_seq + 1 && recorded.commit_id == commit_id {
        Decision::AlreadyCommitted
    } else {
        let by = if !recorded.writer.is_empty() && recorded.writer == writer {
            Mover::ThisProcess
        } else {
            Mover::Another
        };
        Decision::Fenced {
            detail: format!(
                "rollup state is at seq {} (commit {}), expected {expected_seq}",
                recorded.seq, recorded.commit_id
            ),
            by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_decision_table() {
        let at = |seq, id: &str, writer: &str| ChainState {
            seq,
            commit_id: id.into(),
            writer: writer.into(),
            state: serde_json::Value::Null,
        };
        let by = |d: Decision| match d {
            Decision::Fenced { by, .. } => Some(by),
            _ => None,
        };
        let (me, other) = ("w1", "w2");
        assert_eq!(decide_chain(&at(0, "", ""), 0, "a", me), Decision::Commit);
        assert_eq!(
            decide_chain(&at(4, "x", other), 4, "a", me),
            Decision::Commit
        );
        assert_eq!(
            decide_chain(&at(5, "a", me), 4, "a", me),
            Decision::AlreadyCommitted
        );
        // Moved by another process: deposed.
        assert_eq!(
            by(decide_chain(&at(5, "b", other), 4, "a", me)),
            Some(Mover::Another)
        );
        assert_eq!(
            by(decide_chain(&at(3, "a", other), 4, "a", me)),
            Some(Mover::Another)
        );
        // Moved by an earlier worker of this process: fenced, but nobody else owns.
        assert_eq!(
            by(decide_chain(&at(5, "b", me), 4, "a", me)),
            Some(Mover::ThisProcess)
        );
        assert_eq!(
            by(decide_chain(&at(7, "a", me), 4, "a", me)),
            Some(Mover::ThisProcess)
        );
        // A link from before writers were named counts as another's (the cautious reading).
        assert_eq!(
            by(decide_chain(&at(5, "b", ""), 4, "a", "")),
            Some(Mover::Another)
        );
    }

    #[test]
    fn links_written_before_writers_were_named_still_read() {
        let old = r#"{"seq":3,"commit_id":"c","state":{"k":1}}"#;
        let s: ChainState = serde_json::from_str(old).unwrap();
        assert_eq!((s.seq, s.writer.as_str()), (3, ""));
        assert!(!this_writer().is_empty());
        assert_eq!(this_writer(), this_writer(), "fixed for the process");
    }
}
