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
