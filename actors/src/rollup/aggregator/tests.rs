use std::time::{Duration, Instant};

use super::emit_on_delivery;

#[test]
fn a_delivery_emits_unless_a_commit_was_less_than_a_gap_ago() {
    // Ahead of the real clock, so the look-backs below exist however young the process.
    let now = Instant::now() + Duration::from_secs(120);
    let gap = Duration::from_secs(1);
    let ago = |ms: u64| now.checked_sub(Duration::from_millis(ms));
    let cases = [
        // Never committed: at once.
        (None, Ok(())),
        // Steady traffic: the last commit a minute ago.
        (ago(60_000), Ok(())),
        (ago(1_000), Ok(())),
        // A catch-up: held back for what is left of the gap.
        (ago(999), Err(Duration::from_millis(1))),
        (ago(250), Err(Duration::from_millis(750))),
        (ago(0), Err(gap)),
    ];
    for (i, (last, expected)) in cases.into_iter().enumerate() {
        assert_eq!(emit_on_delivery(last, now, gap), expected, "case {i}");
    }
    // A clock that went backwards (a commit "after" now) holds for the whole gap.
    assert_eq!(emit_on_delivery(Some(now + gap), now, gap), Err(gap));
}
