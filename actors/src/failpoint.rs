//! Named crash points for the fault-injection drills, compiled in only with the `failpoints`
//! cargo feature: without it `hit` is an empty inline function and arming one is refused.
//!
//! A point is armed with a rule `[N*]action` (the same spelling as tikv's `fail` crate):
//! `pause` stops the calling task for good and records the point as paused, so a drill can
//! SIGKILL the process at exactly that moment; `error` makes the caller see a failure there;
//! `panic` panics; `delay(MS)` holds the caller MS milliseconds and lets it go on (a slow
//! response); `timeout(MS)` holds it MS milliseconds and then fails it (a request that timed
//! out). `N*` limits how many times it fires. Rules come from the environment
//! (`SHOPWATCH_FAILPOINTS="a=1*pause;b=error"`) or from the drill endpoint at run time.

/// Every point the code has, so arming a misspelt one fails instead of never firing.
pub const POINTS: &[&str] = &[
    // Data files are written, nothing is sent to the catalog yet.
    "committer.after_upload",
    // The catalog has the new metadata; the committer has not heard back yet.
    "catalog.after_commit_write",
    // The committer knows the commit landed; it has not told anyone yet.
    "committer.after_catalog_commit",
    // A data compaction has written its merged files and is about to commit the replacement.
    "compaction.before_commit",
    // Every request to S3 object storage (put, get, list, delete, copy), before it is sent:
    // `error` stands for a 5xx the client gave up on.
    "s3.request",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pause,
    Error,
    Panic,
    Delay(u64),
    Timeout(u64),
}

/// What a failpoint or its spec can say.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailpointError {
    /// An armed `error` fired.
    #[error("injected failure at failpoint {0}")]
    Injected(String),
    /// An armed `timeout(MS)` fired after its wait.
    #[error("injected timeout after {ms} ms at failpoint {point}")]
    Timeout { point: String, ms: u64 },
    /// A rule or spec that does not parse (the text says where).
    #[error("{0}")]
    Spec(String),
    #[error("this build has no failpoints (build with `--features failpoints`)")]
    NotBuilt,
}

/// (armed points with their rules, paused points, how often each fired).
pub type Snapshot = (Vec<(String, Rule)>, Vec<String>, Vec<(String, u64)>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// Shots left; `None` = every time.
    pub times: Option<u32>,
}

/// Parse `[N*]action`.
pub fn parse_rule(text: &str) -> Result<Rule, FailpointError> {
    let text = text.trim();
    let (times, action) = match text.split_once('*') {
        Some((n, a)) => (
            Some(n.trim().parse::<u32>().map_err(|_| {
                FailpointError::Spec(format!("`{text}`: the count before `*` must be a number"))
            })?),
            a.trim(),
        ),
        None => (None, text),
    };
    let millis = |inner: &str| {
        inner
            .strip_suffix(')')
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                FailpointError::Spec(format!(
                    "`{action}`: expected a number of milliseconds, e.g. delay(500)"
                ))
            })
    };
    let action = match action {
        "pause" => Action::Pause,
        "error" => Action::Error,
        "panic" => Action::Panic,
        a if a.starts_with("delay(") => Action::Delay(millis(&a["delay(".len()..])?),
        a if a.starts_with("timeout(") => Action::Timeout(millis(&a["timeout(".len()..])?),
        other => {
            return Err(FailpointError::Spec(format!(
                "`{other}`: unknown failpoint action (pause, error, panic, delay(MS), timeout(MS))"
            )))
        }
    };
    Ok(Rule { action, times })
}

/// Parse `name=rule;name=rule`, checking every name against [`POINTS`].
pub fn parse_spec(spec: &str) -> Result<Vec<(String, Rule)>, FailpointError> {
    spec.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, rule) = item
                .split_once('=')
                .ok_or_else(|| FailpointError::Spec(format!("`{item}`: expected name=action")))?;
            let name = name.trim();
            if !POINTS.contains(&name) {
                return Err(FailpointError::Spec(format!(
                    "`{name}`: no such failpoint (known: {})",
                    POINTS.join(", ")
                )));
            }
            Ok((name.to_string(), parse_rule(rule)?))
        })
        .collect()
}

#[cfg(feature = "failpoints")]
mod imp {
    use super::{Action, Rule};
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    #[derive(Default)]
    struct Registry {
        armed: HashMap<String, Rule>,
        paused: Vec<String>,
        fired: HashMap<String, u64>,
    }

    fn registry() -> &'static Mutex<Registry> {
        static R: OnceLock<Mutex<Registry>> = OnceLock::new();
        R.get_or_init(Default::default)
    }

    pub const ENABLED: bool = true;

    pub fn arm(name: &str, rule: Rule) {
        if let Ok(mut r) = registry().lock() {
            r.armed.insert(name.to_string(), rule);
        }
    }

    pub fn disarm_all() {
        if let Ok(mut r) = registry().lock() {
            r.armed.clear();
        }
    }

    pub fn snapshot() -> super::Snapshot {
        let Ok(r) = registry().lock() else {
            return Default::default();
        };
        let mut armed: Vec<_> = r
            .armed
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        armed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut fired: Vec<_> = r.fired.iter().map(|(k, v)| (k.clone(), *v)).collect();
        fired.sort();
        (armed, r.paused.clone(), fired)
    }

    fn take(name: &str) -> Option<Action> {
        let mut r = registry().lock().ok()?;
        let rule = r.armed.get_mut(name)?;
        let action = rule.action;
        match rule.times.as_mut() {
            Some(0) => return None,
            Some(n) => *n -= 1,
            None => {}
        }
        *r.fired.entry(name.to_string()).or_default() += 1;
        if action == Action::Pause {
            r.paused.push(name.to_string());
        }
        Some(action)
    }

    pub async fn hit(name: &str) -> Result<(), super::FailpointError> {
        match take(name) {
            None => Ok(()),
            Some(Action::Error) => Err(super::FailpointError::Injected(name.to_string())),
            Some(Action::Panic) => panic!("injected panic at failpoint {name}"),
            Some(Action::Pause) => {
                tracing::warn!(failpoint = name, "paused at failpoint");
                std::future::pending::<()>().await;
                Ok(())
            }
            Some(Action::Delay(ms)) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Ok(())
            }
            Some(Action::Timeout(ms)) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                Err(super::FailpointError::Timeout {
                    point: name.to_string(),
                    ms,
                })
            }
        }
    }
}

#[cfg(not(feature = "failpoints"))]
mod imp {
    use super::Rule;

    pub const ENABLED: bool = false;

    pub fn arm(_: &str, _: Rule) {}

    pub fn disarm_all() {}

    pub fn snapshot() -> super::Snapshot {
        Default::default()
    }

    #[inline(always)]
    pub async fn hit(_: &str) -> Result<(), super::FailpointError> {
        Ok(())
    }
}

pub use imp::{disarm_all, hit, snapshot, ENABLED};

/// Arm the points of `spec`; refused when the build has no failpoints.
pub fn configure(spec: &str) -> Result<usize, FailpointError> {
    let rules = parse_spec(spec)?;
    if !ENABLED && !rules.is_empty() {
        return Err(FailpointError::NotBuilt);
    }
    for (name, rule) in &rules {
        imp::arm(name, rule.clone());
    }
    Ok(rules.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_like_the_fail_crate() {
        let cases = [
            ("pause", Ok((Action::Pause, None))),
            ("1*pause", Ok((Action::Pause, Some(1)))),
            (" 3 * error ", Ok((Action::Error, Some(3)))),
            ("panic", Ok((Action::Panic, None))),
            ("delay(250)", Ok((Action::Delay(250), None))),
            ("5*timeout(3000)", Ok((Action::Timeout(3000), Some(5)))),
            ("delay(soon)", Err("milliseconds")),
            ("delay(5", Err("milliseconds")),
            ("x*pause", Err("count")),
            ("sleep", Err("unknown failpoint action")),
        ];
        for (text, want) in cases {
            match (parse_rule(text), want) {
                (Ok(r), Ok((a, t))) => assert_eq!((r.action, r.times), (a, t), "{text}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn specs_name_known_points_only() {
        let ok = parse_spec("committer.after_upload=1*pause; catalog.after_commit_write=error;")
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].0, "catalog.after_commit_write");
        let e = parse_spec("committer.after_uplod=pause")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no such failpoint") && e.contains("committer.after_upload"),
            "{e}"
        );
        assert!(matches!(
            parse_spec("committer.after_upload"),
            Err(FailpointError::Spec(m)) if m.contains("name=action")
        ));
        assert!(parse_spec("").unwrap().is_empty());
    }

    #[cfg(feature = "failpoints")]
    #[tokio::test]
    async fn an_armed_point_fires_its_count_then_goes_quiet() {
        configure("committer.after_catalog_commit=2*error").unwrap();
        assert!(hit("committer.after_catalog_commit").await.is_err());
        assert!(hit("committer.after_catalog_commit").await.is_err());
        assert!(hit("committer.after_catalog_commit").await.is_ok());
        let (_, _, fired) = snapshot();
        assert!(fired.contains(&("committer.after_catalog_commit".to_string(), 2)));
    }

    #[cfg(feature = "failpoints")]
    #[tokio::test(start_paused = true)]
    async fn delay_lets_the_caller_go_on_and_timeout_fails_it_after_the_wait() {
        configure("s3.request=1*delay(700)").unwrap();
        let began = tokio::time::Instant::now();
        assert!(hit("s3.request").await.is_ok());
        assert_eq!(began.elapsed().as_millis(), 700);
        configure("s3.request=1*timeout(900)").unwrap();
        let began = tokio::time::Instant::now();
        let e = hit("s3.request").await.unwrap_err();
        assert_eq!(
            e,
            FailpointError::Timeout {
                point: "s3.request".into(),
                ms: 900
            }
        );
        assert!(e.to_string().contains("timeout after 900 ms"), "{e}");
        assert_eq!(began.elapsed().as_millis(), 900);
        assert!(hit("s3.request").await.is_ok());
    }

    #[cfg(not(feature = "failpoints"))]
    #[test]
    fn without_the_feature_arming_is_refused() {
        assert!(configure("committer.after_upload=pause")
            .unwrap_err()
            .contains("--features failpoints"));
        assert_eq!(configure("").unwrap(), 0);
    }
}
