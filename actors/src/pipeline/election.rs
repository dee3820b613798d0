//! Electing the one instance that computes the rollup tables, with Kafka itself: every
//! instance joins group `{kafka.group}-owner` on the one-partition topic of the same name
//! (created if missing) and whoever the group gives partition 0 owns. Nothing is ever read
//! from the topic; the group protocol is the election, its session timeout the lease.
//!
//! Two guards cover what the protocol alone does not. A process frozen past its session
//! (SIGSTOP, a long pause) may still believe it owns when it wakes up: it gives up at once and
//! rejoins, and [`Ownership`]'s lease has already stopped it acting as owner meanwhile. And a
//! group that settles with nobody holding partition 0 (Tansu 0.6.0's stale-leader group, see
//! `group.rs`) must not go unnoticed: the owner commits a heartbeat as the group's offset of
//! partition 0 (a counter; the topic stays empty), every other member reads it, and one that
//! sees it stand still for longer than a session plus [`HEARTBEAT_GRACE`] rejoins, which forms
//! the group anew.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tracing::{info, warn};

use super::kafka::{group_config, session_timeout_of};
use super::params::KafkaParams;
use crate::error::{into_actor, Error, Handled};
use crate::handoff::owner::{Member, Ownership};
use crate::supervision::{ChildInfo, ChildSpecs, Progress, Spawner};
use crate::telemetry::Metrics;

/// The group's name in metrics and `/readyz`.
pub const GROUP: &str = "election";
const ACTOR: &str = "elector";
/// How often the group's members are listed (and an ownerless group noticed); after a failure
/// the wait doubles up to [`DESCRIBE_MAX_WAIT`] (Tansu 0.6.0 cannot describe groups at all).
const DESCRIBE_EVERY: Duration = Duration::from_secs(2);
const DESCRIBE_MAX_WAIT: Duration = Duration::from_secs(600);
/// How long past a session the owner's heartbeat may stand still before a member rejoins.
const HEARTBEAT_GRACE: Duration = Duration::from_secs(3);
/// How often an instance that resigned reads the owner's heartbeat.
const RESIGNED_WATCH_EVERY: Duration = Duration::from_secs(2);

/// The describing client's context: a broker that drops the connection on DescribeGroups
/// (Tansu 0.6.0) must not fill our log with errors; the failure is shown in `/readyz`.
struct Quiet;

impl rdkafka::ClientContext for Quiet {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(target: "librdkafka", "describer: {fac} {message}");
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "describer: {error}: {reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for Quiet {}

/// The coordination topic and its group: one name, derived from `kafka.group`.
pub fn owner_topic(group: &str) -> String {
    format!("{group}-owner")
}

#[derive(Clone, Debug)]
pub struct ElectionParams {
    pub kafka: KafkaParams,
    pub ownership: Ownership,
    pub metrics: Metrics,
    pub shutdown: Arc<AtomicBool>,
}

pub struct ElectionGroup(pub ElectionParams);

#[async_trait::async_trait]
impl ChildSpecs for ElectionGroup {
    async fn spawn(&self, s: &mut Spawner) -> Result<(), Error> {
        let p = self.0.clone();
        s.spawn(ACTOR, Elector, |progress| {
            progress.set_busy(true);
            (p, progress)
        })
        .await?;
        Ok(())
    }

    /// Leave the group before the elector is stopped, so the next owner need not wait for our
    /// session to end. Runs after the rollup group has drained (stage order).
    async fn drain(&self, children: &[ChildInfo]) {
        for child in children {
            let elector: ActorRef<ElectorMsg> = child.cell.clone().into();
            let _ = ractor::call_t!(elector, ElectorMsg::Leave, 10_000);
        }
    }

    fn winding_down(&self) -> bool {
        self.0.shutdown.load(Ordering::Relaxed)
    }
}

pub enum ElectorMsg {
    Poll,
    Leave(ractor::RpcReplyPort<()>),
}

struct Elector;

struct ElectorState {
    params: ElectionParams,
    progress: Arc<Progress>,
    consumer: Arc<BaseConsumer>,
    /// A client of its own for describing the group (see [`Quiet`]).
    describer: Arc<BaseConsumer<Quiet>>,
    topic: String,
    session: Duration,
    last_poll: Instant,
    /// When to describe the group next, and the wait after that.
    describe_at: Instant,
    describe_wait: Duration,
    /// The owner's heartbeat as last read, and since when it has stood still.
    heartbeat: (Option<i64>, Instant),
    /// What this instance commits as owner next.
    beat: i64,
    left: bool,
    /// After stepping down: not the owner before then, whatever the group says.
    hold_off_until: Option<Instant>,
}

impl Actor for Elector {
    type Msg = ElectorMsg;
    type State = ElectorState;
    type Arguments = (ElectionParams, Arc<Progress>);

    async fn pre_start(
        &self,
        myself: ActorRef<ElectorMsg>,
        (params, progress): Self::Arguments,
    ) -> Result<ElectorState, ActorProcessingErr> {
        into_actor(start(myself, params, progress).await)
    }

    async fn handle(
        &self,
        myself: ActorRef<ElectorMsg>,
        msg: ElectorMsg,
        state: &mut ElectorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ElectorMsg::Poll if state.params.ownership.resigned() => {
                if !state.left {
                    warn!(topic = %state.topic, "the rollup group failed on this instance: leaving the election so that another instance owns the rollup tables");
                    state.leave().await;
                }
                state.watch_after_resigning(&myself).await;
                Ok(())
            }
            ElectorMsg::Poll if state.left => Ok(()),
            ElectorMsg::Poll => into_actor(state.poll(&myself).await),
            ElectorMsg::Leave(reply) => {
                state.leave().await;
                let _ = reply.send(());
                Ok(())
            }
        }
    }
}

async fn start(
    myself: ActorRef<ElectorMsg>,
    params: ElectionParams,
    progress: Arc<Progress>,
) -> Result<ElectorState, Error> {
    let topic = owner_topic(&params.kafka.group);
    ensure_topic(&params.kafka, &topic).await?;
    let consumer: BaseConsumer = group_config(&params.kafka, &topic)
        .set("auto.offset.reset", "latest")
        .create()
        .map_err(Error::kafka("creating the election client"))?;
    let consumer = Arc::new(consumer);
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &params.kafka.brokers);
    for (k, v) in &params.kafka.extra {
        cfg.set(k, v);
    }
    let describer = Arc::new(
        cfg.create_with_context(Quiet)
            .map_err(Error::kafka("creating the group describer"))?,
    );
    let (c, t) = (consumer.clone(), topic.clone());
    tokio::task::spawn_blocking(move || c.subscribe(&[&t]))
        .await
        .map_err(Error::call("joining the election"))?
        .map_err(Error::kafka("joining the election"))?;
    info!(%topic, "joined the election for the rollup tables");
    let session = session_timeout_of(&params.kafka);
    params.ownership.set(false, Instant::now());
    myself
        .send_message(ElectorMsg::Poll)
        .map_err(Error::call("starting the election"))?;
    Ok(ElectorState {
        params,
        progress,
        consumer,
        describer,
        topic,
        session,
        last_poll: Instant::now(),
        describe_at: Instant::now(),
        describe_wait: DESCRIBE_EVERY,
        heartbeat: (None, Instant::now()),
        beat: 0,
        left: false,
        hold_off_until: None,
    })
}

/// Create the one-partition coordination topic unless it exists.
async fn ensure_topic(kafka: &KafkaParams, topic: &str) -> Result<(), Error> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in &kafka.extra {
        cfg.set(k, v);
    }
    let admin: AdminClient<DefaultClientContext> = cfg
        .create()
        .map_err(Error::kafka("creating the admin client"))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            &[new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(Error::kafka(format!("creating the election topic {topic}")))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(Error::Transient(format!(
                    "creating the election topic {topic}: {code}; create it with 1 partition, or allow shopwatch to create topics"
                )))
            }
        }
    }
    Ok(())
}

impl ElectorState {
    async fn leave(&mut self) {
        self.left = true;
        self.params.ownership.set(false, Instant::now());
        self.params.metrics.set_rollup_owner(false);
        let c = self.consumer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            c.unsubscribe();
            // Let the leave reach the coordinator.
            let _ = c.poll(Duration::from_millis(100));
        })
        .await;
        info!(topic = %self.topic, "left the election");
    }

    /// Out of the group, keep reading the owner's heartbeat: this instance maintains the lake
    /// until another owner is heard (`Ownership::maintains`); with nobody else, it goes on.
    async fn watch_after_resigning(&mut self, myself: &ActorRef<ElectorMsg>) {
        self.progress.beat();
        let (c, t) = (self.consumer.clone(), self.topic.clone());
        if let Ok(read) = tokio::task::spawn_blocking(move || read_heartbeat(&c, &t)).await {
            if read != self.heartbeat.0 {
                if self.heartbeat.0.is_some() && read.is_some() {
                    self.params.ownership.heard_other_owner();
                }
                self.heartbeat = (read, Instant::now());
            }
        }
        if !self.params.ownership.maintains() {
            return; // another owner maintains: nothing left to watch for
        }
        myself.send_after(RESIGNED_WATCH_EVERY, || ElectorMsg::Poll);
    }

    async fn poll(&mut self, myself: &ActorRef<ElectorMsg>) -> Handled {
        self.progress.beat();
        let now = Instant::now();
        if now.duration_since(self.last_poll) > self.session {
            // We were frozen past our session: the group has most likely moved on without us.
            warn!(topic = %self.topic, paused = ?now.duration_since(self.last_poll), "the election was not polled for longer than a session; giving up ownership and rejoining");
            self.rejoin().await?;
        } else if self.params.ownership.take_deposed() {
            // Another instance committed the rollup state while the group gave us partition 0
            // too: ask the group again rather than trust the verdict that made two owners.
            info!(topic = %self.topic, "stepped down: another instance committed the rollup tables; rejoining the election");
            self.rejoin().await?;
            // The assignment read right after rejoining is often still the one that made two
            // owners (seen on Tansu: the deposed instance owned again 50 ms later and deposed
            // the other in turn); a session lets the group settle first.
            self.hold_off_until = Some(Instant::now() + self.session);
        }
        let (c, d) = (self.consumer.clone(), self.describer.clone());
        let t = self.topic.clone();
        let describe = now >= self.describe_at;
        self.beat += 1;
        let beat = self.beat;
        let (held, heartbeat, described) = tokio::task::spawn_blocking(move || {
            for _ in 0..5 {
                // Nothing is ever produced to the topic; polling runs the group's callbacks.
                let _ = c.poll(Duration::from_millis(100));
            }
            let held = holds_partition_zero(&c, &t);
            let heartbeat = if held {
                commit_heartbeat(&c, &t, beat);
                None
            } else {
                read_heartbeat(&c, &t)
            };
            let described = describe.then(|| describe_group(&d, &t));
            (held, heartbeat, described)
        })
        .await
        .map_err(Error::call("polling the election"))?;
        self.last_poll = Instant::now();
        let lease = self.last_poll + self.session / 2;
        let was = self.params.ownership.is_owner();
        self.params
            .ownership
            .set(owns(held, self.last_poll, self.hold_off_until), lease);
        let is = self.params.ownership.is_owner();
        if is != was {
            info!(topic = %self.topic, owner = is, "rollup tables ownership changed");
        }
        self.params.metrics.set_rollup_owner(is);
        if let Some(described) = described {
            self.describe_wait = if described.is_ok() {
                DESCRIBE_EVERY
            } else {
                (self.describe_wait * 2).min(DESCRIBE_MAX_WAIT)
            };
            self.describe_at = self.last_poll + self.describe_wait;
            self.params.ownership.set_members(described);
        }
        if held {
            self.heartbeat = (None, self.last_poll);
        } else {
            self.check_heartbeat(heartbeat).await?;
        }
        myself
            .send_message(ElectorMsg::Poll)
            .map_err(Error::call("polling the election"))
    }

    /// Rejoin when the owner's heartbeat has stood still for longer than a session: nobody
    /// owns (or the owner cannot reach the group), so the group must form again.
    async fn check_heartbeat(&mut self, read: Option<i64>) -> Handled {
        if read != self.heartbeat.0 {
            // A change from one beat to the next (not the first read, which may be a dead
            // owner's last beat) says another owner is alive.
            if self.heartbeat.0.is_some() && read.is_some() {
                self.params.ownership.heard_other_owner();
            }
            self.heartbeat = (read, self.last_poll);
            return Ok(());
        }
        let still = self.heartbeat.1.elapsed();
        if still > self.session + HEARTBEAT_GRACE {
            warn!(topic = %self.topic, still = ?still, "the rollup tables' owner has not been heard of for longer than a session; rejoining the election");
            self.rejoin().await?;
        }
        Ok(())
    }

    async fn rejoin(&mut self) -> Handled {
        self.params.ownership.set(false, Instant::now());
        self.heartbeat = (None, Instant::now());
        self.params
            .metrics
            .group_rejoins
            .with_label_values(&[&self.topic])
            .inc();
        let (c, t) = (self.consumer.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || {
            c.unsubscribe();
            c.subscribe(&[&t])
        })
        .await
        .map_err(Error::call("rejoining the election"))?
        .map_err(Error::kafka("rejoining the election"))?;
        self.last_poll = Instant::now();
        Ok(())
    }
}

/// Whether the group's verdict `held` makes this instance the owner at `now`: not while it
/// holds off after stepping down.
fn owns(held: bool, now: Instant, hold_off_until: Option<Instant>) -> bool {
    held && hold_off_until.is_none_or(|t| now >= t)
}

fn holds_partition_zero(consumer: &BaseConsumer, topic: &str) -> bool {
    consumer.assignment().is_ok_and(|a| {
        a.elements_for_topic(topic)
            .iter()
            .any(|e| e.partition() == 0)
    })
}

/// The owner's heartbeat: the group's offset of partition 0 (never read as a position).
fn commit_heartbeat(consumer: &BaseConsumer, topic: &str, beat: i64) {
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(topic, 0, Offset::Offset(beat))
        .is_ok()
    {
        // Asynchronous: a lost beat is only a late one.
        let _ = consumer.commit(&tpl, CommitMode::Async);
    }
}

fn read_heartbeat(consumer: &BaseConsumer, topic: &str) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let read = consumer
        .committed_offsets(tpl, Duration::from_secs(2))
        .ok()?;
    let beat = read.elements_for_topic(topic).first()?.offset();
    match beat {
        Offset::Offset(n) => Some(n),
        _ => None,
    }
}

/// The group's members as the broker describes them.
fn describe_group(consumer: &BaseConsumer<Quiet>, topic: &str) -> Result<Vec<Member>, String> {
    let list = consumer
        .fetch_group_list(Some(topic), Duration::from_secs(2))
        .map_err(|e| format!("describing group {topic}: {e}"))?;
    let Some(group) = list.groups().iter().find(|g| g.name() == topic) else {
        return Err(format!("describing group {topic}: not found"));
    };
    Ok(group
        .members()
        .iter()
        .map(|m| Member {
            client_id: m.client_id().to_string(),
            host: m.client_host().to_string(),
            owner: m
                .assignment()
                .and_then(|a| assigned_partitions(a, topic))
                .is_some_and(|ps| ps.contains(&0)),
        })
        .collect())
}

/// The partitions of `topic` in a consumer-protocol assignment (version, then per topic its
/// name and partitions, then user data); `None` when it does not parse.
pub fn assigned_partitions(bytes: &[u8], topic: &str) -> Option<Vec<i32>> {
    let mut r = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (r.get(..n)?, r.get(n..)?);
        r = tail;
        Some(head)
    };
    let _version = i16::from_be_bytes(take(2)?.try_into().ok()?);
    let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
        let name = take(len.max(0) as usize)?.to_vec();
        let n = i32::from_be_bytes(take(4)?.try_into().ok()?);
        for _ in 0..n.max(0) {
            let p = i32::from_be_bytes(take(4)?.try_into().ok()?);
            if name == topic.as_bytes() {
                out.push(p);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(1i16.to_be_bytes());
        b.extend((topics.len() as i32).to_be_bytes());
        for (name, ps) in topics {
            b.extend((name.len() as i16).to_be_bytes());
            b.extend(name.as_bytes());
            b.extend((ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // no user data
        b
    }

    #[test]
    fn a_stepped_down_instance_holds_off_for_a_session() {
        let now = Instant::now();
        let later = now + Duration::from_secs(6);
        assert!(owns(true, now, None));
        assert!(!owns(false, now, None));
        assert!(!owns(true, now, Some(later)), "holding off");
        assert!(owns(true, later, Some(later)), "the hold-off is over");
        assert!(!owns(false, later, Some(now)));
    }

    #[test]
    fn assignments_parse() {
        let a = assignment(&[("other", &[0, 1]), ("g-owner", &[0])]);
        assert_eq!(assigned_partitions(&a, "g-owner"), Some(vec![0]));
        assert_eq!(assigned_partitions(&a, "other"), Some(vec![0, 1]));
        assert_eq!(assigned_partitions(&a, "none"), Some(vec![]));
        let empty = assignment(&[]);
        assert_eq!(assigned_partitions(&empty, "g-owner"), Some(vec![]));
        // Truncated or garbage: not parsed, never a panic.
        assert_eq!(assigned_partitions(&a[..a.len() - 9], "g-owner"), None);
        assert_eq!(assigned_partitions(&[0xff; 3], "g-owner"), None);
        assert_eq!(assigned_partitions(&[], "g-owner"), None);
    }
}
