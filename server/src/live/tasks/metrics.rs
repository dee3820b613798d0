//! Metrics of the live side: websocket clients and what happened to their messages, and the
//! KPI refresher's Flight queries. Registered in the pipeline's registry, so `/metrics` has all.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct LiveMetrics {
    pub ws_clients: IntGauge,
    pub ws_sent: IntCounterVec,
    pub ws_skipped: IntCounter,
    pub ws_dropped: IntCounterVec,
    pub ws_rejected: IntCounterVec,
    pub query_seconds: HistogramVec,
    pub refreshes: IntCounterVec,
}

fn register<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    shopwatch_actors::telemetry::register(r, &c);
    c
}

impl LiveMetrics {
    pub fn new(r: &Registry) -> LiveMetrics {
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                r,
                IntCounterVec::new(Opts::new(name, help), labels)
                    .expect("static metric definition"),
            )
        };
        let m = LiveMetrics {
            ws_clients: register(
                r,
                IntGauge::new("shopwatch_ws_clients", "Websocket clients connected now.")
                    .expect("static metric definition"),
            ),
            ws_sent: counter_vec(
                "shopwatch_ws_messages_sent_total",
                "Messages queued to websocket clients, by type.",
                &["type"],
            ),
            ws_skipped: register(
                r,
                IntCounter::new(
                    "shopwatch_ws_skipped_total",
                    "Times a slow websocket client's queue was replaced by a fresh snapshot.",
                )
                .expect("static metric definition"),
            ),
            ws_dropped: counter_vec(
                "shopwatch_ws_dropped_total",
                "Websocket clients disconnected by the server, by reason (slow, write_timeout, idle, frame_too_large).",
                &["reason"],
            ),
            ws_rejected: counter_vec(
                "shopwatch_ws_rejected_total",
                "Websocket upgrades refused, by reason (origin, max_clients).",
                &["reason"],
            ),
            query_seconds: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "shopwatch_flight_query_duration_seconds",
                        "KPI refresher queries through Flight SQL, by query and outcome.",
                    )
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                    &["query", "outcome"],
                )
                .expect("static metric definition"),
            ),
            refreshes: counter_vec(
                "shopwatch_kpi_refreshes_total",
                "KPI refresh rounds by outcome (ok, error; unwatched: due but skipped, nobody watching — no websocket client, no /api/dashboard read for a minute).",
                &["outcome"],
            ),
        };
        for reason in ["slow", "write_timeout", "idle", "frame_too_large"] {
            m.ws_dropped.with_label_values(&[reason]);
        }
        for reason in ["origin", "max_clients"] {
            m.ws_rejected.with_label_values(&[reason]);
        }
        for outcome in ["ok", "error", "unwatched"] {
            m.refreshes.with_label_values(&[outcome]);
        }
        m
    }
}
