//! Where reading starts: `kafka.start` resolved for the pipelines, and the Spark handover's
//! plans (against the broker as it is now) that `shopwatch migrate` prints and records and
//! `kafka.start = "spark"` runs at start-up.

use std::path::{Path, PathBuf};

use anyhow::Context;
use shopwatch_actors::events::EventKind;
use shopwatch_actors::lake::Lake;
use shopwatch_actors::migrate::{self, TopicPlan};
use shopwatch_actors::pipeline::kafka::BrokerProbe;
use shopwatch_actors::pipeline::{StartAt, StartPolicy};

use crate::config::Config;

/// Plan every topic (or those in `only`) against the broker as it is now.
pub async fn plans(
    cfg: &Config,
    lake: &Lake,
    dir: &Path,
    only: Option<&[EventKind]>,
) -> anyhow::Result<Vec<TopicPlan>> {
    let probe = std::sync::Arc::new(BrokerProbe::new(&cfg.kafka.params())?);
    let mut out = Vec::new();
    for &kind in EventKind::ALL.iter() {
        if only.is_some_and(|o| !o.contains(&kind)) {
            continue;
        }
        let topic = cfg.topics.of(kind).to_string();
        let (p, t) = (probe.clone(), topic.clone());
        let broker = tokio::task::spawn_blocking(move || p.ranges(&t))
            .await
            .context("asking the broker")?
            .map_err(|e| e.to_string());
        out.push(migrate::plan_topic(lake, dir, kind, &topic, broker).await);
    }
    Ok(out)
}

/// `kafka.start` with every `spark` resolved to the offsets its plan gives; start-up is
/// refused when a plan is not clean. A topic whose raw table already records offsets needs no
/// plan (the lake decides).
pub async fn resolve_start(cfg: &Config, lake: &Lake) -> anyhow::Result<StartPolicy> {
    let mut policy = cfg.kafka.start_policy()?;
    let spark: Vec<EventKind> = EventKind::ALL
        .iter()
        .copied()
        .filter(|k| policy.for_topic(cfg.topics.of(*k)) == &StartAt::Spark)
        .collect();
    if spark.is_empty() {
        return Ok(policy);
    }
    let dir = PathBuf::from(&cfg.kafka.spark_checkpoints);
    for p in plans(cfg, lake, &dir, Some(&spark)).await? {
        let at = if p.applied {
            StartAt::Earliest
        } else if p.clean() {
            tracing::info!(topic = %p.topic, how = %p.how, starts = ?p.starts(), "starting where Spark stopped");
            StartAt::Offsets(p.starts())
        } else {
            anyhow::bail!(
                "config kafka.start: \"spark\" for {}: the handover is not clean: {}. Run `shopwatch migrate plan` for the details",
                p.topic,
                p.problems.join("; ")
            );
        };
        policy.topics.insert(p.topic.clone(), at);
    }
    Ok(policy)
}
