//! Failed-login limiter, pure: at most `max` failures per key (a user name, a client address)
//! in a sliding `window`; past that the key waits until its oldest failure leaves the window.
//! Keys are kept as a 16-byte hash, never as sent (a name may be 16 KiB), and at most
//! `max_keys` of them: a flood of made-up names evicts the quietest first.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

type Key = [u8; 16];

pub struct Limiter {
    max: usize,
    window: Duration,
    max_keys: usize,
    failures: HashMap<Key, VecDeque<Instant>>,
}

fn key(text: &str) -> Key {
    let d = Sha256::digest(text.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

impl Limiter {
    pub fn new(max: u32, window: Duration) -> Self {
        Self::with_capacity(max, window, 10_000)
    }

    pub fn with_capacity(max: u32, window: Duration, max_keys: usize) -> Self {
        Limiter {
            max: max.max(1) as usize,
            window,
            max_keys: max_keys.max(1),
            failures: HashMap::new(),
        }
    }

    fn prune(&mut self, k: &Key, now: Instant) {
        if let Some(q) = self.failures.get_mut(k) {
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                q.pop_front();
            }
            if q.is_empty() {
                self.failures.remove(k);
            }
        }
    }

    /// `Err(wait)` while `key` has used up its failures.
    pub fn check(&mut self, key_text: &str, now: Instant) -> Result<(), Duration> {
        let k = key(key_text);
        self.prune(&k, now);
        match self.failures.get(&k) {
            Some(q) if q.len() >= self.max => {
                let oldest = q.front().copied().unwrap_or(now);
                Err(self.window.saturating_sub(now.duration_since(oldest)))
            }
            _ => Ok(()),
        }
    }

    /// Count a failure (or an attempt, before it is known: see [`Limiter::forgive`]).
    pub fn fail(&mut self, key_text: &str, now: Instant) {
        let k = key(key_text);
        self.prune(&k, now);
        if !self.failures.contains_key(&k) && self.failures.len() >= self.max_keys {
            let window = self.window;
            self.failures
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
            // Still full of live keys: forget the one whose last failure is oldest.
            if self.failures.len() >= self.max_keys {
                if let Some(quietest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(k, _)| *k)
                {
                    self.failures.remove(&quietest);
                }
            }
        }
        self.failures.entry(k).or_default().push_back(now);
    }

    /// Take back the newest counted attempt of `key` (it succeeded).
    pub fn forgive(&mut self, key_text: &str) {
        let k = key(key_text);
        if let Some(q) = self.failures.get_mut(&k) {
            q.pop_back();
            if q.is_empty() {
                self.failures.remove(&k);
            }
        }
    }

    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.failures.len()
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
        // A success takes its counted attempt back.
        l.forgive("alice");
        assert!(l.check("alice", t0 + s(60)).is_ok());
    }

    #[test]
    fn a_flood_of_names_stays_within_the_key_cap() {
        let t0 = Instant::now();
        let mut l = Limiter::with_capacity(3, Duration::from_secs(60), 100);
        let long = "x".repeat(16 * 1024);
        for i in 0..1_000 {
            l.fail(&format!("user:{long}{i}"), t0 + Duration::from_millis(i));
        }
        assert!(l.keys() <= 100, "{}", l.keys());
        // The newest names are the ones kept.
        assert_eq!(
            l.check(&format!("user:{long}999"), t0 + Duration::from_secs(1)),
            Ok(())
        );
        for _ in 0..2 {
            l.fail(&format!("user:{long}999"), t0 + Duration::from_secs(1));
        }
        assert!(l
            .check(&format!("user:{long}999"), t0 + Duration::from_secs(1))
            .is_err());
    }
}
