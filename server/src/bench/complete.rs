//! When `bench ingest`'s lake is complete: rows against the acknowledged events, windows
//! closed, alerts evaluated; and a running instance's metrics.

use shopwatch_actors::lake::commit::chain::recorded_chain;
use shopwatch_actors::lake::commit::recorded_offsets;
use shopwatch_actors::lake::Lake;

use crate::config::Config;

/// Rows the raw tables and the dead-letter table hold, and whether their recorded offsets
/// have reached the broker's high watermarks.
pub(super) async fn raw_progress(
    lake: &Lake,
    marks: &[(String, i32, i64)],
    cfg: &Config,
) -> (u64, bool) {
    let (mut rows, mut at_marks) = (0u64, true);
    let tables = shopwatch_actors::events::EventKind::ALL
        .iter()
        .map(|k| (Some(cfg.topics.of(*k)), k.raw_table()))
        .chain([(None, shopwatch_actors::schema::DEAD_LETTERS_TABLE)]);
    for (topic, table) in tables {
        let Ok(t) = lake.catalog.load_unpinned(&lake.ident(table)).await else {
            return (0, false);
        };
        rows += t
            .metadata()
            .current_snapshot()
            .and_then(|s| s.summary().additional_properties.get("total-records"))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let Some(topic) = topic else { continue };
        let Ok(offsets) = recorded_offsets(&t, topic) else {
            return (rows, false);
        };
        for (mt, p, high) in marks {
            if mt == topic && offsets.get(p).copied().unwrap_or(0) < *high {
                at_marks = false;
            }
        }
    }
    (rows, at_marks)
}

/// Every KPI table has emitted windows past the last event (its longest window included).
pub(super) async fn kpis_closed(lake: &Lake, last_event_us: i64) -> bool {
    for kpi in shopwatch_actors::kpis::REGISTRY {
        let Ok(t) = lake.catalog.load_unpinned(&lake.ident(kpi.table())).await else {
            return false;
        };
        let until = recorded_chain(&t)
            .ok()
            .and_then(|c| c.state.get("emitted_until").and_then(|v| v.as_i64()));
        if until.is_none_or(|u| u < last_event_us + 300_000_000) {
            return false;
        }
    }
    true
}

/// The detector has alerted every FATAL error the raw errors table holds and evaluated every
/// KPI table past the last event.
pub(super) async fn alerts_evaluated(lake: &Lake, cfg: &Config, last_event_us: i64) -> bool {
    let errors = shopwatch_actors::events::EventKind::Errors;
    let Ok(raw) = lake
        .catalog
        .load_unpinned(&lake.ident(errors.raw_table()))
        .await
    else {
        return false;
    };
    let Ok(targets) = recorded_offsets(&raw, cfg.topics.of(errors)) else {
        return false;
    };
    let Ok(t) = lake
        .catalog
        .load_unpinned(&lake.ident(shopwatch_actors::alerts::TABLE))
        .await
    else {
        return false;
    };
    let Ok(chain) = recorded_chain(&t) else {
        return false;
    };
    let state = &chain.state;
    let topic = cfg.topics.of(errors);
    for (p, high) in targets.iter() {
        let at = state
            .pointer(&format!("/event_from/{topic}/{p}"))
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        if at < *high {
            return false;
        }
    }
    let Some(evaluated) = state.get("evaluated").and_then(|v| v.as_object()) else {
        return false;
    };
    !evaluated.is_empty()
        && evaluated
            .values()
            .all(|v| v.as_i64().is_some_and(|e| e >= last_event_us))
}

pub(super) async fn scrape_sum(http: &str, name: &str, label: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{http}/metrics")).await else {
        return 0.0;
    };
    let Ok(body) = resp.text().await else {
        return 0.0;
    };
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Wait until the instances at `https` share the topics as they will for the run: every one
/// ready, every partition of every topic held by exactly one of them, every instance holding
/// some (when there are partitions for all), one rollup owner, all of it unchanged for 3 s.
pub(super) async fn group_settled(
    https: &[String],
    topics: usize,
    partitions: i32,
    timeout: std::time::Duration,
) -> anyhow::Result<std::time::Duration> {
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let mut same_since: Option<(Instant, String)> = None;
    loop {
        if started.elapsed() > timeout {
            anyhow::bail!(
                "the group did not settle within {timeout:?} (every partition held once, one rollup owner); see the pipeline logs"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut held = Vec::new();
        let mut owners = 0;
        let mut everyone_holds = true;
        for http in https {
            let Ok(r) = reqwest::get(format!("http://{http}/readyz")).await else {
                held.clear();
                break;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                held.clear();
                break;
            };
            if v["ready"] != true {
                held.clear();
                break;
            }
            owners += usize::from(v["rollup_owner"] == true);
            let mine: Vec<String> = v["assigned_partitions"]
                .as_object()
                .into_iter()
                .flatten()
                .flat_map(|(t, ps)| {
                    let ps = ps.as_array().cloned().unwrap_or_default();
                    ps.into_iter().map(move |p| format!("{t}/{p}"))
                })
                .collect();
            everyone_holds &= !mine.is_empty();
            held.push(mine);
        }
        let mut all: Vec<&String> = held.iter().flatten().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        let whole = held.len() == https.len()
            && n == all.len()
            && n == topics * partitions as usize
            && owners == 1
            && (everyone_holds || https.len() > topics * partitions as usize);
        if !whole {
            same_since = None;
            continue;
        }
        let shape = format!("{held:?}");
        match &same_since {
            Some((since, s)) if *s == shape => {
                if since.elapsed() >= Duration::from_secs(3) {
                    return Ok(started.elapsed());
                }
            }
            _ => same_since = Some((Instant::now(), shape)),
        }
    }
}

/// A dashboard kept open on one instance for the whole run, as its users would: its refresher
/// queries the lake only while someone watches (the other instances' do not).
pub(super) fn watch_dashboard(http: &str) -> tokio::task::JoinHandle<()> {
    let url = format!("ws://{http}/ws");
    tokio::spawn(async move {
        use futures::StreamExt;
        loop {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
                while let Some(Ok(_)) = ws.next().await {}
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
}

/// `name`'s samples whose labels contain `filter`, summed by the value of label `by`.
pub(super) async fn scrape_by(
    http: &str,
    name: &str,
    filter: &str,
    by: &str,
) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(resp) = reqwest::get(format!("http://{http}/metrics")).await else {
        return out;
    };
    let Ok(body) = resp.text().await else {
        return out;
    };
    let key = format!("{by}=\"");
    for l in body
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
    {
        let (Some(v), Some(at)) = (l.rsplit(' ').next(), l.find(&key)) else {
            continue;
        };
        let rest = &l[at + key.len()..];
        let (Some(end), Ok(v)) = (rest.find('"'), v.parse::<f64>()) else {
            continue;
        };
        *out.entry(rest[..end].to_string()).or_insert(0.0) += v;
    }
    out
}
