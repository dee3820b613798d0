//! A table's live data files as its manifests list them, each manifest parsed once, for reads
//! that come back every tick (the rollup owner's reads of the partials tables and of the
//! errors table for the detector). A table scan plans over every manifest again each time:
//! iceberg-rust keeps its parsed manifests per loaded table, and every read loads the table
//! anew. With three instances that planning was 27–41 % of the owner's CPU samples (`perf`,
//! BENCHMARKS.md "Partial windows"). Manifests never change once written, so what is kept
//! stays true; the files are then read through iceberg's own reader (projection, the row
//! filter, partition values), only the planning is ours.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use iceberg::expr::{Bind, Predicate};
use iceberg::scan::FileScanTask;
use iceberg::spec::{DataFileFormat, Datum, ManifestContentType, PrimitiveLiteral, Struct};
use iceberg::table::Table;

use crate::lake::maintenance::compact::read_manifest_list;

/// The table property a scan would read a name mapping from (files without field ids).
const NAME_MAPPING: &str = "schema.name-mapping.default";

/// What a read needs of a file, decided on the bounds the file records: a file they rule out
/// is not opened. A file without the bound may hold anything.
#[derive(Clone, Debug, PartialEq)]
pub enum Need {
    /// Some value of the (long) column is above this.
    Above(&'static str, i64),
    /// Some value of the (long) column is at least this.
    AtLeast(&'static str, i64),
    /// Some value of the (string) column equals this.
    Equal(&'static str, String),
}

/// One live data file and what its manifest entry says of it.
#[derive(Clone, Debug)]
pub struct FileInfo {
    pub path: String,
    pub size: u64,
    pub records: u64,
    pub format: DataFileFormat,
    pub partition: Struct,
    pub lower: HashMap<i32, Datum>,
    pub upper: HashMap<i32, Datum>,
}

impl FileInfo {
    /// Whether the file may hold rows meeting every need (`id` names a column's field id).
    pub fn may_hold(&self, needs: &[Need], id: impl Fn(&str) -> Option<i32>) -> bool {
        let bound = |m: &HashMap<i32, Datum>, col: &str| {
            id(col).and_then(|i| m.get(&i)).map(|d| d.literal().clone())
        };
        needs.iter().all(|n| match n {
            Need::Above(col, v) => match bound(&self.upper, col) {
                Some(PrimitiveLiteral::Long(hi)) => hi > *v,
                _ => true,
            },
            Need::AtLeast(col, v) => match bound(&self.upper, col) {
                Some(PrimitiveLiteral::Long(hi)) => hi >= *v,
                _ => true,
            },
            Need::Equal(col, v) => {
                let lo_ok = match bound(&self.lower, col) {
                    Some(PrimitiveLiteral::String(lo)) => lo.as_str() <= v.as_str(),
                    _ => true,
                };
                // A string upper bound may be truncated and then incremented, never below the
                // values: comparing against it is safe either way.
                let hi_ok = match bound(&self.upper, col) {
                    Some(PrimitiveLiteral::String(hi)) => v.as_str() <= hi.as_str(),
                    _ => true,
                };
                lo_ok && hi_ok
            }
        })
    }
}

/// One table's manifests as last seen (keep one per table read).
#[derive(Default)]
pub struct FileIndex {
    manifests: HashMap<String, Arc<Vec<FileInfo>>>,
}

impl FileIndex {
    /// The live data files it knows of (what the last read planned over).
    pub fn known_files(&self) -> usize {
        self.manifests.values().map(|f| f.len()).sum()
    }

    /// Every row of `table`'s current snapshot matching `filter`, from the files `needs` does
    /// not rule out. `None` when the table has what this index does not handle (delete files,
    /// a name mapping): scan it then.
    pub async fn read(
        &mut self,
        table: &Table,
        filter: Predicate,
        needs: &[Need],
    ) -> iceberg::Result<Option<Vec<RecordBatch>>> {
        let meta = table.metadata();
        let Some(snapshot) = meta.current_snapshot() else {
            self.manifests.clear();
            return Ok(Some(Vec::new()));
        };
        if meta.properties().contains_key(NAME_MAPPING) {
            return Ok(None);
        }
        let schema = snapshot.schema(meta)?;
        let list = read_manifest_list(table, snapshot.manifest_list()).await?;
        let mut live = HashMap::new();
        for m in list.entries() {
            if m.content != ManifestContentType::Data {
                return Ok(None);
            }
            let files = match self.manifests.get(&m.manifest_path) {
                Some(f) => f.clone(),
                None => {
                    let manifest = m.load_manifest(table.file_io()).await?;
                    Arc::new(
                        manifest
                            .entries()
                            .iter()
                            .filter(|e| e.is_alive())
                            .map(|e| {
                                let f = e.data_file();
                                FileInfo {
                                    path: f.file_path().to_string(),
                                    size: f.file_size_in_bytes(),
                                    records: f.record_count(),
                                    format: f.file_format(),
                                    partition: f.partition().clone(),
                                    lower: f.lower_bounds().clone(),
                                    upper: f.upper_bounds().clone(),
                                }
                            })
                            .collect(),
                    )
                }
            };
            live.insert(m.manifest_path.clone(), files);
        }
        // Manifests merged or rewritten away are forgotten.
        self.manifests = live;
        let id = |col: &str| schema.field_by_name(col).map(|f| f.id);
        let bound = filter.bind(schema.clone(), true)?;
        let fields: Vec<i32> = schema.as_struct().fields().iter().map(|f| f.id).collect();
        let tasks: Vec<FileScanTask> = self
            .manifests
            .values()
            .flat_map(|fs| fs.iter())
            .filter(|f| f.may_hold(needs, id))
            .map(|f| {
                FileScanTask::builder()
                    .with_file_size_in_bytes(f.size)
                    .with_start(0)
                    .with_length(f.size)
                    .with_record_count(Some(f.records))
                    .with_data_file_path(f.path.clone())
                    .with_data_file_format(f.format)
                    .with_schema(schema.clone())
                    .with_project_field_ids(fields.clone())
                    .with_predicate(Some(bound.clone()))
                    .with_deletes(Vec::new())
                    .with_partition(Some(f.partition.clone()))
                    .with_partition_spec(None)
                    .with_name_mapping(None)
                    .with_case_sensitive(true)
                    .build()
            })
            .collect();
        if tasks.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let stream = Box::pin(futures::stream::iter(tasks.into_iter().map(Ok)));
        let batches = table
            .reader_builder()
            .build()
            .read(stream)?
            .stream()
            .try_collect()
            .await?;
        Ok(Some(batches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(lower: &[(i32, Datum)], upper: &[(i32, Datum)]) -> FileInfo {
        FileInfo {
            path: String::new(),
            size: 0,
            records: 0,
            format: DataFileFormat::Parquet,
            partition: Struct::empty(),
            lower: lower.iter().cloned().collect(),
            upper: upper.iter().cloned().collect(),
        }
    }

    #[test]
    fn a_file_is_read_unless_its_bounds_rule_it_out() {
        let id = |c: &str| match c {
            "topic" => Some(1),
            "end_offset" => Some(2),
            _ => None,
        };
        let s = Datum::string;
        let orders = file(
            &[(1, s("orders"))],
            &[(1, s("orders")), (2, Datum::long(100))],
        );
        let mixed = file(
            &[(1, s("clicks"))],
            &[(1, s("orders")), (2, Datum::long(100))],
        );
        let bare = file(&[], &[]);
        let eq = |t: &str| Need::Equal("topic", t.to_string());
        // (file, needs) → opened?
        let cases = [
            (
                &orders,
                vec![eq("orders"), Need::Above("end_offset", 99)],
                true,
            ),
            (
                &orders,
                vec![eq("orders"), Need::Above("end_offset", 100)],
                false,
            ),
            (&orders, vec![Need::AtLeast("end_offset", 100)], true),
            (&orders, vec![Need::AtLeast("end_offset", 101)], false),
            (&orders, vec![eq("clicks")], false),
            (&orders, vec![eq("zzz")], false),
            // Bounds spanning clicks..orders include errors: the rows decide then.
            (&mixed, vec![eq("errors")], true),
            (&mixed, vec![eq("aaa")], false),
            // No bound recorded, or a column the table lacks: it may hold anything.
            (
                &bare,
                vec![eq("orders"), Need::Above("end_offset", i64::MAX - 1)],
                true,
            ),
            (&orders, vec![Need::Above("no_such_column", 5)], true),
            (&orders, vec![], true),
        ];
        for (f, needs, want) in cases {
            assert_eq!(f.may_hold(&needs, id), want, "{needs:?} on {f:?}");
        }
    }
}
