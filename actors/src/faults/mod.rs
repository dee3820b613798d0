//! Fault injection, one mechanism for tests and drills: rules matched at named points in the
//! code. A running binary has one registry ([`Faults::process`]); its actors check it at their
//! points (a record, a batch, a message), and the lake's crash points (after an upload, around a
//! catalog commit, before every S3 request) check it through [`hit`]. Tests that run several
//! instances in one process give each its own registry. Unarmed, a check is one atomic load.
//!
//! Arming from outside (`SHOPWATCH_FAILPOINTS`, `drill.failpoints`, the drill endpoint) needs a
//! build with the `failpoints` feature; without it the crash points compile to nothing and
//! arming is refused.

mod spec;

pub use spec::{parse_action, parse_spec, SpecError};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Whether this build can arm faults from outside (the `failpoints` feature).
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// Every point the code has, so arming a misspelt one fails instead of never firing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Point {
    /// While the consumer handles one record (after poll, before decode).
    ConsumerRecord,
    /// While a raw committer handles a batch; `target` names the table.
    CommitterBatch,
    /// At the start of any other supervised actor's message (aggregators, the detector, the
    /// KPI refresher, the services); `target` names the actor's role.
    Handler,
    /// Data files are written, nothing is sent to the catalog yet.
    AfterUpload,
    /// The catalog has the new metadata; the committer has not heard back yet.
    CatalogAfterCommitWrite,
    /// The committer knows the commit landed; it has not told anyone yet.
    AfterCatalogCommit,
    /// A data compaction has written its merged files and is about to commit the replacement.
    CompactionBeforeCommit,
    /// Every request to S3 object storage (put, get, list, delete, copy), before it is sent:
    /// `error` stands for a 5xx the client gave up on.
    S3Request,
}

impl Point {
    pub const ALL: [Point; 8] = [
        Point::ConsumerRecord,
        Point::CommitterBatch,
        Point::Handler,
        Point::AfterUpload,
        Point::CatalogAfterCommitWrite,
        Point::AfterCatalogCommit,
        Point::CompactionBeforeCommit,
        Point::S3Request,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Point::ConsumerRecord => "consumer.record",
            Point::CommitterBatch => "committer.batch",
            Point::Handler => "actor.handler",
            Point::AfterUpload => "committer.after_upload",
            Point::CatalogAfterCommitWrite => "catalog.after_commit_write",
            Point::AfterCatalogCommit => "committer.after_catalog_commit",
            Point::CompactionBeforeCommit => "compaction.before_commit",
            Point::S3Request => "s3.request",
        }
    }

    pub fn parse(name: &str) -> Option<Point> {
        Point::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Stop the caller for good and record the point as paused, so a drill can SIGKILL the
    /// process at exactly that moment.
    Pause,
    /// A transient failure: the caller's group restarts (or the commit is retried).
    Error,
    /// A fatal failure: the caller's group stops and says why.
    Fatal,
    Panic,
    /// Hold the caller this many milliseconds, then let it go on (a slow response, or a stall
    /// the heartbeat must catch).
    Delay(u64),
    /// Hold the caller this many milliseconds, then fail it (a request that timed out).
    Timeout(u64),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Pause => f.write_str("pause"),
            Action::Error => f.write_str("error"),
            Action::Fatal => f.write_str("fatal"),
            Action::Panic => f.write_str("panic"),
            Action::Delay(ms) => write!(f, "delay({ms})"),
            Action::Timeout(ms) => write!(f, "timeout({ms})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub point: Point,
    pub action: Action,
    /// How many times it fires; `None` = every time.
    pub times: Option<u32>,
    /// Only records whose payload contains this marker (for poison-record tests).
    pub marker: Option<String>,
    /// Only this table's committer (`CommitterBatch`) or this actor role (`Handler`).
    pub target: Option<String>,
}

impl Rule {
    /// A rule for any record, table or role at `point`.
    pub fn at(point: Point, action: Action, times: Option<u32>) -> Rule {
        Rule {
            point,
            action,
            times,
            marker: None,
            target: None,
        }
    }

    /// Its name in the listing of what fired: `point` or `point@target`.
    fn label(&self) -> String {
        match &self.target {
            Some(t) => format!("{}@{t}", self.point.name()),
            None => self.point.name().to_string(),
        }
    }

    /// Where it happened, as a failure reason says it: the target first (a table, an actor).
    fn place(&self) -> String {
        match &self.target {
            Some(t) => format!("{t} ({})", self.point.name()),
            None => self.point.name().to_string(),
        }
    }
}

/// An injected failure, as its caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("injected {} at {at}", self.what())]
pub struct Injected {
    /// The target and point that fired (`detector (actor.handler)`, `s3.request`).
    pub at: String,
    pub fatal: bool,
    /// Set when a `timeout(MS)` fired.
    pub timeout_ms: Option<u64>,
}

impl Injected {
    fn what(&self) -> String {
        match (self.fatal, self.timeout_ms) {
            (true, _) => "fatal".into(),
            (false, Some(ms)) => format!("timeout after {ms} ms"),
            (false, None) => "error".into(),
        }
    }
}

/// Armed rules, paused points and how often each fired (for the drill endpoint's listing).
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub armed: Vec<Rule>,
    pub paused: Vec<String>,
    pub fired: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Registry {
    rules: Vec<Rule>,
    paused: Vec<String>,
    fired: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub struct Faults {
    registry: Mutex<Registry>,
    /// Any rule at all: checked before the lock, which is per record on the hot path.
    armed: AtomicBool,
}

impl Faults {
    /// The process's registry: what a running binary's actors and crash points check.
    pub fn process() -> Arc<Faults> {
        static PROCESS: OnceLock<Arc<Faults>> = OnceLock::new();
        PROCESS.get_or_init(Default::default).clone()
    }

    /// Arm a rule; it replaces one armed at the same point for the same target and marker.
    pub fn add(&self, rule: Rule) {
        if let Ok(mut r) = self.registry.lock() {
            r.rules.retain(|old| {
                (old.point, &old.target, &old.marker) != (rule.point, &rule.target, &rule.marker)
            });
            r.rules.push(rule);
            self.armed.store(true, Ordering::Release);
        }
    }

    /// Disarm every rule (what fired and paused stays listed).
    pub fn clear(&self) {
        if let Ok(mut r) = self.registry.lock() {
            r.rules.clear();
            self.armed.store(false, Ordering::Release);
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let Ok(r) = self.registry.lock() else {
            return Snapshot::default();
        };
        Snapshot {
            armed: r.rules.clone(),
            paused: r.paused.clone(),
            fired: r.fired.clone(),
        }
    }

    /// The action to take at `point`, if a rule matches (and spend one of its shots).
    fn take(
        &self,
        point: Point,
        payload: Option<&[u8]>,
        target: Option<&str>,
    ) -> Option<(Action, String)> {
        // (the action, where it happened)
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut r = self.registry.lock().ok()?;
        let hit = r.rules.iter_mut().find(|rule| {
            rule.point == point
                && rule.times != Some(0)
                && rule.target.as_deref().is_none_or(|t| Some(t) == target)
                && rule
                    .marker
                    .as_deref()
                    .is_none_or(|m| payload.is_some_and(|p| contains(p, m.as_bytes())))
        })?;
        if let Some(n) = hit.times.as_mut() {
            *n -= 1;
        }
        let (action, label, place) = (hit.action, hit.label(), hit.place());
        *r.fired.entry(label.clone()).or_default() += 1;
        if action == Action::Pause {
            r.paused.push(label);
        }
        Some((action, place))
    }

    /// Pass `point`: carry out whatever rule matches.
    pub async fn hit(
        &self,
        point: Point,
        payload: Option<&[u8]>,
        target: Option<&str>,
    ) -> Result<(), Injected> {
        let Some((action, at)) = self.take(point, payload, target) else {
            return Ok(());
        };
        let failed = |fatal, timeout_ms| Injected {
            at: at.clone(),
            fatal,
            timeout_ms,
        };
        match action {
            Action::Panic => panic!("injected panic at {at}"),
            Action::Error => Err(failed(false, None)),
            Action::Fatal => Err(failed(true, None)),
            Action::Pause => {
                tracing::warn!(failpoint = %at, "paused at failpoint");
                std::future::pending::<()>().await;
                Ok(())
            }
            Action::Delay(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(())
            }
            Action::Timeout(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Err(failed(false, Some(ms)))
            }
        }
    }

    /// The `Handler` point of actor `role`.
    pub async fn at_handler(&self, role: &str) -> Result<(), Injected> {
        self.hit(Point::Handler, None, Some(role)).await
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A crash point in the lake's code, checked against the process's registry. Without the
/// `failpoints` feature it is an empty inline function.
#[inline(always)]
pub async fn hit(point: Point) -> Result<(), Injected> {
    if ENABLED {
        Faults::process().hit(point, None, None).await
    } else {
        Ok(())
    }
}

impl Faults {
    /// Arm the rules of `spec` (`point[@target]=[N*]action;…`); refused when the build has no
    /// failpoints.
    pub fn arm(&self, spec: &str) -> Result<usize, SpecError> {
        let rules = parse_spec(spec)?;
        if !ENABLED && !rules.is_empty() {
            return Err(SpecError::NotBuilt);
        }
        let n = rules.len();
        for rule in rules {
            self.add(rule);
        }
        Ok(n)
    }
}

/// Arm the rules of `spec` in the process's registry (start-up: `drill.failpoints`).
pub fn configure(spec: &str) -> Result<usize, SpecError> {
    Faults::process().arm(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_armed_point_fires_its_count_then_goes_quiet() {
        let f = Faults::default();
        f.add(Rule::at(Point::AfterCatalogCommit, Action::Error, Some(2)));
        assert!(f.hit(Point::AfterCatalogCommit, None, None).await.is_err());
        assert!(f.hit(Point::AfterCatalogCommit, None, None).await.is_err());
        assert!(f.hit(Point::AfterCatalogCommit, None, None).await.is_ok());
        assert_eq!(f.snapshot().fired["committer.after_catalog_commit"], 2);
    }

    #[tokio::test]
    async fn targets_and_markers_narrow_a_rule_and_rearming_replaces_it() {
        let f = Faults::default();
        f.add(Rule {
            target: Some("detector".into()),
            ..Rule::at(Point::Handler, Action::Fatal, None)
        });
        assert!(f.at_handler("orders_revenue").await.is_ok());
        let e = f.at_handler("detector").await.unwrap_err();
        assert!(
            e.fatal && e.to_string() == "injected fatal at detector (actor.handler)",
            "{e}"
        );
        f.add(Rule {
            target: Some("detector".into()),
            ..Rule::at(Point::Handler, Action::Delay(0), None)
        });
        assert!(
            f.at_handler("detector").await.is_ok(),
            "re-armed rule replaced"
        );
        f.add(Rule {
            marker: Some("POISON".into()),
            ..Rule::at(Point::ConsumerRecord, Action::Error, None)
        });
        let record = Point::ConsumerRecord;
        assert!(f.hit(record, Some(b"fine"), None).await.is_ok());
        assert!(f.hit(record, None, None).await.is_ok());
        assert!(f.hit(record, Some(b"..POISON.."), None).await.is_err());
        f.clear();
        assert!(f.hit(record, Some(b"POISON"), None).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn delay_lets_the_caller_go_on_and_timeout_fails_it_after_the_wait() {
        let f = Faults::default();
        f.add(Rule::at(Point::S3Request, Action::Delay(700), Some(1)));
        let began = tokio::time::Instant::now();
        assert!(f.hit(Point::S3Request, None, None).await.is_ok());
        assert_eq!(began.elapsed().as_millis(), 700);
        f.add(Rule::at(Point::S3Request, Action::Timeout(900), Some(1)));
        let began = tokio::time::Instant::now();
        let e = f.hit(Point::S3Request, None, None).await.unwrap_err();
        assert_eq!(e.timeout_ms, Some(900));
        assert!(e.to_string().contains("timeout after 900 ms"), "{e}");
        assert_eq!(began.elapsed().as_millis(), 900);
        assert!(f.hit(Point::S3Request, None, None).await.is_ok());
    }

    #[test]
    fn arming_from_outside_needs_a_failpoints_build() {
        let r = configure("committer.after_upload=1*delay(1)");
        if ENABLED {
            assert_eq!(r, Ok(1));
            Faults::process().clear();
        } else {
            assert_eq!(r, Err(SpecError::NotBuilt));
        }
        assert_eq!(configure(""), Ok(0));
    }
}
