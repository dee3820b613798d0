//! The consumer tells the rollup actors which of its partitions have nothing left to deliver.
//! Without it a silent partition never counts as idle; with a broker answer trusted blindly an
//! under-reporting broker would close windows while records are still coming.

use std::time::Duration;

use tracing::warn;

use super::consumer::ConsumerState;
use super::kafka::drained_candidates;
use crate::handoff::source::{vouch, Vouch};

impl ConsumerState {
    pub(super) async fn confirm_drained(&mut self) {
        let consumer = self.consumer.clone();
        let topic = self.args.params.topic.clone();
        let position = self.position.clone();
        let interval = self.args.params.batch.commit_interval;
        let answers =
            tokio::task::spawn_blocking(move || drained_candidates(&consumer, &topic, &position))
                .await
                .unwrap_or_default();
        // Valid for a few poll cycles: a consumer that stops confirming (stuck, stalled on a
        // commit, restarting) stops vouching for its partitions.
        let valid_until = chrono::Utc::now().timestamp_micros()
            + (interval * 3 + Duration::from_secs(2)).as_micros() as i64;
        let topic = &self.args.params.topic;
        for (p, position, high) in answers {
            let seen = self.highest_seen.get(&p).copied();
            self.highest_seen.insert(p, seen.unwrap_or(high).max(high));
            let lie = |this: &Self| {
                this.args
                    .params
                    .metrics
                    .watermark_lies
                    .with_label_values(&[topic])
                    .inc()
            };
            match vouch(position, high, seen) {
                Vouch::Drained(high) => {
                    self.args
                        .params
                        .subscribers
                        .confirm_drained(topic, p, high, valid_until)
                }
                Vouch::Behind => {}
                // We fetched this partition ourselves and were served nothing past `position`:
                // our own reads say it is drained, whatever number the broker gives.
                Vouch::BelowRead => {
                    lie(self);
                    self.args
                        .params
                        .subscribers
                        .confirm_drained(topic, p, position, valid_until)
                }
                Vouch::WentBack => {
                    lie(self);
                    warn!(%topic, partition = p, position, high, highest_seen = ?seen, "the broker's high watermark went back; not trusting it");
                }
            }
        }
    }
}
