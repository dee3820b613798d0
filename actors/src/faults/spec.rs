//! The one spelling of a fault: `point[@target]=[N*]action` (the actions as in tikv's `fail`
//! crate), used by the environment (`SHOPWATCH_FAILPOINTS`), `drill.failpoints` and the drill
//! endpoint alike.

use super::{Action, Point, Rule};

/// A spec that does not parse; the text says where and what is expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Invalid(String),
    #[error("this build has no failpoints (build with `--features failpoints`)")]
    NotBuilt,
}

fn invalid(message: String) -> SpecError {
    SpecError::Invalid(message)
}

/// Parse `[N*]action` into its action and shot count.
pub fn parse_action(text: &str) -> Result<(Action, Option<u32>), SpecError> {
    let text = text.trim();
    let (times, action) = match text.split_once('*') {
        Some((n, a)) => (
            Some(n.trim().parse::<u32>().map_err(|_| {
                invalid(format!("`{text}`: the count before `*` must be a number"))
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
                invalid(format!(
                    "`{action}`: expected a number of milliseconds, e.g. delay(500)"
                ))
            })
    };
    let action = match action {
        "pause" => Action::Pause,
        "error" => Action::Error,
        "fatal" => Action::Fatal,
        "panic" => Action::Panic,
        a if a.starts_with("delay(") => Action::Delay(millis(&a["delay(".len()..])?),
        a if a.starts_with("timeout(") => Action::Timeout(millis(&a["timeout(".len()..])?),
        other => {
            return Err(invalid(format!(
            "`{other}`: unknown fault action (pause, error, fatal, panic, delay(MS), timeout(MS))"
        )))
        }
    };
    Ok((action, times))
}

/// Parse `point[@target]=rule;…`, checking every point against [`Point::ALL`].
pub fn parse_spec(spec: &str) -> Result<Vec<Rule>, SpecError> {
    spec.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, rule) = item
                .split_once('=')
                .ok_or_else(|| invalid(format!("`{item}`: expected name=action")))?;
            let (name, target) = match name.trim().split_once('@') {
                Some((n, t)) if !t.trim().is_empty() => (n.trim(), Some(t.trim().to_string())),
                Some(_) => return Err(invalid(format!("`{name}`: a target after `@` is empty"))),
                None => (name.trim(), None),
            };
            let point = Point::parse(name).ok_or_else(|| {
                let known: Vec<_> = Point::ALL.iter().map(|p| p.name()).collect();
                invalid(format!(
                    "`{name}`: no such failpoint (known: {})",
                    known.join(", ")
                ))
            })?;
            let (action, times) = parse_action(rule)?;
            Ok(Rule {
                point,
                action,
                times,
                marker: None,
                target,
            })
        })
        .collect()
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
            ("fatal", Ok((Action::Fatal, None))),
            ("delay(250)", Ok((Action::Delay(250), None))),
            ("5*timeout(3000)", Ok((Action::Timeout(3000), Some(5)))),
            ("delay(soon)", Err("milliseconds")),
            ("delay(5", Err("milliseconds")),
            ("x*pause", Err("count")),
            ("sleep", Err("unknown fault action")),
        ];
        for (text, want) in cases {
            match (parse_action(text), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{text}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn specs_name_known_points_only() {
        let ok = parse_spec(
            "committer.after_upload=1*pause; catalog.after_commit_write=error; \
             actor.handler@detector=1*fatal;",
        )
        .unwrap();
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[1].point, Point::CatalogAfterCommitWrite);
        assert_eq!(
            (ok[2].point, ok[2].target.as_deref(), ok[2].action),
            (Point::Handler, Some("detector"), Action::Fatal)
        );
        let e = parse_spec("committer.after_uplod=pause")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no such failpoint") && e.contains("committer.after_upload"),
            "{e}"
        );
        assert!(matches!(
            parse_spec("committer.after_upload"),
            Err(SpecError::Invalid(m)) if m.contains("name=action")
        ));
        assert!(parse_spec("actor.handler@=panic")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(parse_spec("").unwrap().is_empty());
    }
}
