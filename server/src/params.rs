//! What each supervised group is built from: the configuration's sections, the registries and
//! the process's shared parts (lake, metrics, faults, the election's ownership).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shopwatch_actors::events::EventKind;
use shopwatch_actors::faults::Faults;
use shopwatch_actors::handoff::Ownership;
use shopwatch_actors::lake::{HygieneParams, Lake};
use shopwatch_actors::pipeline::kafka::BrokerProbe;
use shopwatch_actors::pipeline::PipelineParams;
use shopwatch_actors::rollup::live::Live;
use shopwatch_actors::rollup::webhook::{self, Webhook, WebhookParams};
use shopwatch_actors::rollup::{RollupParams, RollupSlots};
use shopwatch_actors::telemetry::Metrics;

use crate::config::Config;

/// One topic pipeline per topic kind.
pub fn pipeline_params(
    cfg: &Config,
    lake: Lake,
    metrics: Metrics,
    shutdown: Arc<AtomicBool>,
    slots: &RollupSlots,
    faults: Arc<Faults>,
    ownership: &Ownership,
) -> Vec<PipelineParams> {
    EventKind::ALL
        .iter()
        .map(|&kind| PipelineParams {
            kind,
            topic: cfg.topics.of(kind).to_string(),
            kafka: cfg.kafka.params(),
            lake: lake.clone(),
            batch: cfg.pipeline.batch(),
            supervision: cfg.supervision.params(),
            hygiene: hygiene(cfg, ownership),
            metrics: metrics.clone(),
            faults: faults.clone(),
            shutdown: shutdown.clone(),
            subscribers: slots.subscribers(kind),
        })
        .collect()
}

/// `[maintenance]`, run by whichever instance owns the rollup (all of it, when alone).
pub fn hygiene(cfg: &Config, ownership: &Ownership) -> HygieneParams {
    HygieneParams {
        maintainer: ownership.maintainer(),
        ..cfg.maintenance.hygiene()
    }
}

/// Window aggregators (every registered KPI) and the alert detector (every registered rule),
/// from the `[windows]` and `[alerts]` sections; and the webhook's sender, if one is set.
pub fn rollup_params(
    cfg: &Config,
    lake: Lake,
    metrics: Metrics,
    slots: RollupSlots,
    faults: Arc<Faults>,
    ownership: Ownership,
    live: Option<Live>,
) -> anyhow::Result<(RollupParams, Option<webhook::Sender>)> {
    let a = &cfg.alerts;
    shopwatch_actors::kpis::set_pane_key_bytes(cfg.windows.max_pane_key_bytes);
    metrics.know_alert_types(shopwatch_actors::alerts::RULES.iter().map(|r| r.name));
    let (webhook, sender) = if a.webhook_url.is_empty() {
        (None, None)
    } else {
        let (hook, sender) = Webhook::new(
            WebhookParams {
                url: a.webhook_url.expose().to_string(),
                timeout: Duration::from_millis(a.webhook_timeout_ms),
                retries: a.webhook_retries,
                backoff: Duration::from_millis(500),
                queue: 1_000,
            },
            metrics.clone(),
        )
        .context("starting the alert webhook client")?;
        (Some(hook), Some(sender))
    };
    let params = RollupParams {
        lake,
        topics: cfg.topics.names(),
        kpis: cfg.windows.engines()?,
        rules: cfg.alerts.rule_set()?,
        hygiene: hygiene(cfg, &ownership),
        metrics,
        supervision: cfg.supervision.params(),
        faults,
        tick: cfg.windows.tick(),
        checkpoint_every: Duration::from_secs(a.checkpoint_every_s),
        slots,
        webhook,
        grouping: a.grouping(),
        ownership,
        broker: Some(Arc::new(
            BrokerProbe::new(&cfg.kafka.params()).context("kafka.brokers")?,
        )),
        live,
    };
    Ok((params, sender))
}

/// The embedded Flight SQL server's settings, from `[flight]` and the lake's namespace.
pub fn flight_params(cfg: &Config) -> anyhow::Result<crate::flight::FlightParams> {
    Ok(crate::flight::FlightParams {
        listen: cfg.flight.listen.parse().context("flight.listen")?,
        username: cfg.flight.username.clone(),
        password: cfg.flight.password.expose().to_string(),
        token_ttl: Duration::from_secs(cfg.flight.token_ttl_s),
        source: cfg.flight.source.clone(),
        namespace: cfg.lake.namespace.clone(),
        users: None,
        tls: cfg.tls.enabled().then(|| cfg.tls.clone()),
        limits: cfg.flight.limits(),
        registry: prometheus::Registry::new(),
    })
}
