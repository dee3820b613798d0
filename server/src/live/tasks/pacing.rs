//! When the KPI refresher runs: paced by how long its queries take, and only while someone
//! watches. Pure rules, table-tested; the actor (`refresher.rs`) applies them on every tick.

use std::time::Duration;

/// A refresh costs this many times its own duration at least in waiting: the dashboard takes
/// at most about a tenth of a core from ingest, however big the lake (in a catch-up the
/// "newest rows" queries widen to a day and scan it all, 15 % of the pipeline's CPU measured in
/// `bench ingest` before this pacing).
const PACE_FACTOR: f64 = 10.0;

/// An `/api/dashboard` read keeps the refresher going this long (a reader polling at least
/// once a minute gets fresh values each time); a websocket client, as long as it is connected.
pub const ASKED_KEEPS: Duration = Duration::from_secs(60);

/// What a tick does.
#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    Run,
    Wait,
    /// A refresh was due but nobody watches: the queries are not run (an instance of a fleet
    /// the dashboard does not point at spends nothing on them).
    Unwatched,
}

/// The first round runs regardless (the first reader finds values); after it, a due round runs
/// only while someone watches, and one skipped for nobody watching runs as soon as someone does.
pub fn round(
    watched: bool,
    owed: bool,
    since_last: Option<Duration>,
    dirty: bool,
    pace: Duration,
    refresh: Duration,
) -> Round {
    let Some(since) = since_last else {
        return Round::Run;
    };
    let due = (dirty && since >= pace) || since >= refresh;
    match (watched, due || owed) {
        (_, false) => Round::Wait,
        (true, true) => Round::Run,
        (false, true) if due => Round::Unwatched,
        (false, true) => Round::Wait,
    }
}

/// How long after a refresh the next may run when commits keep landing: `min_interval`, or
/// longer when refreshes are slow, never longer than `refresh`.
pub fn paced_interval(min_interval: Duration, refresh: Duration, last_ms: Option<f64>) -> Duration {
    let paced = Duration::from_secs_f64(last_ms.unwrap_or(0.0).max(0.0) * PACE_FACTOR / 1e3);
    paced.clamp(min_interval, refresh.max(min_interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_refreshes_wait_longer_but_never_past_refresh() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(10));
        let cases = [
            (None, 1_000),
            (Some(20.0), 1_000),
            (Some(100.0), 1_000),
            (Some(250.0), 2_500),
            (Some(5_000.0), 10_000),
            (Some(-3.0), 1_000),
        ];
        for (last, want_ms) in cases {
            assert_eq!(
                paced_interval(min, max, last),
                Duration::from_millis(want_ms),
                "{last:?}"
            );
        }
    }

    #[test]
    fn rounds_run_only_while_someone_watches_and_a_skipped_one_runs_when_someone_comes() {
        use Round::*;
        let (pace, refresh) = (Duration::from_secs(1), Duration::from_secs(5));
        let s = |ms: u64| Some(Duration::from_millis(ms));
        // (watched, owed, since the last round, dirty) → round
        let cases = [
            // The first round runs, watched or not.
            (false, false, None, false, Run),
            (true, false, None, true, Run),
            // Watched: a commit landed and pace passed, or refresh passed.
            (true, false, s(1_000), true, Run),
            (true, false, s(999), true, Wait),
            (true, false, s(4_999), false, Wait),
            (true, false, s(5_000), false, Run),
            // Nobody watching: what was due is skipped, nothing else happens.
            (false, false, s(1_000), true, Unwatched),
            (false, false, s(5_000), false, Unwatched),
            (false, false, s(999), true, Wait),
            (false, true, s(10), true, Wait),
            // Someone came after a skipped round: at once, pace or not.
            (true, true, s(10), false, Run),
            (true, true, s(10), true, Run),
        ];
        for (watched, owed, since, dirty, want) in cases {
            assert_eq!(
                round(watched, owed, since, dirty, pace, refresh),
                want,
                "watched {watched}, owed {owed}, since {since:?}, dirty {dirty}"
            );
        }
    }
}
