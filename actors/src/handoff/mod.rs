//! The hand-off between the topic pipelines and the rollup actors, which import this module
//! and not each other. A consumer delivers a batch only after the raw table committed it, and
//! a rollup actor puts itself in its slot before it reads the raw tables to rebuild, so a
//! delivery that misses an actor (dead, restarting, too far behind) is always found again by
//! the next rebuild or a gap fill: skipping is safe, which keeps the hand-off bounded without
//! ever blocking ingestion.

pub mod commits;
pub mod owner;
pub mod slot;
pub mod source;

use std::sync::Arc;

pub use commits::CommitFeed;
pub use owner::Ownership;
pub use slot::{Receiver, Slot};
pub use source::{BrokerView, SourceProgress};

use crate::events::{EventKind, Micros};
use crate::lake::Ranges;
use crate::schema::Rows;

/// A batch the raw table has committed, shared by every subscriber.
#[derive(Debug)]
pub struct Delivery {
    pub topic: String,
    pub kind: EventKind,
    pub ranges: Ranges,
    pub rows: Arc<Rows>,
}

/// A batch read from Kafka and about to be committed: shown early as provisional values by
/// the actors that ask for it, never counted (its [`Delivery`] follows once it is durable).
#[derive(Debug, Clone)]
pub struct Preview(pub Arc<Delivery>);

/// The slots of every rollup actor reading one topic, and where the topic's consumer
/// confirms what it has delivered.
#[derive(Clone, Debug, Default)]
pub struct Subscribers {
    pub slots: Vec<Arc<Slot>>,
    pub source: Arc<SourceProgress>,
    /// Where the topic's committers say a commit landed.
    pub commits: CommitFeed,
}

impl Subscribers {
    /// Everything of `partition` up to `high` has been handed over; trust it until
    /// `valid_until`.
    pub fn confirm_drained(&self, topic: &str, partition: i32, high: i64, valid_until: Micros) {
        self.source.confirm(topic, partition, high, valid_until);
    }

    /// The broker lists these partitions for `topic` (all of them, not only ours).
    pub fn know_partitions(&self, topic: &str, partitions: &[i32]) {
        self.source.know(topic, partitions.iter().copied());
    }

    /// Whether any slot previews for someone watching (otherwise nothing is decoded twice).
    pub fn watched(&self) -> bool {
        self.slots.iter().any(|s| s.watched())
    }

    /// Offer a not yet committed batch to the slots that preview; best effort.
    pub fn preview(&self, delivery: Delivery) {
        let preview = Preview(Arc::new(delivery));
        for s in &self.slots {
            s.preview(&preview);
        }
    }

    /// Offer `delivery` to every slot; how many took it.
    pub fn deliver(&self, delivery: Delivery) -> usize {
        let delivery = Arc::new(delivery);
        self.slots.iter().filter(|s| s.offer(&delivery)).count()
    }
}
