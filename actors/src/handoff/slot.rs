//! A rollup actor's slot: where a consumer offers it committed batches, bounded (skipping
//! is safe, see the module above).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ractor::ActorRef;

use super::{Delivery, Preview};

/// Deliveries an actor may have queued before the consumer skips it.
const MAX_PENDING: usize = 4;
/// Previews an actor may have queued; more are dropped (they are only a foretaste).
const MAX_PREVIEWS: usize = 2;

/// Whoever takes deliveries from a slot (a rollup actor, any message type built from one).
pub trait Receiver: Send + Sync + std::fmt::Debug {
    /// Queue the delivery; false when the receiver is gone.
    fn receive(&self, delivery: Arc<Delivery>) -> bool;
    /// Queue a preview; false when the receiver is gone.
    fn preview(&self, preview: Preview) -> bool;
}

impl<M> Receiver for ActorRef<M>
where
    M: ractor::Message + From<Arc<Delivery>> + From<Preview>,
{
    fn receive(&self, delivery: Arc<Delivery>) -> bool {
        self.cast(M::from(delivery)).is_ok()
    }
    fn preview(&self, preview: Preview) -> bool {
        self.cast(M::from(preview)).is_ok()
    }
}

#[derive(Debug, Default)]
pub struct Slot {
    actor: Mutex<Option<Arc<dyn Receiver>>>,
    pending: AtomicUsize,
    /// Set when a delivery was skipped: the actor must catch up from the raw tables before
    /// it lets a quiet-looking topic advance its watermark.
    skipped: AtomicBool,
    /// Whether the actor wants previews, and how many it has queued.
    previewing: AtomicBool,
    previews: AtomicUsize,
    /// The previewing actor says someone is watching its values.
    watched: AtomicBool,
}

impl Slot {
    /// Take deliveries and previews of batches not yet committed.
    pub fn set_previewing(&self, actor: impl Receiver + 'static) {
        self.set(actor);
        self.previews.store(0, Ordering::Relaxed);
        self.previewing.store(true, Ordering::Release);
    }

    /// The previewing actor's word on whether anyone watches its provisional values.
    pub fn set_watched(&self, watched: bool) {
        self.watched.store(watched, Ordering::Relaxed);
    }

    pub fn watched(&self) -> bool {
        self.previewing.load(Ordering::Relaxed) && self.watched.load(Ordering::Relaxed)
    }

    /// The actor handled a preview.
    pub fn preview_done(&self) {
        let _ = self
            .previews
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Hand `preview` over if the actor wants it and is keeping up; never marks a skip.
    pub fn preview(&self, preview: &Preview) -> bool {
        if !self.previewing.load(Ordering::Acquire) {
            return false;
        }
        let Some(actor) = self.actor.lock().ok().and_then(|a| a.clone()) else {
            return false;
        };
        if self.previews.load(Ordering::Relaxed) >= MAX_PREVIEWS
            || self.pending.load(Ordering::Relaxed) >= MAX_PENDING
        {
            return false;
        }
        self.previews.fetch_add(1, Ordering::Relaxed);
        if !actor.preview(preview.clone()) {
            self.preview_done();
            return false;
        }
        true
    }

    pub fn set(&self, actor: impl Receiver + 'static) {
        self.pending.store(0, Ordering::Relaxed);
        if let Ok(mut a) = self.actor.lock() {
            *a = Some(Arc::new(actor));
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
        if !actor.receive(delivery.clone()) {
            self.done();
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use crate::schema::Rows;

    struct Msg;
    impl From<Arc<Delivery>> for Msg {
        fn from(_: Arc<Delivery>) -> Msg {
            Msg
        }
    }
    impl From<Preview> for Msg {
        fn from(_: Preview) -> Msg {
            Msg
        }
    }

    struct Sink;
    impl ractor::Actor for Sink {
        type Msg = Msg;
        type State = ();
        type Arguments = ();
        async fn pre_start(
            &self,
            _: ActorRef<Msg>,
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

    #[tokio::test]
    async fn previews_go_only_to_actors_that_ask_and_never_mark_a_skip() {
        let slot = Slot::default();
        let p = Preview(Arc::new(Delivery {
            topic: "orders_topic".into(),
            kind: EventKind::Orders,
            ranges: Default::default(),
            rows: Arc::new(Rows::empty_for(EventKind::Orders)),
        }));
        let (actor, _) = ractor::ActorRuntime::spawn_instant(None, Sink, ()).unwrap();
        slot.set(actor.clone());
        assert!(!slot.preview(&p), "a plain slot gets no previews");
        slot.set_previewing(actor.clone());
        for _ in 0..MAX_PREVIEWS {
            assert!(slot.preview(&p));
        }
        assert!(!slot.preview(&p), "a backed-up actor misses previews");
        assert!(!slot.take_skipped(), "a missed preview is not a skip");
        slot.preview_done();
        assert!(slot.preview(&p));
        actor.kill();
    }
}
