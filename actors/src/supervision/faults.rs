//! Fault injection for supervision tests and drills: rules matched at named points inside the
//! actors' handlers. Empty by default, so production pays one atomic load per record.

use crate::error::{Error, Kind};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultPoint {
    /// While the consumer handles one record (after poll, before decode).
    ConsumerRecord,
    /// While the committer handles a batch.
    CommitterBatch,
    /// At the start of any other supervised actor's message (aggregators, the detector, the
    /// KPI refresher); `target` names the actor's role.
    Handler,
}

#[derive(Clone, Debug, PartialEq)]
pub enum FaultAction {
    Panic,
    /// A transient error: the group restarts.
    Error,
    /// A fatal error: the group stops and says why.
    Fatal,
    /// Stop making progress (an await that never reports), so the heartbeat must catch it.
    Freeze(Duration),
}

#[derive(Clone, Debug)]
pub struct FaultRule {
    pub point: FaultPoint,
    pub action: FaultAction,
    /// How many times it fires; `None` = every time.
    pub times: Option<u32>,
    /// Only records whose payload contains this marker (for poison-record tests).
    pub marker: Option<String>,
    /// Only this table's committer (`CommitterBatch`) or this actor role (`Handler`).
    pub target: Option<String>,
}

#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    /// Any rule at all: checked before the lock, which is per record on the hot path.
    armed: AtomicBool,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(rule);
            self.armed.store(true, Ordering::Release);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.clear();
            self.armed.store(false, Ordering::Release);
        }
    }

    /// The action to take at `point`, if a rule matches (and spend one of its shots).
    pub fn check(
        &self,
        point: FaultPoint,
        payload: Option<&[u8]>,
        target: Option<&str>,
    ) -> Option<FaultAction> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut rules = self.rules.lock().ok()?;
        let hit = rules.iter_mut().find(|r| {
            r.point == point
                && r.times != Some(0)
                && r.target.as_deref().is_none_or(|t| Some(t) == target)
                && r.marker
                    .as_deref()
                    .is_none_or(|m| payload.is_some_and(|p| contains(p, m.as_bytes())))
        })?;
        if let Some(n) = hit.times.as_mut() {
            *n -= 1;
        }
        Some(hit.action.clone())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Carry out an action inside an async handler.
pub async fn apply(action: FaultAction, at: &str) -> Result<(), Error> {
    match action {
        FaultAction::Panic => panic!("injected panic at {at}"),
        FaultAction::Error => Err(Error::Injected {
            kind: Kind::Transient,
            at: at.to_string(),
        }),
        FaultAction::Fatal => Err(Error::Injected {
            kind: Kind::Fatal,
            at: at.to_string(),
        }),
        FaultAction::Freeze(d) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
    }
}

impl Faults {
    /// The `Handler` point of actor `role`: apply whatever rule matches.
    pub async fn at_handler(&self, role: &str) -> Result<(), Error> {
        match self.check(FaultPoint::Handler, None, Some(role)) {
            Some(action) => apply(action, role).await,
            None => Ok(()),
        }
    }
}
