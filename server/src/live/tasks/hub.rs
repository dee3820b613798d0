//! The websocket hub: the newest value of every message type (for `snapshot` on connect) and a
//! bounded queue per client. Publishing never waits on a client: a client whose queue is full
//! is skipped to a fresh snapshot, and one that keeps falling behind is dropped.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use serde_json::Value;
use tokio::sync::Notify;

use crate::live::tasks::metrics::LiveMetrics;

/// Every message the page gets, one name each (its `type`). The state messages are kept for
/// snapshots, in this order; the others are pushed and forgotten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Message {
    /// What the page draws: every KPI's declared cards and charts (`views::layout`).
    Views,
    /// The cards (`views::cards`).
    Kpis,
    /// The charts, funnels and tables (`views::charts`).
    Series,
    Alerts,
    AlertGroups,
    LatestOrders,
    LatestErrors,
    Health,
    /// Every KPI's open windows (snapshots and `/api/dashboard` only; not pushed).
    Provisional,
    Heartbeat,
}

impl Message {
    /// Every message type; all but the heartbeat are kept for snapshots.
    pub const ALL: [Message; 10] = [
        Message::Views,
        Message::Kpis,
        Message::Series,
        Message::Alerts,
        Message::AlertGroups,
        Message::LatestOrders,
        Message::LatestErrors,
        Message::Health,
        Message::Provisional,
        Message::Heartbeat,
    ];
    /// The types a snapshot carries (the newest of each).
    pub const KEPT: &'static [Message] = Self::ALL.split_at(9).0;

    pub fn as_str(self) -> &'static str {
        match self {
            Message::Views => "views",
            Message::Kpis => "kpis",
            Message::Series => "series",
            Message::Alerts => "alerts",
            Message::AlertGroups => "alert_groups",
            Message::LatestOrders => "latest_orders",
            Message::LatestErrors => "latest_errors",
            Message::Health => "health",
            Message::Provisional => "provisional",
            Message::Heartbeat => "heartbeat",
        }
    }

    fn kept(self) -> bool {
        Self::KEPT.contains(&self)
    }

    /// What the message carries (docs/reference/http.md).
    pub fn doc(self) -> &'static str {
        match self {
            Message::Views => "What the page draws: every KPI's declared cards and charts, in registry order.",
            Message::Kpis => "The cards' values over the page's period, against the period before.",
            Message::Series => "The charts, funnels and tables: each declared chart's points per window.",
            Message::Alerts => "The newest alerts.",
            Message::AlertGroups => "Open and recent alert groups with their acknowledge/silence state.",
            Message::LatestOrders => "The newest orders.",
            Message::LatestErrors => "The newest ERROR and FATAL errors.",
            Message::Health => "Pipelines, consumer lag, last commits, the KPI reads' state.",
            Message::Provisional => "Every KPI's open windows (running values); in snapshots and /api/dashboard only, pushed as it changes every http.provisional_ms.",
            Message::Heartbeat => "Sent when nothing else was; carries no data.",
        }
    }
}

#[derive(Clone, Debug)]
pub struct HubParams {
    pub max_clients: usize,
    /// Frames a client may have waiting; one more and it is skipped to a snapshot.
    pub queue_frames: usize,
    /// Skips in a row (without catching up in between) before the client is dropped.
    pub max_skips: u32,
}

impl Default for HubParams {
    fn default() -> Self {
        HubParams {
            max_clients: 1_000,
            queue_frames: 32,
            max_skips: 3,
        }
    }
}

/// One client's outbox. The writer task waits on `ready` and drains `frames`.
pub struct Outbox {
    frames: Mutex<VecDeque<Utf8Bytes>>,
    pub ready: Notify,
    skips: AtomicU32,
    closed: AtomicBool,
}

impl Outbox {
    fn new() -> Self {
        Outbox {
            frames: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            skips: AtomicU32::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Everything waiting, oldest first; an empty take means the client has caught up.
    pub fn take(&self) -> Vec<Utf8Bytes> {
        let mut q = self.frames.lock().unwrap_or_else(|p| p.into_inner());
        let out: Vec<_> = q.drain(..).collect();
        if out.is_empty() {
            self.skips.store(0, Ordering::Relaxed);
        }
        out
    }

    /// Set when the hub dropped this client for falling behind.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    Skipped,
    Dropped,
}

impl Outbox {
    fn push(&self, frame: Utf8Bytes, snapshot: impl FnOnce() -> Utf8Bytes, p: &HubParams) -> Push {
        if self.is_closed() {
            return Push::Dropped;
        }
        let mut q = self.frames.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < p.queue_frames {
            q.push_back(frame);
            drop(q);
            self.ready.notify_one();
            return Push::Queued;
        }
        // Stale frames are worth nothing: replace them with the newest full state.
        q.clear();
        let skips = self.skips.fetch_add(1, Ordering::Relaxed) + 1;
        if skips > p.max_skips {
            self.closed.store(true, Ordering::Relaxed);
            drop(q);
            self.ready.notify_one();
            return Push::Dropped;
        }
        q.push_back(snapshot());
        drop(q);
        self.ready.notify_one();
        Push::Skipped
    }
}

struct State {
    seq: u64,
    latest: BTreeMap<Message, Value>,
    clients: HashMap<u64, Arc<Outbox>>,
    next_id: u64,
}

#[derive(Clone)]
pub struct Hub {
    state: Arc<Mutex<State>>,
    params: HubParams,
    metrics: LiveMetrics,
    /// Unix ms of the last `/api/dashboard` read (0: never): a reader without a websocket.
    asked_ms: Arc<AtomicI64>,
}

#[derive(Debug, thiserror::Error)]
#[error("too many websocket clients ({0}); raise http.ws_max_clients")]
pub struct Full(pub usize);

/// The wire form of every message: `type`, `v`, `seq`, server time, `data`.
pub fn frame(kind: &str, seq: u64, now_ms: i64, data: &Value) -> Utf8Bytes {
    let ts = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({"type": kind, "v": 1, "seq": seq, "ts": ts, "ts_ms": now_ms, "data": data})
        .to_string()
        .into()
}

#[cfg(test)]
fn text(f: &Utf8Bytes) -> &str {
    f.as_str()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Hub {
    pub fn new(params: HubParams, metrics: LiveMetrics) -> Hub {
        Hub {
            state: Arc::new(Mutex::new(State {
                seq: 0,
                latest: BTreeMap::new(),
                clients: HashMap::new(),
                next_id: 0,
            })),
            params,
            metrics,
            asked_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot_frame(state: &State) -> Utf8Bytes {
        let mut data = serde_json::Map::new();
        for &kind in Message::KEPT {
            if let Some(v) = state.latest.get(&kind) {
                data.insert(kind.as_str().to_string(), v.clone());
            }
        }
        frame("snapshot", state.seq, now_ms(), &Value::Object(data))
    }

    /// A new client, its outbox already holding a snapshot.
    pub fn join(&self) -> Result<(u64, Arc<Outbox>), Full> {
        let mut s = self.lock();
        if s.clients.len() >= self.params.max_clients {
            self.metrics
                .ws_rejected
                .with_label_values(&["max_clients"])
                .inc();
            return Err(Full(self.params.max_clients));
        }
        let id = s.next_id;
        s.next_id += 1;
        let outbox = Arc::new(Outbox::new());
        outbox.push(
            Self::snapshot_frame(&s),
            || unreachable_snapshot(),
            &self.params,
        );
        s.clients.insert(id, outbox.clone());
        self.metrics.ws_clients.set(s.clients.len() as i64);
        Ok((id, outbox))
    }

    pub fn leave(&self, id: u64) {
        let mut s = self.lock();
        s.clients.remove(&id);
        self.metrics.ws_clients.set(s.clients.len() as i64);
    }

    /// Send `data` as a `kind` message to every client; state types are kept for snapshots.
    pub fn publish(&self, kind: Message, data: Value) {
        let mut s = self.lock();
        s.seq += 1;
        let f = frame(kind.as_str(), s.seq, now_ms(), &data);
        if kind.kept() {
            s.latest.insert(kind, data);
        }
        let mut snapshot: Option<Utf8Bytes> = None;
        let mut dropped = Vec::new();
        for (id, outbox) in &s.clients {
            let result = outbox.push(
                f.clone(),
                || {
                    snapshot
                        .get_or_insert_with(|| Self::snapshot_frame(&s))
                        .clone()
                },
                &self.params,
            );
            match result {
                Push::Queued => self
                    .metrics
                    .ws_sent
                    .with_label_values(&[kind.as_str()])
                    .inc(),
                Push::Skipped => self.metrics.ws_skipped.inc(),
                Push::Dropped => dropped.push(*id),
            }
        }
        for id in dropped {
            s.clients.remove(&id);
            self.metrics.ws_dropped.with_label_values(&["slow"]).inc();
        }
        self.metrics.ws_clients.set(s.clients.len() as i64);
    }

    /// Publish only when `data` differs from the last value of `kind` (tables that rarely
    /// change are not resent every refresh).
    pub fn publish_changed(&self, kind: Message, data: Value) {
        if self.lock().latest.get(&kind) == Some(&data) {
            return;
        }
        self.publish(kind, data);
    }

    /// Keep `data` as the newest `kind` for snapshots and `/api/dashboard` without pushing it
    /// (state that is big or fast and that the page does not draw).
    pub fn keep(&self, kind: Message, data: Value) {
        if kind.kept() {
            self.lock().latest.insert(kind, data);
        }
    }

    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    /// Someone read the dashboard without a websocket (`/api/dashboard`).
    pub fn asked(&self) {
        self.asked_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether anyone looks: a websocket client now, or an `/api/dashboard` read within `within`.
    pub fn watched(&self, within: std::time::Duration) -> bool {
        let since_ms = now_ms().saturating_sub(self.asked_ms.load(Ordering::Relaxed));
        let within_ms = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        self.clients() > 0 || since_ms < within_ms
    }

    /// The newest value of a state type (tests, the HTTP JSON view).
    pub fn latest(&self, kind: Message) -> Option<Value> {
        self.lock().latest.get(&kind).cloned()
    }
}

/// A new outbox is never full, so its first push never asks for a snapshot.
fn unreachable_snapshot() -> Utf8Bytes {
    Utf8Bytes::from_static("")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn hub(max_clients: usize, queue_frames: usize) -> Hub {
        Hub::new(
            HubParams {
                max_clients,
                queue_frames,
                max_skips: 2,
            },
            LiveMetrics::new(&prometheus::Registry::new()),
        )
    }

    fn parse(f: &Utf8Bytes) -> Value {
        serde_json::from_str(text(f)).unwrap()
    }

    #[test]
    fn watched_while_a_client_is_connected_or_for_a_while_after_an_api_read() {
        let hub = hub(10, 8);
        let minute = std::time::Duration::from_secs(60);
        assert!(!hub.watched(minute), "nobody yet");
        let (id, _outbox) = hub.join().unwrap();
        assert!(hub.watched(minute));
        hub.leave(id);
        assert!(!hub.watched(minute), "the client left");
        hub.asked();
        assert!(hub.watched(minute));
        assert!(
            !hub.watched(std::time::Duration::ZERO),
            "the read is older than zero"
        );
    }

    #[test]
    fn a_new_client_gets_a_snapshot_of_the_newest_state_then_every_message() {
        let h = hub(10, 8);
        h.publish(Message::Kpis, json!({"orders": 1}));
        h.publish(Message::Kpis, json!({"orders": 2}));
        h.publish(Message::Heartbeat, json!({}));
        let (_, out) = h.join().unwrap();
        let first = out.take();
        assert_eq!(first.len(), 1);
        let snap = parse(&first[0]);
        assert_eq!(snap["type"], "snapshot");
        assert_eq!(snap["data"]["kpis"]["orders"], 2);
        assert!(snap["data"].get("heartbeat").is_none());
        assert_eq!(snap["seq"], 3);
        h.publish(Message::Alerts, json!([{"alert_type": "FATAL_ERROR"}]));
        let next = out.take();
        let m = parse(&next[0]);
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("alerts"), Some(4))
        );
        assert!(m["ts"].as_str().unwrap().ends_with('Z') && m["ts_ms"].as_i64().unwrap() > 0);
    }

    #[test]
    fn a_slow_client_is_skipped_to_a_snapshot_then_dropped_and_never_blocks_others() {
        let h = hub(10, 2);
        let (_, slow) = h.join().unwrap();
        let (fast_id, fast) = h.join().unwrap();
        fast.take();
        // Slow holds its snapshot + message 0; message 1 overflows: the queue becomes one
        // snapshot holding message 1; message 2 queues behind it.
        for i in 0..3 {
            h.publish(Message::Kpis, json!({"i": i}));
            assert_eq!(fast.take().len(), 1, "the fast client gets every message");
        }
        let waiting: Vec<Value> = slow.take().iter().map(parse).collect();
        assert_eq!(waiting.len(), 2);
        assert_eq!(
            (
                waiting[0]["type"].as_str(),
                waiting[0]["data"]["kpis"]["i"].as_i64()
            ),
            (Some("snapshot"), Some(1))
        );
        assert_eq!(waiting[1]["data"]["i"], 2);
        // Caught up (empty take resets the streak); now fall behind 3 times in a row: dropped.
        assert!(slow.take().is_empty());
        for i in 0..12 {
            h.publish(Message::Kpis, json!({"i": i}));
            fast.take();
        }
        assert!(slow.is_closed());
        assert_eq!(h.clients(), 1);
        h.leave(fast_id);
        assert_eq!(h.clients(), 0);
    }

    #[test]
    fn connections_are_capped() {
        let h = hub(2, 4);
        let (a, _) = h.join().unwrap();
        h.join().unwrap();
        assert!(h.join().is_err());
        h.leave(a);
        assert!(h.join().is_ok());
    }
}
