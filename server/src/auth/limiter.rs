//! Failed-login limiter, pure: at most `max` failures per key (a user name, a client address)
//! in a sliding `window`; past that the key waits until its oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub struct Limiter {
    max: usize,
    window: Duration,
    failures: HashMap<String, VecDeque<Instant>>,
}

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Limiter {
            max: max.max(1) as usize,
            window,
            failures: HashMap::new(),
        }
    }

    fn prune(&mut self, key: &str, now: Instant) {
        if let Some(q) = self.failures.get_mut(key) {
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                q.pop_front();
            }
            if q.is_empty() {
                self.failures.remove(key);
            }
        }
    }

    /// `Err(wait)` while `key` has used up its failures.
    pub fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        self.prune(key, now);
        match self.failures.get(key) {
            Some(q) if q.len() >= self.max => {
                let oldest = q.front().copied().unwrap_or(now);
                Err(self.window.saturating_sub(now.duration_since(oldest)))
            }
            _ => Ok(()),
        }
    }

    pub fn fail(&mut self, key: &str, now: Instant) {
        self.prune(key, now);
        // Bounded memory under a flood of made-up names: forget the quiet keys first.
        if self.failures.len() > 100_000 {
            let window = self.window;
            self.failures
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        self.failures
            .entry(key.to_string())
            .or_default()
            .push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_limit_wait_for_the_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut l = Limiter::new(3, s(60));
        for i in 0..3 {
            assert!(l.check("alice", t0 + s(i)).is_ok());
            l.fail("alice", t0 + s(i));
        }
        assert_eq!(l.check("alice", t0 + s(10)), Err(s(50)));
        assert!(
            l.check("bob", t0 + s(10)).is_ok(),
            "other keys are not affected"
        );
        assert!(
            l.check("alice", t0 + s(60)).is_ok(),
            "the oldest failure left the window"
        );
        l.fail("alice", t0 + s(60));
        assert_eq!(
            l.check("alice", t0 + s(60)),
            Err(s(1)),
            "full again until the next leaves"
        );
    }
}
