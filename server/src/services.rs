//! The process's long-lived tasks, each a supervised service (`supervision::Service`) beside
//! the pipelines: the Flight SQL server, the HTTP server, the hub's heartbeat, the provisional
//! publisher and the session sweeper. A task that fails is restarted (or stopped) by its error's
//! kind like any actor, within the restart budget, and `/readyz` lists its state. The first
//! listener of each server is bound before anything starts, so a taken port stops start-up
//! with its key; a restart binds again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use futures::FutureExt;
use shopwatch_actors::error::Error;
use shopwatch_actors::faults::Faults;
use shopwatch_actors::runtime::{Pipelines, Stage};
use shopwatch_actors::supervision::{Service, StartTask, SupervisionParams};
use shopwatch_actors::telemetry::Metrics;
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::live::tasks::hub::{Hub, Message};
use crate::live::tasks::provisional::Board;
use crate::serve::ServeLimits;

pub const HTTP: &str = "http";
pub const METRICS_HTTP: &str = "metrics-http";
pub const FLIGHT: &str = "flight";
pub const HEARTBEAT: &str = "heartbeat";
pub const PUBLISHER: &str = "publisher";
pub const SESSIONS: &str = "sessions";
pub const WEBHOOK: &str = "webhook";

/// What every service is started with.
pub struct Services<'a> {
    pub pipelines: &'a mut Pipelines,
    pub supervision: SupervisionParams,
    pub metrics: Metrics,
    pub faults: Arc<Faults>,
}

/// A listener bound at start-up, handed to the first run; later runs bind `addr` again.
struct Listener {
    first: Mutex<Option<TcpListener>>,
    addr: std::net::SocketAddr,
}

impl Listener {
    async fn take(&self) -> Result<TcpListener, Error> {
        let first = self.first.lock().ok().and_then(|mut l| l.take());
        match first {
            Some(l) => Ok(l),
            None => TcpListener::bind(self.addr)
                .await
                .map_err(|e| Error::Transient(format!("binding {} again: {e}", self.addr))),
        }
    }
}

impl Services<'_> {
    async fn add(&mut self, name: &'static str, start: StartTask) -> anyhow::Result<()> {
        self.pipelines
            .supervise(
                name,
                "-",
                Arc::new(Service::new(name, self.faults.clone(), start)),
                self.supervision.clone(),
                self.metrics.clone(),
                Stage::Readers,
            )
            .await
    }

    /// The Flight SQL server on `listener`.
    pub async fn flight(
        &mut self,
        server: crate::flight::Server,
        listener: TcpListener,
    ) -> anyhow::Result<()> {
        let listener = Arc::new(Listener {
            addr: listener.local_addr()?,
            first: Mutex::new(Some(listener)),
        });
        self.add(
            FLIGHT,
            Arc::new(move |stop| {
                let (server, listener) = (server.clone(), listener.clone());
                async move {
                    let l = listener.take().await?;
                    server
                        .run(l, async move { stop.notified().await })
                        .await
                        .map_err(|e| Error::Transient(format!("{e:#}")))
                }
                .boxed()
            }),
        )
        .await
    }

    /// The HTTP server (the page, its API, `/metrics`) on `listener`; `name` tells the main
    /// one from the metrics-only one.
    pub async fn http(
        &mut self,
        name: &'static str,
        app: Router,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        limits: ServeLimits,
    ) -> anyhow::Result<()> {
        let listener = Arc::new(Listener {
            addr: listener.local_addr()?,
            first: Mutex::new(Some(listener)),
        });
        self.add(
            name,
            Arc::new(move |stop| {
                let (app, listener, tls) = (app.clone(), listener.clone(), tls.clone());
                async move {
                    let l = listener.take().await?;
                    crate::serve::serve(l, tls, app, limits, async move { stop.notified().await })
                        .await
                        .map_err(|e| Error::Transient(format!("HTTP server: {e}")))
                }
                .boxed()
            }),
        )
        .await
    }

    /// The application-level heartbeat: browsers cannot send websocket pings, so the page
    /// tells a live socket from a dead one by it.
    pub async fn heartbeat(&mut self, hub: Hub, every: Duration) -> anyhow::Result<()> {
        self.add(
            HEARTBEAT,
            Arc::new(move |stop| {
                let hub = hub.clone();
                async move {
                    let mut tick = tokio::time::interval(every);
                    tick.tick().await;
                    loop {
                        tokio::select! {
                            _ = stop.notified() => return Ok(()),
                            _ = tick.tick() => {
                                let clients = hub.clients();
                                hub.publish(Message::Heartbeat, serde_json::json!({ "clients": clients }));
                            }
                        }
                    }
                }
                .boxed()
            }),
        )
        .await
    }

    /// Provisional values coalesced into at most one publish per `every`.
    pub async fn publisher(&mut self, board: Board, every: Duration) -> anyhow::Result<()> {
        self.add(
            PUBLISHER,
            Arc::new(move |stop| {
                let board = board.clone();
                async move {
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tokio::select! {
                            _ = stop.notified() => return Ok(()),
                            _ = tick.tick() => board.publish(),
                        }
                    }
                }
                .boxed()
            }),
        )
        .await
    }

    /// The alert webhook's deliveries (the queue outlives a restart).
    pub async fn webhook(
        &mut self,
        sender: shopwatch_actors::rollup::webhook::Sender,
    ) -> anyhow::Result<()> {
        self.add(
            WEBHOOK,
            Arc::new(move |stop| {
                let sender = sender.clone();
                async move {
                    sender.run(stop).await;
                    Ok(())
                }
                .boxed()
            }),
        )
        .await
    }

    /// Sessions that expired or idled out end now and then (their pages' websockets close).
    pub async fn sessions(&mut self, auth: Arc<Auth>) -> anyhow::Result<()> {
        self.add(
            SESSIONS,
            Arc::new(move |stop| {
                let auth = auth.clone();
                async move {
                    let mut every = tokio::time::interval(Duration::from_secs(15));
                    loop {
                        tokio::select! {
                            _ = stop.notified() => return Ok(()),
                            _ = every.tick() => auth.sweep_sessions(),
                        }
                    }
                }
                .boxed()
            }),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    //! The services' rows of the failure matrix: each task made to fail is restarted or
    //! stopped by the failure's kind, and a restarted server answers again.

    use shopwatch_actors::faults::{Action, Point, Rule};
    use shopwatch_actors::supervision::PipelineState;

    use super::*;
    use crate::live::tasks::hub::HubParams;
    use crate::live::tasks::metrics::LiveMetrics;

    fn supervision() -> SupervisionParams {
        SupervisionParams {
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            heartbeat: Duration::from_millis(100),
            stuck_timeout: Duration::from_millis(800),
            ..SupervisionParams::default()
        }
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_service_restarts_on_panic_error_freeze_and_its_own_end_and_stops_on_fatal() {
        let cases = [
            (Some(Action::Panic), Some("panic")),
            (Some(Action::Error), Some("error")),
            (Some(Action::Delay(30_000)), Some("stuck")),
            (Some(Action::Fatal), None),
            // No fault: the task ends by itself after a moment, which is a failure too.
            (None, Some("error")),
        ];
        for (action, restart) in cases {
            let case = format!("{action:?}");
            let metrics = Metrics::new();
            let faults = Arc::new(Faults::default());
            if let Some(action) = action.clone() {
                faults.add(Rule {
                    point: Point::Handler,
                    action,
                    times: Some(1),
                    marker: None,
                    target: Some(HEARTBEAT.into()),
                });
            }
            let mut pipelines = Pipelines::start(Vec::new(), None, None).await.unwrap();
            let mut s = Services {
                pipelines: &mut pipelines,
                supervision: supervision(),
                metrics: metrics.clone(),
                faults,
            };
            let hub = Hub::new(HubParams::default(), LiveMetrics::new(&metrics.registry));
            if action.is_some() {
                s.heartbeat(hub, Duration::from_millis(50)).await.unwrap();
            } else {
                let ended = std::sync::atomic::AtomicBool::new(false);
                let ended = Arc::new(ended);
                s.add(
                    HEARTBEAT,
                    Arc::new(move |_| {
                        let ended = ended.clone();
                        async move {
                            // The first run ends by itself; the restarted one keeps going.
                            if !ended.swap(true, std::sync::atomic::Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                return Ok(());
                            }
                            std::future::pending().await
                        }
                        .boxed()
                    }),
                )
                .await
                .unwrap();
            }
            let state = || pipelines.statuses().first().map(|s| s.state.clone());
            match restart {
                Some(reason) => {
                    until(&case, || {
                        metrics
                            .restarts
                            .with_label_values(&[HEARTBEAT, HEARTBEAT, reason])
                            .get()
                            >= 1
                            && state() == Some(PipelineState::Running)
                    })
                    .await
                }
                None => until(&case, || matches!(state(), Some(PipelineState::Failed(_)))).await,
            }
            pipelines.drain(Duration::from_secs(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_http_service_answers_again_after_a_failure_on_the_same_address() {
        let metrics = Metrics::new();
        let faults = Arc::new(Faults::default());
        let mut pipelines = Pipelines::start(Vec::new(), None, None).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/livez", axum::routing::get(|| async { "ok" }));
        let mut s = Services {
            pipelines: &mut pipelines,
            supervision: supervision(),
            metrics: metrics.clone(),
            faults: faults.clone(),
        };
        s.http(HTTP, app, listener, None, ServeLimits::default())
            .await
            .unwrap();
        let get = || async move {
            reqwest::get(format!("http://{addr}/livez"))
                .await
                .is_ok_and(|r| r.status().is_success())
        };
        assert!(get().await);
        faults.add(Rule {
            point: Point::Handler,
            action: Action::Error,
            times: Some(1),
            marker: None,
            target: Some(HTTP.into()),
        });
        let restarted = || {
            metrics
                .restarts
                .with_label_values(&[HTTP, HTTP, "error"])
                .get()
                >= 1
        };
        until("the HTTP service restarted", restarted).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !get().await {
            assert!(
                std::time::Instant::now() < deadline,
                "no answer after the restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pipelines.drain(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod exit_tests {
    use shopwatch_actors::faults::{Action, Point, Rule};

    use super::*;

    /// When every data group has failed for good the process exits with the give-up code,
    /// which a service manager can tell from a usage error (2) and a start-up failure (1).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_data_group_failing_exits_with_the_give_up_code() {
        assert!(![crate::exit::OK, crate::exit::ERROR, crate::exit::USAGE]
            .contains(&crate::exit::GAVE_UP));
        let faults = Arc::new(Faults::default());
        faults.add(Rule {
            point: Point::Handler,
            action: Action::Fatal,
            times: None,
            marker: None,
            target: Some("orders".into()),
        });
        let mut pipelines = Pipelines::start(Vec::new(), None, None).await.unwrap();
        let start: StartTask = Arc::new(|_| std::future::pending().boxed());
        pipelines
            .supervise(
                "orders",
                "-",
                Arc::new(Service::new("orders", faults.clone(), start)),
                SupervisionParams::default(),
                Metrics::new(),
                Stage::Topics,
            )
            .await
            .unwrap();
        let code = tokio::time::timeout(
            Duration::from_secs(20),
            crate::run::wait(std::future::pending(), &pipelines),
        )
        .await
        .expect("the failed group was never noticed");
        assert_eq!(code, crate::exit::GAVE_UP);
        // A stop request before that is a clean exit.
        let code = crate::run::wait(async {}, &pipelines).await;
        assert_eq!(code, crate::exit::OK);
        pipelines.drain(Duration::from_secs(5)).await;
    }
}
