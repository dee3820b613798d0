use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use shopwatch_actors::lake::{Lake, LakeParams};

pub async fn lake(dir: &std::path::Path) -> Lake {
    Lake::open(LakeParams::local(
        "shopwatch",
        "ecommerce_db",
        dir.to_path_buf(),
    ))
    .await
    .unwrap()
}

/// All (kafka_partition, kafka_offset) pairs of a table, with duplicates kept.
pub async fn source_offsets(lake: &Lake, table: &str) -> Vec<(i32, i64)> {
    // The pipeline creates its tables when its actors start, which may be after we first look.
    let Ok(t) = lake.catalog.load_unpinned(&lake.ident(table)).await else {
        return Vec::new();
    };
    if t.metadata().current_snapshot().is_none() {
        return Vec::new();
    }
    let batches: Vec<_> = t
        .scan()
        .select(["kafka_partition", "kafka_offset"])
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let p = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow_array::Int32Array>()
            .unwrap();
        let o = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap();
        for i in 0..b.num_rows() {
            out.push((p.value(i), o.value(i)));
        }
    }
    out
}

pub fn assert_unique(rows: &[(i32, i64)]) {
    let set: HashSet<_> = rows.iter().collect();
    assert_eq!(set.len(), rows.len(), "duplicated source offsets");
}

/// Poll `cond` until it holds or `timeout` passes (no fixed sleeps).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for: {what}");
}
