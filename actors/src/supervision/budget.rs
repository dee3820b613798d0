//! Restart budget and backoff, shared by every supervisor.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::SupervisionParams;

#[derive(Debug, Default)]
pub struct RestartBudget {
    restarts: VecDeque<Instant>,
    consecutive: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    RestartAfter(Duration),
    /// Too many restarts in the window: give up, with the count.
    Exhausted(usize),
}

impl RestartBudget {
    pub fn on_failure(&mut self, now: Instant, p: &SupervisionParams) -> Verdict {
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > p.restart_window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= p.max_restarts {
            return Verdict::Exhausted(self.restarts.len());
        }
        self.restarts.push_back(now);
        self.consecutive += 1;
        let backoff = p
            .backoff_min
            .saturating_mul(1 << self.consecutive.min(16).saturating_sub(1))
            .min(p.backoff_max);
        Verdict::RestartAfter(backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_then_the_budget_runs_out() {
        let p = SupervisionParams {
            max_restarts: 3,
            restart_window: Duration::from_secs(60),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(250),
            ..SupervisionParams::default()
        };
        let mut b = RestartBudget::default();
        let t = Instant::now();
        assert_eq!(
            b.on_failure(t, &p),
            Verdict::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            b.on_failure(t, &p),
            Verdict::RestartAfter(Duration::from_millis(200))
        );
        assert_eq!(
            b.on_failure(t, &p),
            Verdict::RestartAfter(Duration::from_millis(250))
        );
        assert_eq!(b.on_failure(t, &p), Verdict::Exhausted(3));
        // Outside the window the budget is back.
        let later = t + Duration::from_secs(61);
        assert!(matches!(b.on_failure(later, &p), Verdict::RestartAfter(_)));
    }
}
