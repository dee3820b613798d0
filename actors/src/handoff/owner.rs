//! Whether this instance computes the rollup tables. With several instances exactly one does:
//! Kafka elects it (`pipeline::election`, a one-partition topic consumed in its own group:
//! whoever holds partition 0 owns). The election writes this handle; the rollup group reads
//! it (a group that does not own stands by) and `/readyz` shows it with the group's members.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

/// An instance in the election's group, as the broker describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub client_id: String,
    pub host: String,
    /// Holds the election's partition 0: computes the rollup tables.
    pub owner: bool,
}

#[derive(Debug, Default)]
struct State {
    held: bool,
    /// Ownership counts only until then: the election renews it on every poll, so a process
    /// that was frozen (SIGSTOP, a long pause) stops acting as owner before it learns it lost.
    lease_until: Option<Instant>,
    /// Times this instance became the owner.
    gained: u64,
    members: Vec<Member>,
    /// Why the member list is unknown, when it is.
    members_error: Option<String>,
    /// Another instance's heartbeat moved while this one did not own: someone else owns.
    other_owner_heard: bool,
    /// Another owner committed the rollup state while this one believed it owned: not the
    /// owner, whatever the group says, until the election has been asked again.
    deposed: bool,
    /// The rollup group failed here for good: never the owner again in this process.
    resigned: bool,
    /// Stepped down lately: two instances have believed they own, so a start first looks at
    /// whether another one is still committing (`rollup::contest`).
    contested_until: Option<Instant>,
    /// Standing aside while another instance commits the rollup tables (the group still says
    /// this one owns): not the owner before then, and no rejoin.
    yield_until: Option<Instant>,
    /// The rollup tables' chains as last looked at while contested.
    chains_seen: Option<u64>,
}

/// How long after a step-down a start looks at the chains before taking over.
const CONTESTED: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Clone, Debug, Default)]
pub struct Ownership {
    state: Arc<Mutex<State>>,
    /// No election: this process owns for good (tests, benches, tools reading one lake alone).
    solo: bool,
}

/// What `/readyz` shows.
#[derive(Clone, Debug, Serialize)]
pub struct OwnershipView {
    pub rollup_owner: bool,
    pub elected: bool,
    pub times_gained: u64,
    pub members: Vec<Member>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members_error: Option<String>,
}

impl Ownership {
    /// Always the owner, without an election.
    pub fn solo() -> Self {
        Ownership {
            state: Arc::default(),
            solo: true,
        }
    }

    /// Elected: not the owner until the election says so.
    pub fn elected() -> Self {
        Ownership::default()
    }

    /// The lake's maintenance follows ownership: the owner maintains, the others do not.
    pub fn maintainer(&self) -> crate::lake::maintenance::Maintainer {
        let me = self.clone();
        crate::lake::maintenance::Maintainer::when(move || me.maintains())
    }

    /// The owner maintains; so does an instance that resigned while no other owner has been
    /// heard since (alone, its raw tables would otherwise never be compacted again).
    pub fn maintains(&self) -> bool {
        self.is_owner()
            || self
                .state
                .lock()
                .map(|s| s.resigned && !s.other_owner_heard)
                .unwrap_or(false)
    }

    /// The only instance there is (no election): nobody else consumes.
    pub fn is_solo(&self) -> bool {
        self.solo
    }

    pub fn is_owner(&self) -> bool {
        if self.solo {
            return true;
        }
        let now = Instant::now();
        self.state
            .lock()
            .map(|s| {
                s.held
                    && s.lease_until.is_some_and(|t| now < t)
                    && s.yield_until.is_none_or(|t| now >= t)
            })
            .unwrap_or(false)
    }

    /// The election's verdict; `lease_until` bounds it in time. A deposed instance does not
    /// own on the verdict it had before stepping down.
    pub fn set(&self, held: bool, lease_until: Instant) {
        if let Ok(mut s) = self.state.lock() {
            let held = held && !s.deposed && !s.resigned;
            if held && !s.held {
                s.gained += 1;
            }
            s.held = held;
            s.lease_until = Some(lease_until);
        }
    }

    /// A rollup commit found another owner's commit on the state chain: two instances believed
    /// they owned (a broker that handed the election's partition to both, a verdict that lagged
    /// a rebalance). Stop owning now; the election rejoins (see [`Ownership::take_deposed`]), so
    /// the group forms anew instead of the two deposing each other at every commit. False when
    /// there is no election to step down from.
    /// While yielding ([`Ownership::yield_for`]) the group is not asked again: the refusal
    /// was ours, the group's verdict may well be right.
    pub fn step_down(&self) -> bool {
        if self.solo {
            return false;
        }
        let now = Instant::now();
        self.state
            .lock()
            .map(|mut s| {
                if s.yield_until.is_some_and(|t| now < t) {
                    return;
                }
                s.deposed = true;
                s.held = false;
                s.contested_until = Some(now + CONTESTED);
            })
            .is_ok()
    }

    /// Whether a step-down happened lately (see [`Ownership::step_down`]).
    pub fn contested(&self) -> bool {
        let now = Instant::now();
        self.state
            .lock()
            .map(|s| s.contested_until.is_some_and(|t| now < t))
            .unwrap_or(false)
    }

    /// Stand aside for `d` while another instance commits the rollup tables, without asking
    /// the group again (its verdict may hold; the other instance's may be the stale one).
    pub fn yield_for(&self, d: std::time::Duration) {
        if let Ok(mut s) = self.state.lock() {
            s.yield_until = Some(Instant::now() + d);
        }
    }

    /// Record how the rollup tables' chains look now; returns how they looked last time.
    pub fn saw_chains(&self, fingerprint: u64) -> Option<u64> {
        self.state
            .lock()
            .ok()
            .and_then(|mut s| s.chains_seen.replace(fingerprint))
    }

    /// For the election: whether this instance stepped down since it last asked. Clears it;
    /// the election rejoins the group, whose next verdict counts again.
    pub fn take_deposed(&self) -> bool {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut s.deposed))
            .unwrap_or(false)
    }

    /// The rollup group stopped here for good (an unrecoverable error, its restart budget
    /// spent): the election leaves the group, so that another instance owns the rollup tables
    /// rather than nobody computing them while this one holds the partition.
    pub fn resign(&self) {
        if self.solo {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            s.resigned = true;
            s.held = false;
            // From now on it means "another owner took over since": see `maintains`.
            s.other_owner_heard = false;
        }
    }

    /// For the election: leave the group for good.
    pub fn resigned(&self) -> bool {
        self.state.lock().map(|s| s.resigned).unwrap_or(false)
    }

    /// Another instance owns and is alive (its heartbeat moved).
    pub fn heard_other_owner(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.other_owner_heard = true;
        }
    }

    /// The election has a verdict worth starting on: this instance owns, or another one does.
    pub fn settled(&self) -> bool {
        self.is_owner()
            || self
                .state
                .lock()
                .map(|s| s.other_owner_heard)
                .unwrap_or(false)
    }

    /// The election is alive and its verdict stands until `lease_until`.
    pub fn renew(&self, lease_until: Instant) {
        if let Ok(mut s) = self.state.lock() {
            s.lease_until = Some(lease_until);
        }
    }

    pub fn set_members(&self, members: Result<Vec<Member>, String>) {
        if let Ok(mut s) = self.state.lock() {
            match members {
                Ok(m) => {
                    s.members = m;
                    s.members_error = None;
                }
                Err(e) => s.members_error = Some(e),
            }
        }
    }

    pub fn view(&self) -> OwnershipView {
        let owner = self.is_owner();
        let s = self
            .state
            .lock()
            .map(|s| (s.gained, s.members.clone(), s.members_error.clone()));
        let (gained, members, members_error) = s.unwrap_or_default();
        OwnershipView {
            rollup_owner: owner,
            elected: !self.solo,
            times_gained: gained,
            members,
            members_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ownership_needs_the_verdict_and_a_live_lease() {
        let o = Ownership::elected();
        assert!(!o.is_owner(), "nobody owns before the election");
        let later = Instant::now() + Duration::from_secs(60);
        o.set(true, later);
        assert!(o.is_owner());
        // A lease that ran out (the process was frozen): not the owner any more.
        o.renew(Instant::now() - Duration::from_millis(1));
        assert!(!o.is_owner());
        o.renew(later);
        assert!(o.is_owner());
        o.set(false, later);
        assert!(!o.is_owner());
        o.set(true, later);
        assert_eq!(o.view().times_gained, 2);
        assert!(Ownership::solo().is_owner());
    }

    #[test]
    fn settled_once_owner_or_another_owner_is_heard() {
        let o = Ownership::elected();
        o.set(false, Instant::now() + Duration::from_secs(60));
        assert!(!o.settled(), "a not-yet-assigned member has no verdict");
        o.heard_other_owner();
        assert!(o.settled() && !o.is_owner());
        let p = Ownership::elected();
        p.set(true, Instant::now() + Duration::from_secs(60));
        assert!(p.settled());
        assert!(Ownership::solo().settled());
    }

    #[test]
    fn a_deposed_owner_steps_down_until_the_election_is_asked_again() {
        let later = Instant::now() + Duration::from_secs(60);
        let o = Ownership::elected();
        o.set(true, later);
        assert!(o.step_down());
        assert!(!o.is_owner(), "deposed: not the owner at once");
        // The verdict from before the step-down (a poll already under way) does not count.
        o.set(true, later);
        assert!(!o.is_owner());
        assert!(o.take_deposed(), "the election learns it must rejoin");
        assert!(!o.take_deposed(), "once");
        // The group's next verdict counts again.
        o.set(true, later);
        assert!(o.is_owner());
        assert_eq!(o.view().times_gained, 2);
        // Without an election there is nothing to step down from.
        let solo = Ownership::solo();
        assert!(!solo.step_down());
        assert!(solo.is_owner() && !solo.take_deposed());
    }

    #[test]
    fn a_failed_rollup_resigns_for_good() {
        let later = Instant::now() + Duration::from_secs(60);
        let o = Ownership::elected();
        o.set(true, later);
        o.resign();
        assert!(o.resigned() && !o.is_owner());
        o.set(true, later);
        assert!(
            !o.is_owner(),
            "no verdict makes a resigned instance the owner"
        );
        let solo = Ownership::solo();
        solo.resign();
        assert!(!solo.resigned() && solo.is_owner(), "nobody else could own");
    }

    #[test]
    fn a_contested_owner_yields_without_asking_the_group_again() {
        let later = Instant::now() + Duration::from_secs(60);
        let o = Ownership::elected();
        o.set(true, later);
        assert!(!o.contested());
        assert!(o.step_down());
        assert!(o.contested(), "stepped down: contested");
        assert!(o.take_deposed());
        o.set(true, later);
        assert!(o.is_owner());
        o.yield_for(Duration::from_secs(60));
        assert!(!o.is_owner(), "yielding");
        assert!(o.step_down(), "a refusal while yielding stands down");
        assert!(!o.take_deposed(), "but does not ask the group again");
        o.yield_for(Duration::ZERO);
        assert!(
            o.is_owner(),
            "the yield is over: the group's verdict counts"
        );
        assert_eq!(o.saw_chains(7), None);
        assert_eq!(o.saw_chains(9), Some(7));
    }

    #[test]
    fn a_resigned_instance_maintains_until_another_owner_is_heard() {
        let later = Instant::now() + Duration::from_secs(60);
        let o = Ownership::elected();
        assert!(!o.maintains(), "not elected yet: another may own");
        o.heard_other_owner();
        o.set(true, later);
        assert!(o.maintains(), "the owner maintains");
        o.resign();
        // Heard before resigning does not count: maybe nobody else is left.
        assert!(!o.is_owner() && o.maintains(), "alone after resigning");
        o.heard_other_owner();
        assert!(!o.maintains(), "another owner took over: it maintains now");
        let p = Ownership::elected();
        p.set(false, later);
        assert!(
            !p.maintains(),
            "a member that never owned does not maintain"
        );
    }
}
