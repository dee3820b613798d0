//! How consumers hand committed events to the derived actors without depending on them.
//!
//! A consumer delivers a batch only after the raw table committed it, and a derived actor puts
//! itself in its slot before it reads the raw tables to rebuild. So a delivery that misses an
//! actor (dead, restarting, or too far behind) is always found by the next actor's rebuild or
//! by a gap fill from the raw table: skipping a delivery is always safe, which is what keeps
//! the hand-off bounded without ever blocking ingestion.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ractor::ActorRef;

use super::messages::{Delivery, DerivedMsg};

/// Deliveries an actor may have queued before the consumer skips it.
const MAX_PENDING: usize = 4;

#[derive(Debug, Default)]
pub struct Slot {
    actor: Mutex<Option<ActorRef<DerivedMsg>>>,
    pending: AtomicUsize,
    /// Set when a delivery was skipped: the actor must catch up from the raw tables before
    /// it lets a quiet-looking topic advance its watermark.
    skipped: AtomicBool,
}

impl Slot {
    pub fn set(&self, actor: ActorRef<DerivedMsg>) {
        self.pending.store(0, Ordering::Relaxed);
        if let Ok(mut a) = self.actor.lock() {
            *a = Some(actor);
        }
    }

    /// True (once) if deliveries were skipped since the last call.
    pub fn take_skipped(&self) -> bool {
        self.skipped.swap(false, Ordering::AcqRel)
    }

    pub fn done(&self) {
        let _ = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Hand `delivery` over if the actor is there and keeping up; false when skipped.
    pub fn offer(&self, delivery: &Arc<Delivery>) -> bool {
        let Some(actor) = self.actor.lock().ok().and_then(|a| a.clone()) else {
            return false;
        };
        if self.pending.load(Ordering::Relaxed) >= MAX_PENDING {
            self.skipped.store(true, Ordering::Release);
            return false;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        if actor.cast(DerivedMsg::Ingest(delivery.clone())).is_err() {
            self.done();
            return false;
        }
        true
    }
}

/// The slots of every derived actor reading one topic, and where the topic's consumer
/// confirms what it has delivered.
#[derive(Clone, Debug, Default)]
pub struct Subscribers(pub Vec<Arc<Slot>>, pub Arc<super::source::SourceProgress>);

impl Subscribers {
    /// Everything of `partition` up to `high` has been handed over; trust it until
    /// `valid_until`.
    pub fn confirm_drained(
        &self,
        topic: &str,
        partition: i32,
        high: i64,
        valid_until: crate::events::Micros,
    ) {
        self.1.confirm(topic, partition, high, valid_until);
    }

    pub fn deliver(&self, delivery: Delivery) -> usize {
        let delivery = Arc::new(delivery);
        self.0.iter().filter(|s| s.offer(&delivery)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::schema::Rows;

    struct Sink;
    impl ractor::Actor for Sink {
        type Msg = DerivedMsg;
        type State = ();
        type Arguments = ();
        async fn pre_start(
            &self,
            _: ActorRef<DerivedMsg>,
            _: (),
        ) -> Result<(), ractor::ActorProcessingErr> {
            // Never handles anything quickly: deliveries pile up in the mailbox.
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_full_slot_skips_and_says_so_once() {
        let slot = Slot::default();
        let d = Arc::new(Delivery {
            topic: "orders_topic".into(),
            kind: EventKind::Orders,
            ranges: Default::default(),
            rows: Arc::new(Rows::empty_for(EventKind::Orders)),
        });
        // No actor yet: skipped silently (a starting actor reads the lake anyway).
        assert!(!slot.offer(&d));
        assert!(!slot.take_skipped());
        let (actor, _) = ractor::ActorRuntime::spawn_instant(None, Sink, ()).unwrap();
        slot.set(actor.clone());
        for _ in 0..MAX_PENDING {
            assert!(slot.offer(&d));
        }
        assert!(!slot.take_skipped());
        assert!(!slot.offer(&d), "the fifth pending delivery is skipped");
        assert!(slot.take_skipped());
        assert!(!slot.take_skipped(), "reported once");
        slot.done();
        assert!(slot.offer(&d));
        actor.kill();
    }
}
