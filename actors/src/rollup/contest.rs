//! Two instances that both believe they own the rollup tables (a broker that hands the
//! election's partition to both, seen on Tansu under load). The checkpoint chains keep it exact:
//! the commit that comes second is refused and its instance steps down. But the group may go on
//! telling it that it owns, and taking over at once deposed the other in turn, round after
//! round, each new owner rebuilding every open window from the raw tables. So for a while
//! after a step-down a start first looks at the chains: while another process keeps moving
//! them, this instance stands aside (without asking the group again) and looks once more later.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use super::RollupParams;
use crate::error::Error;
use crate::lake::commit::chain::{recorded_chain, this_writer, ChainState};
use crate::lake::CommitError;

/// How long to stand aside before looking at the chains again.
pub const STAND_ASIDE: Duration = Duration::from_secs(10);

/// Where the chains stand (a fingerprint) and whether another process wrote the newest link
/// of any of them.
pub fn look(chains: &[(&str, ChainState)], me: &str) -> (u64, bool) {
    let mut h = DefaultHasher::new();
    let mut others = false;
    for (table, c) in chains {
        (table, c.seq, &c.commit_id).hash(&mut h);
        others |= c.seq > 0 && c.writer != me;
    }
    (h.finish(), others)
}

/// Stand aside when another process wrote a newest link and the chains moved since the last
/// look (or there was none): someone else is committing them now.
pub fn stand_aside(others: bool, now: u64, last: Option<u64>) -> bool {
    others && last != Some(now)
}

/// Before the rollup group starts: stand aside while contested and another instance commits.
pub async fn stand_aside_if_contested(p: &RollupParams) -> Result<(), Error> {
    if !p.ownership.contested() {
        return Ok(());
    }
    let mut names: Vec<&'static str> = p.kpis.iter().map(|(k, _)| k.table()).collect();
    names.push(crate::alerts::TABLE);
    let mut chains = Vec::with_capacity(names.len());
    for name in names {
        let table = p
            .lake
            .catalog
            .load_unpinned(&p.lake.ident(name))
            .await
            .map_err(Error::iceberg(format!("loading {name}")))?;
        let chain = recorded_chain(&table).map_err(|source| {
            Error::Commit(CommitError::CorruptOffsets {
                table: name.to_string(),
                source,
            })
        })?;
        chains.push((name, chain));
    }
    let (now, others) = look(&chains, this_writer());
    let last = p.ownership.saw_chains(now);
    if !stand_aside(others, now, last) {
        return Ok(());
    }
    p.ownership.yield_for(STAND_ASIDE);
    Err(Error::Commit(CommitError::Deposed {
        table: "rollup tables".into(),
        detail: format!(
            "another instance is still committing them; standing aside for {} s",
            STAND_ASIDE.as_secs()
        ),
        by_this_process: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(seq: u64, id: &str, writer: &str) -> ChainState {
        ChainState {
            seq,
            commit_id: id.into(),
            writer: writer.into(),
            state: serde_json::Value::Null,
        }
    }

    #[test]
    fn stands_aside_only_while_another_process_moves_the_chains() {
        let (me, other) = ("me", "other");
        let mine = [("a", link(4, "x", me)), ("b", link(2, "y", me))];
        let (fp, others) = look(&mine, me);
        assert!(!others, "all newest links ours");
        assert!(!stand_aside(others, fp, None));
        let theirs = [("a", link(5, "z", other)), ("b", link(2, "y", me))];
        let (fp1, others) = look(&theirs, me);
        assert!(others);
        assert!(
            stand_aside(others, fp1, None),
            "first look: they wrote last"
        );
        assert!(
            stand_aside(others, fp1, Some(fp)),
            "moved since the last look"
        );
        assert!(
            !stand_aside(others, fp1, Some(fp1)),
            "unchanged since the last look: the other one stopped; take over"
        );
        let empty = [("a", link(0, "", ""))];
        assert!(!look(&empty, me).1, "a table nobody committed yet");
        // A link from before writers were named is another's.
        assert!(look(&[("a", link(3, "q", ""))], me).1);
    }
}
