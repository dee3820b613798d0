//! Exactly-once for rollup tables (KPIs, alerts). A rollup table records, in the same commit
//! as its rows, a numbered state: what it has emitted and from which source offsets its open
//! state can be rebuilt. A commit lands only on top of the state it was computed from.

use iceberg::table::Table;
use serde::{Deserialize, Serialize};

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
    Fenced(String),
}

// The key predates the name "rollup"; tables already carry it, so it stays.
pub const CHAIN_KEY: &str = "shopwatch.derived-state";

/// What a rollup table has recorded. `state` is the owner's (aggregator or detector) JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainState {
    pub seq: u64,
    pub commit_id: String,
    pub state: serde_json::Value,
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
pub fn decide_chain(recorded: &ChainState, expected_seq: u64, commit_id: &str) -> Decision {
    if recorded.seq == expected_seq {
        Decision::Commit
    } else if recorded.seq == expected_seq + 1 && recorded.commit_id == commit_id {
        Decision::AlreadyCommitted
    } else {
        Decision::Fenced(format!(
            "rollup state is at seq {} (commit {}), expected {expected_seq}",
            recorded.seq, recorded.commit_id
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_decision_table() {
        let at = |seq, id: &str| ChainState {
            seq,
            commit_id: id.into(),
            state: serde_json::Value::Null,
        };
        assert_eq!(decide_chain(&at(0, ""), 0, "a"), Decision::Commit);
        assert_eq!(decide_chain(&at(4, "x"), 4, "a"), Decision::Commit);
        assert_eq!(
            decide_chain(&at(5, "a"), 4, "a"),
            Decision::AlreadyCommitted
        );
        assert!(matches!(
            decide_chain(&at(5, "b"), 4, "a"),
            Decision::Fenced(_)
        ));
        assert!(matches!(
            decide_chain(&at(3, "a"), 4, "a"),
            Decision::Fenced(_)
        ));
        assert!(matches!(
            decide_chain(&at(7, "a"), 4, "a"),
            Decision::Fenced(_)
        ));
    }
}
