//! What the drill watches while it runs: the Kafka offsets each table has recorded (they must
//! never go backwards), whether they have reached the broker's high watermarks, and the
//! pipeline's Prometheus samples.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use shopwatch_actors::lake::commit::recorded_offsets;
use shopwatch_actors::lake::Lake;

/// (table, topic) pairs whose recorded offsets the drill follows: every raw table owns its
/// topic's position; dead letters record each topic's too.
pub fn followed(topics: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = topics.to_vec();
    for (topic, _) in topics {
        out.push((topic.clone(), "dead_letters".to_string()));
    }
    out
}

/// (table, topic, partition) → recorded end offset.
pub type Positions = BTreeMap<(String, String, i32), i64>;

pub async fn positions(lake: &Lake, followed: &[(String, String)]) -> anyhow::Result<Positions> {
    let mut out = Positions::new();
    for (topic, table) in followed {
        let ident = lake.ident(table);
        let t = match lake.catalog.load_unpinned(&ident).await {
            Ok(t) => t,
            // Not created yet; any other failure (the catalog's server is down) fails the
            // whole poll, so a key is never reported as gone while it cannot be read.
            Err(e) => match iceberg::Catalog::table_exists(lake.catalog.as_ref(), &ident).await {
                Ok(false) => continue,
                _ => return Err(anyhow::Error::new(e).context(format!("loading {table}"))),
            },
        };
        let offsets = recorded_offsets(&t, topic)?;
        for (p, o) in offsets {
            out.insert((table.clone(), topic.clone(), p), o);
        }
    }
    Ok(out)
}

/// Sum of the raw tables' positions: it grows whenever a raw commit lands.
pub fn raw_total(p: &Positions) -> i64 {
    p.iter()
        .filter(|((table, _, _), _)| table != "dead_letters")
        .map(|(_, o)| *o)
        .sum()
}

/// Remembers the highest position seen per key and reports any that went back.
#[derive(Default)]
pub struct Monotonic {
    seen: Positions,
    pub regressions: Vec<String>,
    pub observations: u64,
}

impl Monotonic {
    pub fn observe(&mut self, now: &Positions) {
        self.observations += 1;
        for (k, &o) in now {
            match self.seen.get(k) {
                Some(&before) if o < before => self.regressions.push(format!(
                    "{}/{}[{}] went back from {before} to {o}",
                    k.0, k.1, k.2
                )),
                _ => {
                    self.seen.insert(k.clone(), o);
                }
            }
        }
        // A key that vanished (table dropped, property lost) is a regression too.
        for k in self.seen.keys() {
            if !now.contains_key(k) {
                self.regressions
                    .push(format!("{}/{}[{}] disappeared", k.0, k.1, k.2));
            }
        }
    }
}

/// High watermark per (topic, partition).
pub fn high_watermarks(
    brokers: &str,
    topics: &[String],
    partitions: i32,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut out = BTreeMap::new();
    for topic in topics {
        for p in 0..partitions {
            let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))?;
            out.insert((topic.clone(), p), high);
        }
    }
    Ok(out)
}

/// Every raw table's recorded position has reached its topic's high watermark.
pub fn caught_up(
    pos: &Positions,
    raw: &[(String, String)],
    high: &BTreeMap<(String, i32), i64>,
) -> bool {
    raw.iter().all(|(topic, table)| {
        high.iter()
            .filter(|((t, _), _)| t == topic)
            .all(|((_, p), &h)| {
                h == 0
                    || pos
                        .get(&(table.clone(), topic.clone(), *p))
                        .is_some_and(|&o| o >= h)
            })
    })
}

/// Sum of every sample of `name` (any labels) in a Prometheus text body.
pub fn metric_sum(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(items: &[(&str, i32, i64)]) -> Positions {
        items
            .iter()
            .map(|(t, p, o)| ((t.to_string(), "topic".to_string(), *p), *o))
            .collect()
    }

    #[test]
    fn a_position_going_back_or_vanishing_is_caught() {
        let mut m = Monotonic::default();
        m.observe(&pos(&[("orders", 0, 10), ("orders", 1, 5)]));
        m.observe(&pos(&[("orders", 0, 12), ("orders", 1, 5)]));
        assert!(m.regressions.is_empty());
        m.observe(&pos(&[("orders", 0, 11), ("orders", 1, 5)]));
        assert_eq!(m.regressions.len(), 1, "{:?}", m.regressions);
        m.observe(&pos(&[("orders", 0, 12)]));
        assert!(
            m.regressions[1].contains("disappeared"),
            "{:?}",
            m.regressions
        );
    }

    #[test]
    fn caught_up_needs_every_partition_at_its_high_watermark() {
        let raw = vec![("topic".to_string(), "orders".to_string())];
        let high: BTreeMap<_, _> = [
            (("topic".to_string(), 0), 10),
            (("topic".to_string(), 1), 0),
        ]
        .into();
        assert!(caught_up(&pos(&[("orders", 0, 10)]), &raw, &high));
        assert!(!caught_up(&pos(&[("orders", 0, 9)]), &raw, &high));
        assert!(!caught_up(&pos(&[]), &raw, &high));
    }

    #[test]
    fn metric_sums_add_all_label_sets_and_nothing_else() {
        let body = "# HELP x y\nshopwatch_actor_restarts_total{a=\"1\"} 2\n\
                    shopwatch_actor_restarts_total{a=\"2\"} 3\nshopwatch_actor_restarts_totalx 9\n\
                    shopwatch_up 1\n";
        assert_eq!(metric_sum(body, "shopwatch_actor_restarts_total"), 5.0);
        assert_eq!(metric_sum(body, "shopwatch_up"), 1.0);
        assert_eq!(metric_sum(body, "absent"), 0.0);
    }
}

/// Topics the lake's `alerts` table holds a NO_DATA alert for, raised at or after `since`
/// (microseconds): the silence after production, whichever instance owned the rollup tables.
pub async fn silent_topics(lake: &Lake, since: i64) -> anyhow::Result<usize> {
    use shopwatch_actors::lake::io::scan::{read_batches, Columns};
    let table = lake
        .catalog
        .load_unpinned(&lake.ident(shopwatch_actors::alerts::TABLE))
        .await?;
    let batches = read_batches(
        &table,
        Some(&["alert_type", "alert_timestamp", "source_topic"]),
        None,
    )
    .await?;
    let mut topics = std::collections::BTreeSet::new();
    for b in &batches {
        let c = Columns::new(shopwatch_actors::alerts::TABLE, b);
        let (kind, at, topic) = (
            c.str("alert_type")?,
            c.ts("alert_timestamp")?,
            c.str("source_topic")?,
        );
        for i in 0..b.num_rows() {
            if kind.value(i) == "NO_DATA" && at.value(i) >= since {
                topics.insert(topic.value(i).to_string());
            }
        }
    }
    Ok(topics.len())
}
