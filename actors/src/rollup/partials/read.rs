//! The owner's read of the partials table: per remote partition, the committed ranges beyond
//! where it stands and the partial rows of those it can merge ([`super::chain::take`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use iceberg::expr::Reference;
use iceberg::spec::{Datum, ManifestContentType, PrimitiveLiteral};

use super::chain::{take, Take};
use super::GAP;
use crate::error::Error;
use crate::events::EventKind;
use crate::lake::io::scan::read_batches;
use crate::lake::maintenance::compact::read_manifest_list;
use crate::lake::{Lake, Offsets};
use crate::schema::partials::{self, partials_table, PartRow};

/// The partials table of `kind`'s topic.
pub async fn table(lake: &Lake, kind: EventKind) -> Result<iceberg::table::Table, Error> {
    let name = partials_table(kind);
    lake.catalog
        .load_unpinned(&lake.ident(name))
        .await
        .map_err(Error::iceberg(format!("loading {name}")))
}

fn table_name(table: &iceberg::table::Table) -> &str {
    table.identifier().name()
}

/// What the owner takes of `topic`'s partitions `from` (partition → where it stands).
#[derive(Debug, Default)]
pub struct Taken {
    pub takes: BTreeMap<i32, Take>,
    /// The KPI rows of the taken ranges.
    pub rows: Vec<PartRow>,
}

pub async fn read(
    table: &iceberg::table::Table,
    files: &mut Files,
    topic: &str,
    from: &Offsets,
) -> Result<Taken, Error> {
    let Some(floor) = from.values().min().copied() else {
        return Ok(Taken::default());
    };
    let batches = match files.wanted(table, topic, floor).await? {
        Some(paths) => read_files(table, &paths).await?,
        // A table this reader does not know how to index (delete files): scan it.
        None => {
            let filter = Reference::new("topic")
                .equal_to(Datum::string(topic))
                .and(Reference::new("end_offset").greater_than(Datum::long(floor)));
            read_batches(table, None, Some(filter)).await?
        }
    };
    let mut rows = Vec::new();
    for b in &batches {
        rows.extend(
            partials::decode(b)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", table_name(table))))?
                .into_iter()
                .filter(|r| beyond(r, topic, from)),
        );
    }
    let mut marks: BTreeMap<i32, Vec<(i64, i64, bool)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.is_mark()) {
        marks
            .entry(r.partition)
            .or_default()
            .push((r.offset, r.end_offset, r.events == GAP));
    }
    let mut out = Taken::default();
    for (p, m) in marks {
        if let Some(t) = from.get(&p).and_then(|f| take(&m, *f)) {
            out.takes.insert(p, t);
        }
    }
    let merged: BTreeSet<(i32, i64, i64)> = out
        .takes
        .iter()
        .flat_map(|(p, t)| t.ranges.iter().map(move |(s, e)| (*p, *s, *e)))
        .collect();
    out.rows = rows
        .into_iter()
        .filter(|r| !r.is_mark() && merged.contains(&(r.partition, r.offset, r.end_offset)))
        .collect();
    Ok(out)
}

/// Whether `r` is a row of `topic` ending beyond where the owner stands in its partition. A
/// file chosen by its bounds is read whole and may hold other topics' rows with the same
/// partitions and offsets (compaction merges the topics of a pane into one file): taking
/// their marks lost ranges (CI's group lane, errors topic ~20 % short in one minute).
fn beyond(r: &PartRow, topic: &str, from: &Offsets) -> bool {
    &*r.topic == topic && from.get(&r.partition).is_some_and(|f| r.end_offset > *f)
}

/// The partials table's live data files as the owner last saw them, by manifest. A manifest
/// never changes once written, so each is parsed once, not on every tick as a table scan's
/// planning would: that re-parsed every manifest each time, 41 % of the owner's CPU samples
/// in `bench ingest --instances 3` (perf, 2026-12-07).
#[derive(Default)]
pub struct Files {
    manifests: HashMap<String, Arc<Vec<FileInfo>>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileInfo {
    pub path: String,
    /// The `topic` column's (lower, upper) bound, when the file records them.
    pub topics: Option<(String, String)>,
    /// The `end_offset` column's upper bound.
    pub end_max: Option<i64>,
}

impl FileInfo {
    /// Whether the file may hold rows of `topic` ending past `floor` (no bound: it may).
    pub fn may_hold(&self, topic: &str, floor: i64) -> bool {
        let topic_ok = self
            .topics
            .as_ref()
            .is_none_or(|(lo, hi)| lo.as_str() <= topic && topic <= hi.as_str());
        topic_ok && self.end_max.is_none_or(|m| m > floor)
    }
}

impl Files {
    /// The current snapshot's data files that may hold rows of `topic` past `floor`; `None`
    /// when the table has delete files (never ours; a scan applies them).
    pub async fn wanted(
        &mut self,
        table: &iceberg::table::Table,
        topic: &str,
        floor: i64,
    ) -> Result<Option<Vec<String>>, Error> {
        let meta = table.metadata();
        let Some(snapshot) = meta.current_snapshot() else {
            self.manifests.clear();
            return Ok(Some(Vec::new()));
        };
        let name = table_name(table);
        let err = |what: &str| Error::iceberg(format!("{name}: {what}"));
        let list = read_manifest_list(table, snapshot.manifest_list())
            .await
            .map_err(err("reading the manifest list"))?;
        let schema = meta.current_schema();
        let id = |name: &str| schema.field_by_name(name).map(|f| f.id);
        let (topic_id, end_id) = (id("topic"), id("end_offset"));
        let mut live = HashMap::new();
        for m in list.entries() {
            if m.content != ManifestContentType::Data {
                return Ok(None);
            }
            let files = match self.manifests.get(&m.manifest_path) {
                Some(f) => f.clone(),
                None => {
                    let manifest = m
                        .load_manifest(table.file_io())
                        .await
                        .map_err(err("reading a manifest"))?;
                    let files = manifest
                        .entries()
                        .iter()
                        .filter(|e| e.is_alive())
                        .map(|e| {
                            let f = e.data_file();
                            let text = |b: &HashMap<i32, Datum>| match topic_id
                                .and_then(|i| b.get(&i))
                                .map(Datum::literal)
                            {
                                Some(PrimitiveLiteral::String(s)) => Some(s.clone()),
                                _ => None,
                            };
                            let end_max = match end_id
                                .and_then(|i| f.upper_bounds().get(&i))
                                .map(Datum::literal)
                            {
                                Some(PrimitiveLiteral::Long(v)) => Some(*v),
                                _ => None,
                            };
                            FileInfo {
                                path: f.file_path().to_string(),
                                topics: text(f.lower_bounds()).zip(text(f.upper_bounds())),
                                end_max,
                            }
                        })
                        .collect();
                    Arc::new(files)
                }
            };
            live.insert(m.manifest_path.clone(), files);
        }
        // Manifests merged or rewritten away are forgotten.
        self.manifests = live;
        Ok(Some(
            self.manifests
                .values()
                .flat_map(|fs| fs.iter())
                .filter(|f| f.may_hold(topic, floor))
                .map(|f| f.path.clone())
                .collect(),
        ))
    }
}

/// Every row of the Parquet files at `paths` (ours: written with the partials schema).
async fn read_files(
    table: &iceberg::table::Table,
    paths: &[String],
) -> Result<Vec<arrow_array::RecordBatch>, Error> {
    let mut out = Vec::new();
    for path in paths {
        let bytes = table
            .file_io()
            .new_input(path)
            .map_err(Error::iceberg(format!(
                "{}: opening {path}",
                table_name(table)
            )))?
            .read()
            .await
            .map_err(Error::iceberg(format!(
                "{}: reading {path}",
                table_name(table)
            )))?;
        let corrupt = |e: parquet::errors::ParquetError| {
            Error::Corrupt(format!("{}: decoding {path}: {e}", table_name(table)))
        };
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(corrupt)?;
        for batch in reader {
            out.push(batch.map_err(|e| corrupt(e.into()))?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{beyond, FileInfo};
    use crate::schema::partials::PartRow;

    #[test]
    fn a_row_is_taken_only_for_its_topic_and_beyond_the_owners_position() {
        let from = crate::lake::Offsets::from([(0, 10), (1, 0)]);
        // (topic, partition, end) of the row → taken when the owner reads orders?
        let cases = [
            ("orders", 0, 11, true),
            ("orders", 0, 10, false),
            ("orders", 1, 1, true),
            ("orders", 2, 100, false),
            ("errors", 0, 11, false),
            ("clicks", 1, 1, false),
        ];
        for (topic, partition, end, want) in cases {
            let r = PartRow::mark(topic, partition, end - 1, end);
            assert_eq!(beyond(&r, "orders", &from), want, "{r:?}");
        }
    }

    #[test]
    fn a_file_is_read_unless_its_bounds_rule_out_the_topic_or_the_range() {
        let f = |topics: Option<(&str, &str)>, end_max: Option<i64>| FileInfo {
            path: String::new(),
            topics: topics.map(|(a, b)| (a.to_string(), b.to_string())),
            end_max,
        };
        // (file, topic, floor) → read it?
        let cases = [
            (f(Some(("orders", "orders")), Some(100)), "orders", 99, true),
            (
                f(Some(("orders", "orders")), Some(100)),
                "orders",
                100,
                false,
            ),
            (f(Some(("orders", "orders")), Some(100)), "clicks", 0, false),
            (f(Some(("clicks", "orders")), Some(100)), "errors", 0, true),
            (f(Some(("clicks", "errors")), Some(100)), "orders", 0, false),
            // No bounds recorded: it may hold anything.
            (f(None, None), "orders", i64::MAX - 1, true),
            (f(None, Some(5)), "orders", 4, true),
            (f(Some(("orders", "orders")), None), "orders", 1_000, true),
        ];
        for (file, topic, floor, want) in cases {
            assert_eq!(
                file.may_hold(topic, floor),
                want,
                "{file:?} {topic} {floor}"
            );
        }
    }
}
