//! The topic pipelines: per topic a consumer and two committers (the raw table and the shared
//! dead-letter table), run by the one supervisor as a group (`TopicPipeline`).

pub mod committer;
pub mod consumer;
mod drained;
pub mod election;
pub mod group;
pub mod kafka;
mod membership;
pub mod messages;
pub mod params;
mod preview;
pub mod recovery;
mod split;
pub mod start_at;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ractor::ActorStatus;

pub use params::{BatchParams, KafkaParams, PipelineParams};
pub use start_at::{Pins, StartAt, StartPolicy};

use crate::error::Error;
use crate::lake::OffsetRule;
use crate::schema::{dead_letters_spec, raw_table_spec};
use crate::supervision::{ChildInfo, ChildSpecs, Spawner};
use committer::{CommitterActor, CommitterArgs};
use consumer::{ConsumerActor, ConsumerArgs};

pub const RAW_COMMITTER: &str = "raw_committer";
pub const DEAD_LETTER_COMMITTER: &str = "dead_letter_committer";
pub const CONSUMER: &str = "consumer";

/// One topic's group: committers first, the consumer last (it calls them).
pub struct TopicPipeline(pub PipelineParams);

#[async_trait::async_trait]
impl ChildSpecs for TopicPipeline {
    async fn spawn(&self, s: &mut Spawner) -> Result<(), Error> {
        let p = &self.0;
        let committer = |role, spec, rule| {
            move |progress| CommitterArgs {
                role,
                lake: p.lake.clone(),
                spec,
                rule,
                hygiene: p.hygiene.clone(),
                metrics: p.metrics.clone(),
                faults: p.faults.clone(),
                progress,
            }
        };
        let raw = s
            .spawn(
                RAW_COMMITTER,
                CommitterActor,
                committer(RAW_COMMITTER, raw_table_spec(p.kind), OffsetRule::Strict),
            )
            .await?;
        let dead_letters = s
            .spawn(
                DEAD_LETTER_COMMITTER,
                CommitterActor,
                committer(
                    DEAD_LETTER_COMMITTER,
                    dead_letters_spec(),
                    OffsetRule::Filter,
                ),
            )
            .await?;
        let poison = s.poison().clone();
        s.spawn(CONSUMER, ConsumerActor, |progress| {
            // A consumer always has work: polling.
            progress.set_busy(true);
            ConsumerArgs {
                params: p.clone(),
                raw,
                dead_letters,
                progress,
                poison,
            }
        })
        .await?;
        Ok(())
    }

    /// Stop polling; the consumer commits what it holds and stops by itself.
    async fn drain(&self, children: &[ChildInfo]) {
        self.0.shutdown.store(true, Ordering::Relaxed);
        let Some(consumer) = children.iter().find(|c| c.role == CONSUMER) else {
            return;
        };
        // Bounded by the caller's drain timeout; this is only a safety net.
        let deadline = Instant::now() + Duration::from_secs(60);
        while consumer.cell.get_status() != ActorStatus::Stopped && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn winding_down(&self) -> bool {
        self.0.shutdown.load(Ordering::Relaxed)
    }
}
