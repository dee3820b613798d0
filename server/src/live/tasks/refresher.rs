//! The KPI refresher: after lake commits (at most every `min_interval`) and at least every
//! `refresh`, it runs the dashboard's query set through Flight SQL — the embedded server or
//! Dremio, per `query.backend` — and publishes the results to the websocket hub.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use shopwatch_actors::error::{into_actor, Error, Handled};
use shopwatch_actors::faults::Faults;
use shopwatch_actors::supervision::{ChildSpecs, Progress, Spawner, StatusHandle};
use shopwatch_actors::telemetry::Metrics;
use tracing::{debug, warn};

use crate::config::QueryTarget;
use crate::flight::client::FlightQueryClient;
use crate::flight::kpis;
use crate::live::model::alert_groups;
use crate::live::model::health::{health, QueryHealth};
use crate::live::model::results::{rows, ALERT_COLUMNS, ERROR_COLUMNS, ORDER_COLUMNS};
use crate::live::model::views;
use crate::live::tasks::hub::{Hub, Message};
use crate::live::tasks::metrics::LiveMetrics;
use crate::live::tasks::pacing::{paced_interval, round, Round, ASKED_KEEPS};
use crate::live::tasks::provisional::Board;

/// The refresher's group (and role) name in metrics and `/readyz`.
pub const GROUP: &str = "refresher";

#[derive(Clone)]
pub struct RefresherParams {
    pub target: QueryTarget,
    pub refresh: Duration,
    pub min_interval: Duration,
    pub hub: Hub,
    /// Cards and trends: the lake's windows with the aggregators' open ones over them.
    pub board: Board,
    pub metrics: Metrics,
    pub live: LiveMetrics,
    pub pipelines: Vec<StatusHandle>,
    pub faults: Arc<Faults>,
    /// Whether this instance owns the rollup tables, and the election's members.
    pub ownership: shopwatch_actors::handoff::Ownership,
    /// Every landed commit (a refresh follows, paced).
    pub commits: shopwatch_actors::handoff::CommitFeed,
}

/// The refresher runs under the one supervisor like every long-lived actor.
pub struct RefresherGroup(pub RefresherParams);

#[async_trait::async_trait]
impl ChildSpecs for RefresherGroup {
    async fn spawn(&self, s: &mut Spawner) -> Result<(), Error> {
        s.spawn(GROUP, Refresher, |progress| RefresherArgs {
            params: self.0.clone(),
            progress,
        })
        .await?;
        Ok(())
    }
}

pub struct RefresherArgs {
    pub params: RefresherParams,
    pub progress: Arc<Progress>,
}

pub enum RefreshMsg {
    /// Timer: refresh if a commit landed since the last one, or `refresh` has passed.
    Tick,
    /// A lake commit landed.
    Committed,
}

pub struct Refresher;

pub struct RefresherState {
    p: RefresherParams,
    progress: Arc<Progress>,
    client: Option<FlightQueryClient>,
    dirty: bool,
    last_refresh: Option<Instant>,
    last_health: Option<Instant>,
    /// A round was skipped because nobody watched.
    owed: bool,
    query: QueryHealth,
}

impl Actor for Refresher {
    type Msg = RefreshMsg;
    type State = RefresherState;
    type Arguments = RefresherArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: RefresherArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let p = args.params;
        me.send_interval(p.min_interval, || RefreshMsg::Tick);
        let mut commits = p.commits.subscribe();
        let to = me.clone();
        // Ends by itself once this actor is gone (the cast fails), so a kill leaks nothing.
        tokio::spawn(async move {
            while commits.changed().await.is_ok() {
                if to.cast(RefreshMsg::Committed).is_err() {
                    break;
                }
            }
        });
        Ok(RefresherState {
            query: QueryHealth {
                backend: p.target.backend,
                last_ok_ms: None,
                last_error: None,
                last_duration_ms: None,
            },
            p,
            progress: args.progress,
            client: None,
            dirty: true,
            last_refresh: None,
            last_health: None,
            owed: false,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: RefreshMsg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        into_actor(s.handle(msg).await)
    }
}

impl RefresherState {
    async fn handle(&mut self, msg: RefreshMsg) -> Handled {
        let progress = self.progress.clone();
        let _busy = progress.busy();
        self.p.faults.at_handler(GROUP).await?;
        let s = self;
        match msg {
            RefreshMsg::Committed => s.dirty = true,
            RefreshMsg::Tick => {
                let pace = paced_interval(s.p.min_interval, s.p.refresh, s.query.last_duration_ms);
                let watched = s.p.hub.watched(ASKED_KEEPS);
                let since = s.last_refresh.map(|t| t.elapsed());
                match round(watched, s.owed, since, s.dirty, pace, s.p.refresh) {
                    Round::Wait => {}
                    Round::Unwatched => {
                        s.owed = true;
                        s.last_refresh = Some(Instant::now());
                        s.p.live.refreshes.with_label_values(&["unwatched"]).inc();
                    }
                    Round::Run => {
                        s.dirty = false;
                        s.owed = false;
                        s.last_refresh = Some(Instant::now());
                        s.refresh().await;
                    }
                }
                if s.last_health
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(2))
                {
                    s.last_health = Some(Instant::now());
                    s.p.hub.publish(
                        Message::Health,
                        health(&s.p.pipelines, &s.p.metrics, &s.p.ownership, &s.query),
                    );
                }
            }
        }
        Ok(())
    }

    async fn refresh(&mut self) {
        let started = Instant::now();
        match self.run_set().await {
            Ok(()) => {
                self.p.live.refreshes.with_label_values(&["ok"]).inc();
                self.query.last_ok_ms = Some(chrono::Utc::now().timestamp_millis());
                self.query.last_error = None;
                self.query.last_duration_ms = Some(started.elapsed().as_secs_f64() * 1e3);
            }
            Err(e) => {
                self.p.live.refreshes.with_label_values(&["error"]).inc();
                let text = format!("{e:#}");
                warn!(error = %text, backend = self.p.target.backend, "KPI refresh failed; retrying on the next tick");
                self.query.last_error = Some(text);
                // A broken channel or session is rebuilt from scratch next time.
                self.client = None;
            }
        }
    }

    async fn client(&mut self) -> anyhow::Result<&mut FlightQueryClient> {
        if self.client.is_none() {
            self.client = Some(self.p.target.connect().await?);
        }
        self.client
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no Flight client"))
    }

    async fn run_set(&mut self) -> anyhow::Result<()> {
        let t = self.p.target.clone();
        let now = chrono::Utc::now().timestamp_micros();
        let started = Instant::now();
        let fetched = kpis::fetch(self.client().await?, &t.source, &t.namespace, now).await;
        let outcome = if fetched.is_ok() { "ok" } else { "error" };
        self.p
            .live
            .query_seconds
            .with_label_values(&["kpi_set", outcome])
            .observe(started.elapsed().as_secs_f64());
        let results = fetched?;
        let get =
            |name: &str| -> &[RecordBatch] { results.get(name).map(Vec::as_slice).unwrap_or(&[]) };
        // Every viewed KPI's rows, read by its own columns: a column missing from a result
        // fails the refresh (and says which), never blanks a card.
        let mut facts = views::Facts::default();
        for kpi in views::viewed() {
            let rows = views::read_rows(kpi, get(kpi.name())).map_err(anyhow::Error::msg)?;
            facts.0.insert(kpi.name(), rows);
        }
        self.p.board.exact(facts);
        let alerts = rows(get("recent_alerts"), &ALERT_COLUMNS);
        let latest_orders = rows(get("latest_orders"), &ORDER_COLUMNS);
        let latest_errors = rows(get("latest_errors"), &ERROR_COLUMNS);
        debug!("KPIs refreshed");
        let hub = &self.p.hub;
        hub.publish_changed(Message::Alerts, json!(alerts));
        hub.publish_changed(Message::LatestOrders, json!(latest_orders));
        hub.publish_changed(Message::LatestErrors, json!(latest_errors));
        self.refresh_alert_groups(now).await;
        Ok(())
    }

    /// The alert groups and the operators' word on them. A failure here (a seed lake without
    /// `alert_key` or the actions table) leaves the groups out, not the cards.
    async fn refresh_alert_groups(&mut self, now: i64) {
        let t = self.p.target.clone();
        let [groups, actions] = kpis::alert_queries(&t.source, &t.namespace, now);
        let Ok(client) = self.client().await else {
            return;
        };
        let found = match client.query_all(&[groups.sql, actions.sql]).await {
            Ok(found) => found,
            Err(e) => {
                debug!(error = %format!("{e:#}"), "alert groups not available");
                return;
            }
        };
        let (groups, actions) = (&found[0], &found[1]);
        let rows = alert_groups::groups(groups, &alert_groups::actions_from(actions), now);
        self.p
            .hub
            .publish_changed(Message::AlertGroups, json!(rows));
    }
}

#[cfg(test)]
mod tests {
    //! The refresher's row of the failure matrix: under the one supervisor like every actor.

    use std::sync::Arc;
    use std::time::Duration;

    use shopwatch_actors::faults::{Action, Faults, Point, Rule};
    use shopwatch_actors::runtime::{Pipelines, Stage};
    use shopwatch_actors::supervision::{PipelineState, SupervisionParams};
    use shopwatch_actors::telemetry::Metrics;

    use super::*;
    use crate::config::Secret;
    use crate::http::{router, AppState};
    use crate::live::api::ws::WsParams;
    use crate::live::tasks::hub::HubParams;

    fn params(faults: Arc<Faults>, metrics: &Metrics, live: &LiveMetrics) -> RefresherParams {
        let hub = Hub::new(HubParams::default(), live.clone());
        RefresherParams {
            // Nothing listens there: every refresh fails, which the refresher survives.
            target: QueryTarget {
                backend: "embedded",
                addr: "127.0.0.1:1".into(),
                username: "u".into(),
                password: Secret::new("p"),
                source: "s".into(),
                namespace: "ns".into(),
                timeout: Duration::from_millis(200),
                tls: None,
            },
            refresh: Duration::from_millis(500),
            min_interval: Duration::from_millis(100),
            hub: hub.clone(),
            board: Board::new(hub),
            metrics: metrics.clone(),
            live: live.clone(),
            ownership: shopwatch_actors::handoff::Ownership::solo(),
            commits: Default::default(),
            pipelines: Vec::new(),
            faults,
        }
    }

    async fn readyz(app: axum::Router) -> serde_json::Value {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let body = reqwest::get(format!("http://{addr}/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        server.abort();
        body
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_refresher_restarts_on_panic_error_and_freeze_and_stops_on_fatal() {
        let cases = [
            (Action::Panic, Some("panic")),
            (Action::Error, Some("error")),
            (Action::Delay(30_000), Some("stuck")),
            (Action::Fatal, None),
        ];
        for (action, restart) in cases {
            let case = format!("{action:?}");
            let metrics = Metrics::new();
            let live = LiveMetrics::new(&metrics.registry);
            let faults = Arc::new(Faults::default());
            faults.add(Rule {
                point: Point::Handler,
                action,
                times: Some(1),
                marker: None,
                target: Some(GROUP.into()),
            });
            let mut groups = Pipelines::start(Vec::new(), None, None).await.unwrap();
            let supervision = SupervisionParams {
                backoff_min: Duration::from_millis(20),
                backoff_max: Duration::from_millis(200),
                heartbeat: Duration::from_millis(100),
                stuck_timeout: Duration::from_millis(800),
                ..SupervisionParams::default()
            };
            let p = params(faults, &metrics, &live);
            let hub = p.hub.clone();
            groups
                .supervise(
                    GROUP,
                    "-",
                    Arc::new(RefresherGroup(p)),
                    supervision,
                    metrics.clone(),
                    Stage::Readers,
                )
                .await
                .unwrap();
            let state = || groups.statuses().first().map(|s| s.state.clone());
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let done = match restart {
                    Some(reason) => {
                        metrics
                            .restarts
                            .with_label_values(&[GROUP, GROUP, reason])
                            .get()
                            >= 1
                            && state() == Some(PipelineState::Running)
                    }
                    None => matches!(state(), Some(PipelineState::Failed(_))),
                };
                if done {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{case}: {:?}",
                    state()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if restart.is_none() {
                // /readyz says why, and is not ready.
                let app = router(AppState {
                    actions: None,
                    queries: None,
                    trends: Default::default(),
                    auth: None,
                    metrics: metrics.clone(),
                    ownership: shopwatch_actors::handoff::Ownership::solo(),
                    pipelines: Arc::new(groups.status_handles()),
                    hub,
                    live: live.clone(),
                    ws: Arc::new(WsParams::default()),
                    start: Default::default(),
                });
                let body = readyz(app).await;
                assert_eq!(body["ready"], false, "{body}");
                let reason = body["pipelines"][0]["reason"].as_str().unwrap_or_default();
                assert!(reason.contains("injected fatal at refresher"), "{body}");
            }
            groups.drain(Duration::from_secs(5)).await;
        }
    }
}
