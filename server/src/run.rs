//! `shopwatch run`: the pipelines, the KPI refresher and the HTTP and Flight servers until a
//! signal or a fatal failure. Everything is built from the configuration's sections and the
//! registries; the groups run under the one supervisor.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shopwatch_actors::faults::Faults;
use shopwatch_actors::handoff::{CommitFeed, Ownership};
use shopwatch_actors::kpis::REGISTRY;
use shopwatch_actors::lake::Lake;
use shopwatch_actors::pipeline::election::ElectionParams;
use shopwatch_actors::rollup::live::Live;
use shopwatch_actors::rollup::webhook;
use shopwatch_actors::rollup::RollupSlots;
use shopwatch_actors::runtime::{Pipelines, Stage};
use shopwatch_actors::telemetry::Metrics;
use tracing::{error, info};

use crate::config::Config;
use crate::http::{router, AppState};
use crate::live::api::actions::ActionsApi;
use crate::live::api::rows::PageQueries;
use crate::live::api::ws::WsParams;
use crate::live::tasks::hub::Message;
use crate::live::tasks::hub::{Hub, HubParams};
use crate::live::tasks::metrics::LiveMetrics;
use crate::live::tasks::provisional::Board;
use crate::live::tasks::refresher::{RefresherGroup, RefresherParams, GROUP as REFRESHER};
use crate::params::{flight_params, hygiene, pipeline_params, rollup_params};
use crate::services::Services;

/// How long a graceful stop may take before we give up on the final commit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

pub async fn open_lake(cfg: &Config) -> anyhow::Result<Lake> {
    Lake::open(cfg.lake.params()).await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// What the pipelines and the page share once started.
struct Core {
    metrics: Metrics,
    lake: Lake,
    shutdown: Arc<AtomicBool>,
    faults: Arc<Faults>,
    ownership: Ownership,
    live: LiveMetrics,
    hub: Hub,
    board: Board,
    /// How often provisional values reach the page (`None`: off).
    provisional: Option<Duration>,
    /// Every landed commit, for the KPI refresher.
    commits: CommitFeed,
    /// The alert webhook's sender, when one is configured.
    webhook: Option<webhook::Sender>,
    pipelines: Pipelines,
    /// Where each topic's partitions without an offset in the lake start (`kafka.start`,
    /// `spark` resolved), for `/readyz`.
    start: std::collections::BTreeMap<String, String>,
}

/// The pipelines: the lake, one topic pipeline per topic, the KPI and alert actors, the
/// election; and the hub and board the aggregators push their open windows to.
async fn start_core(cfg: &Config) -> anyhow::Result<Core> {
    let metrics = Metrics::new();
    crate::version::register_build_info(&metrics.registry);
    let lake = open_lake(cfg).await?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let slots = RollupSlots::new(&REGISTRY);
    let commits = slots.commits.clone();
    // The process's one fault registry: every group's points, the lake's crash points and the
    // drill endpoint share it.
    let faults = Faults::process();
    // Kafka elects the one instance that computes the rollup tables and maintains the lake.
    let ownership = Ownership::elected();
    let mut topics = pipeline_params(
        cfg,
        lake.clone(),
        metrics.clone(),
        shutdown.clone(),
        &slots,
        faults.clone(),
        &ownership,
    );
    faults
        .arm(&cfg.drill.failpoints)
        .map_err(|e| anyhow::anyhow!("config drill.failpoints: {e}"))?;
    let live = LiveMetrics::new(&metrics.registry);
    let hub = Hub::new(
        HubParams {
            max_clients: cfg.http.ws_max_clients,
            queue_frames: cfg.http.ws_queue_frames,
            ..HubParams::default()
        },
        live.clone(),
    );
    // What the page draws: every KPI's declared cards and charts.
    hub.keep(
        Message::Views,
        crate::live::model::views::layout(&cfg.http.currency, &cfg.http.locale),
    );
    let board = Board::new(hub.clone());
    let provisional =
        (cfg.http.provisional_ms > 0).then(|| Duration::from_millis(cfg.http.provisional_ms));
    let (rollup, webhook) = rollup_params(
        cfg,
        lake.clone(),
        metrics.clone(),
        slots,
        faults.clone(),
        ownership.clone(),
        provisional.map(|every| Live {
            sink: Arc::new(board.clone()),
            every,
        }),
    )?;
    let election = ElectionParams {
        kafka: cfg.kafka.params(),
        ownership: ownership.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    };
    shopwatch_actors::rollup::ensure_tables(&rollup)
        .await
        .context("creating the tables")?;
    // After the tables are checked (adopted ones included): where new partitions start.
    let start = crate::handover::resolve_start(cfg, &lake).await?;
    for t in topics.iter_mut() {
        t.kafka.start = start.clone();
    }
    let start_shown = topics
        .iter()
        .map(|t| {
            (
                t.topic.clone(),
                t.kafka.start.for_topic(&t.topic).to_string(),
            )
        })
        .collect();
    spawn_heap_trim();
    let pipelines = Pipelines::start(
        topics,
        Some(rollup),
        Some((election, cfg.supervision.params())),
    )
    .await?;
    Ok(Core {
        metrics,
        lake,
        shutdown,
        faults,
        ownership,
        live,
        hub,
        board,
        provisional,
        commits,
        webhook,
        pipelines,
        start: start_shown,
    })
}

/// The page's side, each task a supervised service: Flight SQL, the KPI refresher, the HTTP
/// server (with its guard and, in failpoint builds, the drill endpoint), the heartbeat, the
/// provisional publisher, the session sweeper.
async fn start_services(cfg: &Config, core: &mut Core) -> anyhow::Result<()> {
    let auth = crate::auth::Auth::from_config(&cfg.auth, cfg.tls.enabled()).map(Arc::new);
    // Both listeners first: a taken port stops start-up naming its key.
    let flight = if cfg.flight.enabled {
        let params = crate::flight::FlightParams {
            users: auth.clone(),
            registry: core.metrics.registry.clone(),
            ..flight_params(cfg)?
        };
        let listener = crate::flight::bind(&params).await?;
        let server = crate::flight::Server::new(params, core.lake.reader_catalog().await?).await?;
        Some((server, listener))
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("binding http.listen {} (is another shopwatch running? use --http to pick another address)", cfg.http.listen))?;
    // `/metrics` alone, without a login, on a listener of its own (a private network's Prometheus).
    let metrics_http = if cfg.http.metrics_listen.is_empty() {
        None
    } else {
        let l = tokio::net::TcpListener::bind(&cfg.http.metrics_listen)
            .await
            .with_context(|| format!("binding http.metrics_listen {}", cfg.http.metrics_listen))?;
        Some(l)
    };
    let (app, metrics_app) = http_app(cfg, core, auth.clone())?;
    let tls = if cfg.tls.enabled() {
        Some(crate::auth::tls::acceptor(&cfg.tls)?)
    } else {
        None
    };
    crate::serve::raise_fd_limit();
    let refresher = RefresherGroup(RefresherParams {
        target: cfg.query_target(),
        refresh: Duration::from_millis(cfg.query.refresh_ms),
        min_interval: Duration::from_millis(cfg.query.min_interval_ms),
        hub: core.hub.clone(),
        board: core.board.clone(),
        metrics: core.metrics.clone(),
        live: core.live.clone(),
        pipelines: core.pipelines.status_handles(),
        faults: core.faults.clone(),
        ownership: core.ownership.clone(),
        commits: core.commits.clone(),
    });
    let mut s = Services {
        pipelines: &mut core.pipelines,
        supervision: cfg.supervision.params(),
        metrics: core.metrics.clone(),
        faults: core.faults.clone(),
    };
    if let Some((server, listener)) = flight {
        s.flight(server, listener).await?;
    }
    s.pipelines
        .supervise(
            REFRESHER,
            "-",
            Arc::new(refresher),
            cfg.supervision.params(),
            core.metrics.clone(),
            Stage::Readers,
        )
        .await
        .context("starting the KPI refresher")?;
    s.http(
        crate::services::HTTP,
        app,
        listener,
        tls.clone(),
        cfg.http.serve_limits(),
    )
    .await?;
    if let Some(l) = metrics_http {
        info!(metrics = %cfg.http.metrics_listen, "/metrics also served without a login on http.metrics_listen");
        s.http(
            crate::services::METRICS_HTTP,
            metrics_app,
            l,
            tls,
            cfg.http.serve_limits(),
        )
        .await?;
    }
    s.heartbeat(core.hub.clone(), Duration::from_secs(10))
        .await?;
    if let Some(every) = core.provisional {
        s.publisher(core.board.clone(), every).await?;
    }
    if let Some(a) = auth {
        s.sessions(a).await?;
    }
    if let Some(sender) = core.webhook.clone() {
        s.webhook(sender).await?;
    }
    info!(http = %cfg.http.listen, data_dir = %cfg.lake.data_dir.display(), brokers = %cfg.kafka.brokers, "shopwatch running");
    Ok(())
}

/// The router every HTTP request meets: the guard (request ids, the Host allowlist, generic
/// errors), the auth gate, the page and its API, and the drill endpoint in failpoint builds.
fn http_app(
    cfg: &Config,
    core: &Core,
    auth: Option<Arc<crate::auth::Auth>>,
) -> anyhow::Result<(axum::Router, axum::Router)> {
    let state = AppState {
        metrics: core.metrics.clone(),
        ownership: core.ownership.clone(),
        pipelines: Arc::new(core.pipelines.status_handles()),
        hub: core.hub.clone(),
        live: core.live.clone(),
        ws: Arc::new(WsParams {
            allowed_origins: cfg.http.ws_allowed_origins.clone(),
            ping_interval: Duration::from_secs(cfg.http.ws_ping_interval_s),
            idle_timeout: Duration::from_secs(cfg.http.ws_idle_timeout_s),
            ..WsParams::default()
        }),
        queries: Some(Arc::new(PageQueries::new(cfg.query_target()))),
        trends: Default::default(),
        actions: Some(Arc::new(ActionsApi::new(
            core.lake.clone(),
            hygiene(cfg, &core.ownership),
            cfg.http.actions_per_minute,
        ))),
        auth,
        start: Arc::new(core.start.clone()),
    };
    let metrics_app = crate::http::metrics_router(state.clone());
    #[allow(unused_mut)]
    let mut app = router(state);
    #[cfg(feature = "failpoints")]
    if cfg.drill.enabled {
        tracing::warn!("drill endpoint enabled: /drill/* injects faults (bearer token required)");
        app = app.merge(crate::drill_endpoint::routes(
            crate::drill_endpoint::DrillState {
                token: Arc::new(cfg.drill.token.clone()),
                faults: core.faults.clone(),
            },
        ));
    }
    let listen: std::net::SocketAddr = cfg.http.listen.parse().context("http.listen")?;
    let hosts = crate::guard::HostPolicy::new(listen, &cfg.http.allowed_hosts);
    if hosts == crate::guard::HostPolicy::Any {
        tracing::warn!(http = %listen, "http.allowed_hosts is empty on a non-loopback listener: any Host name is answered; list the names this server is reached by");
    }
    let app = app.layer(axum::middleware::from_fn_with_state(
        Arc::new(hosts),
        crate::guard::guard,
    ));
    // Any Host: Prometheus names the container; this listener serves nothing a page could use.
    let metrics_app = metrics_app.layer(axum::middleware::from_fn_with_state(
        Arc::new(crate::guard::HostPolicy::Any),
        crate::guard::guard,
    ));
    Ok((app, metrics_app))
}

/// Until `stop`, or until every pipeline has failed for good (the supervisor gave up).
pub(crate) async fn wait(
    stop: impl std::future::Future<Output = ()>,
    pipelines: &Pipelines,
) -> i32 {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return crate::exit::OK,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if pipelines.all_failed() {
                    error!(code = crate::exit::GAVE_UP, "every pipeline has failed past its restart budget; exiting");
                    return crate::exit::GAVE_UP;
                }
            }
        }
    }
}

/// Start everything, wait for `stop` (or all pipelines failing), drain. Returns the exit code.
pub async fn run_until(
    cfg: Config,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<i32> {
    let mut core = start_core(&cfg).await?;
    start_services(&cfg, &mut core).await?;
    let exit_code = wait(stop, &core.pipelines).await;
    info!("stopping: committing what is in flight");
    core.shutdown.store(true, Ordering::Relaxed);
    // Topics, then the KPI and alert actors, then the readers and services (the HTTP server
    // answers until the end).
    core.pipelines.drain(DRAIN_TIMEOUT).await;
    info!("stopped");
    Ok(exit_code)
}

pub fn data_dir_display(dir: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Give freed heap back to the system every second. glibc keeps what a catch-up freed in its
/// arenas: after a 2M-event backlog the process sat at ~300 MB idle, and at 148–170 MB with
/// this, for no measurable CPU (BENCHMARKS.md). It ends with the runtime.
fn spawn_heap_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            // SAFETY: malloc_trim only returns free pages of the allocator's own heap.
            if tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) })
                .await
                .is_err()
            {
                break;
            }
        }
    });
}
