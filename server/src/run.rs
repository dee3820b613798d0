//! `shopwatch run`: the pipelines and the HTTP server until a signal or a fatal failure.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shopwatch_actors::alerts::{AlertRules, AnomalyRule, RateRule, SilenceRule};
use shopwatch_actors::derived::webhook::{Webhook, WebhookParams};
use shopwatch_actors::derived::{DerivedParams, DerivedSlots, KpiKind};
use shopwatch_actors::events::EventKind;
use shopwatch_actors::lake::{CatalogKind, HygieneParams, Lake, LakeParams};
use shopwatch_actors::pipeline::faults::Faults;
use shopwatch_actors::pipeline::{BatchParams, KafkaParams, PipelineParams, SupervisionParams};
use shopwatch_actors::runtime::Pipelines;
use shopwatch_actors::telemetry::Metrics;
use shopwatch_actors::windows::{ClockParams, EngineParams, Windowing};
use tracing::{error, info};

use crate::config::Config;
use crate::http::{router, AppState};
use crate::live::hub::{Hub, HubParams};
use crate::live::metrics::LiveMetrics;
use crate::live::refresher::{Refresher, RefresherParams};
use crate::live::spawn_heartbeat;
use crate::live::ws::WsParams;
use axum::serve::ListenerExt;
use ractor::Actor;

/// How long a graceful stop may take before we give up on the final commit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

pub fn pipeline_params(
    cfg: &Config,
    lake: Lake,
    metrics: Metrics,
    shutdown: Arc<AtomicBool>,
    slots: &DerivedSlots,
) -> Vec<PipelineParams> {
    EventKind::ALL
        .iter()
        .map(|&kind| PipelineParams {
            kind,
            topic: match kind {
                EventKind::Orders => cfg.topics.orders.clone(),
                EventKind::Clicks => cfg.topics.clicks.clone(),
                EventKind::Errors => cfg.topics.errors.clone(),
            },
            kafka: KafkaParams {
                brokers: cfg.kafka.brokers.clone(),
                group_prefix: cfg.kafka.group_prefix.clone(),
                extra: cfg.kafka.extra.clone(),
            },
            lake: lake.clone(),
            batch: BatchParams {
                commit_interval: Duration::from_millis(cfg.pipeline.commit_interval_ms),
                max_batch_rows: cfg.pipeline.max_batch_rows,
                max_event_bytes: cfg.pipeline.max_event_bytes,
                dead_letter_payload_max_bytes: cfg.pipeline.dead_letter_payload_max_bytes,
                dead_letter_flush_rows: cfg.pipeline.dead_letter_flush_rows,
                dead_letter_flush_interval: Duration::from_millis(
                    cfg.pipeline.dead_letter_flush_interval_ms,
                ),
            },
            supervision: SupervisionParams {
                max_restarts: cfg.supervision.max_restarts,
                restart_window: Duration::from_secs(cfg.supervision.restart_window_s),
                backoff_min: Duration::from_millis(cfg.supervision.backoff_min_ms),
                backoff_max: Duration::from_millis(cfg.supervision.backoff_max_ms),
                heartbeat: Duration::from_millis(cfg.supervision.heartbeat_ms),
                stuck_timeout: Duration::from_secs(cfg.supervision.stuck_timeout_s),
            },
            hygiene: HygieneParams {
                every_commits: cfg.maintenance.every_commits,
                snapshot_max_age: Duration::from_secs(cfg.maintenance.snapshot_max_age_s),
                keep_snapshots: cfg.maintenance.keep_snapshots,
                keep_metadata_files: cfg.maintenance.keep_metadata_files,
                compact_every_commits: cfg.maintenance.compact_every_commits,
                orphan_every_commits: cfg.maintenance.orphan_sweep_every_commits,
                orphan_min_age: Duration::from_secs(cfg.maintenance.orphan_min_age_s),
                ..HygieneParams::default()
            },
            metrics: metrics.clone(),
            faults: Arc::new(Faults::default()),
            shutdown: shutdown.clone(),
            subscribers: slots.subscribers(kind),
        })
        .collect()
}

fn secs(s: u64) -> i64 {
    s as i64 * 1_000_000
}

/// Window aggregators and the alert detector, from the `[windows]` and `[alerts]` sections.
pub fn derived_params(
    cfg: &Config,
    lake: Lake,
    metrics: Metrics,
    slots: DerivedSlots,
    supervision: SupervisionParams,
    hygiene: HygieneParams,
) -> anyhow::Result<DerivedParams> {
    let w = &cfg.windows;
    let mut kpis = Vec::new();
    for (kind, (name, win)) in KpiKind::ALL.iter().zip(w.each()) {
        let lateness = match (w.seed_watermarks, kind) {
            (true, KpiKind::ActiveUsers) => 360,
            (true, _) => 120,
            (false, _) => win.lateness_s,
        };
        let windowing = Windowing::new(secs(win.size_s), secs(win.slide_s))
            .with_context(|| format!("config windows.{name}"))?;
        kpis.push((
            *kind,
            EngineParams {
                windowing,
                clock: ClockParams {
                    lateness: secs(lateness),
                    idle_timeout: secs(w.idle_timeout_s),
                },
                max_skew: secs(w.max_skew_s),
            },
        ));
    }
    let a = &cfg.alerts;
    let webhook = if a.webhook_url.is_empty() {
        None
    } else {
        Some(
            Webhook::start(
                WebhookParams {
                    url: a.webhook_url.clone(),
                    timeout: Duration::from_millis(a.webhook_timeout_ms),
                    retries: a.webhook_retries,
                    backoff: Duration::from_millis(500),
                    queue: 1_000,
                },
                metrics.clone(),
            )
            .context("starting the alert webhook client")?,
        )
    };
    let anomaly = |c: &crate::config::AnomalyConfig| AnomalyRule {
        enabled: c.enabled,
        k: c.k,
        history: c.history,
        min_history: c.min_history,
        min_change: c.min_change,
        min_value: c.min_value,
    };
    Ok(DerivedParams {
        lake,
        topics: [
            cfg.topics.orders.clone(),
            cfg.topics.clicks.clone(),
            cfg.topics.errors.clone(),
        ],
        kpis,
        rules: AlertRules {
            fatal_error: a.fatal_error,
            error_spike: anomaly(&a.error_spike),
            orders_drop: anomaly(&a.orders_drop),
            revenue_drop: anomaly(&a.revenue_drop),
            high_error_rate: RateRule {
                enabled: a.high_error_rate.enabled,
                threshold: a.high_error_rate.threshold,
                min_traffic: a.high_error_rate.min_traffic,
            },
            no_data: SilenceRule {
                enabled: a.no_data.enabled,
                after: secs(a.no_data.after_s),
            },
        },
        hygiene,
        metrics,
        supervision,
        tick: Duration::from_millis(w.tick_ms),
        checkpoint_every: Duration::from_secs(a.checkpoint_every_s),
        slots,
        webhook,
    })
}

pub async fn open_lake(cfg: &Config) -> anyhow::Result<Lake> {
    let catalog = match cfg.lake.catalog.as_str() {
        "rest" => CatalogKind::Rest {
            uri: cfg.lake.rest_uri.clone(),
        },
        _ => CatalogKind::Sql,
    };
    Lake::open(LakeParams {
        catalog_name: cfg.lake.catalog_name.clone(),
        namespace: cfg.lake.namespace.clone(),
        data_dir: cfg.lake.data_dir.clone(),
        catalog,
        warehouse: cfg.lake.warehouse.clone(),
        storage: cfg.storage_props(),
    })
    .await
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

/// Start everything, wait for `stop` (or all pipelines failing), drain. Returns the exit code.
pub async fn run_until(
    cfg: Config,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<i32> {
    let metrics = Metrics::new();
    let lake = open_lake(&cfg).await?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let slots = DerivedSlots::new(&KpiKind::ALL);
    let mut topics = pipeline_params(
        &cfg,
        lake.clone(),
        metrics.clone(),
        shutdown.clone(),
        &slots,
    );
    // One set of injected faults for all pipelines: the drill endpoint arms the next one.
    let faults = Arc::new(Faults::default());
    for t in &mut topics {
        t.faults = faults.clone();
    }
    shopwatch_actors::failpoint::configure(&cfg.drill.failpoints)
        .map_err(|e| anyhow::anyhow!("config drill.failpoints: {e}"))?;
    let derived = derived_params(
        &cfg,
        lake.clone(),
        metrics.clone(),
        slots,
        topics[0].supervision.clone(),
        topics[0].hygiene.clone(),
    )?;
    let reader = lake.reader_catalog().await?;
    let pipelines = Pipelines::start(topics, Some(derived)).await?;
    let flight_stop = Arc::new(tokio::sync::Notify::new());
    let flight = if cfg.flight.enabled {
        let stop = flight_stop.clone();
        Some(
            crate::flight::serve(
                crate::flight::FlightParams {
                    listen: cfg.flight.listen.parse().context("flight.listen")?,
                    username: cfg.flight.username.clone(),
                    password: cfg.flight.password.clone(),
                    token_ttl: Duration::from_secs(cfg.flight.token_ttl_s),
                    source: cfg.flight.source.clone(),
                    namespace: cfg.lake.namespace.clone(),
                },
                reader,
                async move { stop.notified().await },
            )
            .await?,
        )
    } else {
        None
    };
    let live = LiveMetrics::new(&metrics.registry);
    let hub = Hub::new(
        HubParams {
            max_clients: cfg.http.ws_max_clients,
            queue_frames: cfg.http.ws_queue_frames,
            ..HubParams::default()
        },
        live.clone(),
    );
    let (refresher, refresher_task) = Actor::spawn(
        None,
        Refresher,
        RefresherParams {
            target: cfg.query_target(),
            refresh: Duration::from_millis(cfg.query.refresh_ms),
            min_interval: Duration::from_millis(cfg.query.min_interval_ms),
            hub: hub.clone(),
            metrics: metrics.clone(),
            live: live.clone(),
            pipelines: pipelines.status_handles(),
        },
    )
    .await
    .context("starting the KPI refresher")?;
    let heartbeat = spawn_heartbeat(hub.clone(), Duration::from_secs(10));
    let state = AppState {
        metrics,
        pipelines: Arc::new(pipelines.status_handles()),
        hub,
        live,
        ws: Arc::new(WsParams {
            allowed_origins: cfg.http.ws_allowed_origins.clone(),
            ping_interval: Duration::from_secs(cfg.http.ws_ping_interval_s),
            idle_timeout: Duration::from_secs(cfg.http.ws_idle_timeout_s),
            ..WsParams::default()
        }),
    };
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("binding http.listen {} (is another shopwatch running? use --http to pick another address)", cfg.http.listen))?;
    info!(http = %cfg.http.listen, data_dir = %cfg.lake.data_dir.display(), brokers = %cfg.kafka.brokers, "shopwatch running");
    let http_stop = Arc::new(tokio::sync::Notify::new());
    let http_stop2 = http_stop.clone();
    // No Nagle delay on pushes; a small send buffer so a client that stops reading backs up
    // into its outbox (and is skipped or dropped) within seconds, not after megabytes.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(64 * 1024);
    });
    let mut app = router(state);
    if cfg.drill.enabled {
        tracing::warn!("drill endpoint enabled: /drill/* injects faults (bearer token required)");
        app = app.merge(crate::drill_endpoint::routes(
            crate::drill_endpoint::DrillState {
                token: Arc::new(cfg.drill.token.clone()),
                faults,
            },
        ));
    }
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_stop2.notified().await })
            .await
    });

    let mut exit_code = 0;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if pipelines.all_failed() {
                    error!("every pipeline has failed; exiting");
                    exit_code = 2;
                    break;
                }
            }
        }
    }
    info!("stopping: committing what is in flight");
    shutdown.store(true, Ordering::Relaxed);
    pipelines.drain(DRAIN_TIMEOUT).await;
    refresher.stop(None);
    let _ = tokio::time::timeout(Duration::from_secs(2), refresher_task).await;
    heartbeat.abort();
    http_stop.notify_one();
    flight_stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    if let Some(f) = flight {
        let _ = tokio::time::timeout(Duration::from_secs(2), f).await;
    }
    info!("stopped");
    Ok(exit_code)
}

pub fn data_dir_display(dir: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}
