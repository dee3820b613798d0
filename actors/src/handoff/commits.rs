//! "A commit landed": every committer actor says so once its commit is in the catalog, and
//! readers of the lake (the KPI refresher) follow it instead of polling.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Clone, Debug)]
pub struct CommitFeed(Arc<watch::Sender<u64>>);

impl Default for CommitFeed {
    fn default() -> Self {
        CommitFeed(Arc::new(watch::channel(0).0))
    }
}

impl CommitFeed {
    pub fn landed(&self) {
        self.0.send_modify(|n| *n += 1);
    }

    /// A receiver that changes after every landed commit.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_see_each_landing() {
        let feed = CommitFeed::default();
        let mut rx = feed.subscribe();
        feed.landed();
        rx.changed().await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 1);
        assert!(!rx.has_changed().unwrap());
    }
}
