//! A Spark Structured Streaming checkpoint directory, as the old stack's job leaves it
//! (`/tmp/spark_checkpoints_nessie/<query>`; Spark 3.x `StreamMetadata`, `OffsetSeqLog`,
//! `CommitLog`): the query id, each planned batch's end offsets per topic and partition, which
//! batches finished, and the first batch's start. Read only; anything that does not parse is
//! an error naming the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::lake::Offsets;

/// Offsets per topic (a Kafka source's line of an offsets file).
pub type TopicOffsets = BTreeMap<String, Offsets>;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: missing (is this a Spark checkpoint directory?)")]
    Missing { path: PathBuf },
    #[error("{path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub dir: PathBuf,
    /// The query's id (`metadata`), stable across restarts: the Iceberg sink stamps it on
    /// every snapshot it commits.
    pub query_id: String,
    /// Batch → the end offsets of its Kafka source (exclusive), from `offsets/<batch>`.
    pub planned: BTreeMap<u64, TopicOffsets>,
    /// Batches that finished (`commits/<batch>`).
    pub committed: BTreeSet<u64>,
    /// Where the first batch started (`sources/0/0`), if kept.
    pub initial: Option<TopicOffsets>,
}

fn read(path: &Path) -> Result<String, CheckpointError> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CheckpointError::Missing {
            path: path.to_path_buf(),
        },
        _ => CheckpointError::Unreadable {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
    })
}

fn unreadable(path: &Path, detail: impl Into<String>) -> CheckpointError {
    CheckpointError::Unreadable {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// A Kafka source's offsets: `{"topic":{"0":123,…},…}`.
pub fn parse_topic_offsets(path: &Path, line: &str) -> Result<TopicOffsets, CheckpointError> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| unreadable(path, format!("source offsets are not JSON: {e}")))?;
    let topics = v
        .as_object()
        .ok_or_else(|| unreadable(path, "source offsets are not a JSON object"))?;
    let mut out = TopicOffsets::new();
    for (topic, parts) in topics {
        let parts = parts
            .as_object()
            .ok_or_else(|| unreadable(path, format!("{topic}: partitions are not an object")))?;
        let mut offsets = Offsets::new();
        for (p, o) in parts {
            let p: i32 = p.parse().map_err(|_| {
                unreadable(path, format!("{topic}: partition {p:?} is not a number"))
            })?;
            let o = o
                .as_i64()
                .ok_or_else(|| unreadable(path, format!("{topic}/{p}: offset is not a number")))?;
            offsets.insert(p, o);
        }
        out.insert(topic.clone(), offsets);
    }
    Ok(out)
}

/// `offsets/<batch>`: `v1`, the batch's metadata, then one line per source (`-` for none).
/// The Kafka source of the old stack's raw queries is the only one.
fn parse_offsets_file(path: &Path, text: &str) -> Result<TopicOffsets, CheckpointError> {
    let mut lines = text.lines();
    match lines.next() {
        Some(v) if v.starts_with('v') => {}
        _ => return Err(unreadable(path, "no version line (truncated?)")),
    }
    let meta = lines
        .next()
        .ok_or_else(|| unreadable(path, "no batch metadata line (truncated?)"))?;
    serde_json::from_str::<Value>(meta)
        .map_err(|e| unreadable(path, format!("batch metadata is not JSON: {e}")))?;
    let mut out = TopicOffsets::new();
    let mut sources = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        sources += 1;
        if line.trim() == "-" {
            continue;
        }
        out.extend(parse_topic_offsets(path, line)?);
    }
    if sources == 0 {
        return Err(unreadable(path, "no source offsets (truncated?)"));
    }
    Ok(out)
}

fn numbered(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(unreadable(dir, e.to_string())),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        // Spark writes `N` and leaves `.N.crc` beside it; only plain numbers are batches.
        if let Ok(n) = name.parse::<u64>() {
            out.push((n, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

impl Checkpoint {
    /// Read the checkpoint directory of one streaming query.
    pub fn read(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let meta_path = dir.join("metadata");
        let meta: Value = serde_json::from_str(read(&meta_path)?.trim())
            .map_err(|e| unreadable(&meta_path, format!("not JSON: {e}")))?;
        let query_id = meta["id"]
            .as_str()
            .ok_or_else(|| unreadable(&meta_path, "no query id"))?
            .to_string();
        let mut planned = BTreeMap::new();
        for (n, path) in numbered(&dir.join("offsets"))? {
            planned.insert(n, parse_offsets_file(&path, &read(&path)?)?);
        }
        let committed = numbered(&dir.join("commits"))?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        let initial_path = dir.join("sources").join("0").join("0");
        let initial = match read(&initial_path) {
            Ok(text) => {
                let line = text
                    .lines()
                    .find(|l| l.trim_start().starts_with('{'))
                    .ok_or_else(|| unreadable(&initial_path, "no offsets"))?;
                Some(parse_topic_offsets(&initial_path, line)?)
            }
            Err(CheckpointError::Missing { .. }) => None,
            Err(e) => return Err(e),
        };
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            query_id,
            planned,
            committed,
            initial,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const META: &str = r#"{"batchWatermarkMs":0,"batchTimestampMs":1764000000000,"conf":{}}"#;

    #[test]
    fn a_checkpoint_reads_as_spark_writes_it() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "metadata", r#"{"id":"q-1"}"#);
        write(
            d.path(),
            "sources/0/0",
            "v1\n{\"orders_topic\":{\"0\":0,\"1\":0}}",
        );
        write(
            d.path(),
            "offsets/0",
            &format!("v1\n{META}\n{{\"orders_topic\":{{\"0\":10,\"1\":7}}}}\n"),
        );
        write(
            d.path(),
            "offsets/1",
            &format!("v1\n{META}\n{{\"orders_topic\":{{\"0\":25,\"1\":9}}}}"),
        );
        write(d.path(), "offsets/.1.crc", "junk");
        write(d.path(), "commits/0", "v1\n{\"nextBatchWatermarkMs\":0}");
        let c = Checkpoint::read(d.path()).unwrap();
        assert_eq!(c.query_id, "q-1");
        assert_eq!(c.planned.keys().copied().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(c.planned[&1]["orders_topic"], [(0, 25), (1, 9)].into());
        assert_eq!(c.committed, [0].into());
        assert_eq!(c.initial.unwrap()["orders_topic"], [(0, 0), (1, 0)].into());
    }

    #[test]
    fn what_does_not_parse_is_named() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Checkpoint::read(d.path()),
            Err(CheckpointError::Missing { .. })
        ));
        write(d.path(), "metadata", r#"{"id":"q-1"}"#);
        // Truncated while written: the version line only.
        write(d.path(), "offsets/3", "v1\n");
        let e = Checkpoint::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("offsets/3") && e.contains("truncated"), "{e}");
        write(
            d.path(),
            "offsets/3",
            &format!("v1\n{META}\n{{\"orders_topic\":{{\"x\":1}}}}"),
        );
        let e = Checkpoint::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("partition \"x\""), "{e}");
        write(d.path(), "offsets/3", &format!("v1\n{META}\n-"));
        assert!(Checkpoint::read(d.path()).unwrap().planned[&3].is_empty());
    }
}
