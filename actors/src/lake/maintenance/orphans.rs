//! Orphan sweeper: data files that a crash left behind (written, never committed) and that no
//! snapshot references. Metadata files are hygiene's; this covers a table's `data/` tree.
//!
//! Safety: a file is deleted only when no live snapshot names it *and* it is older than
//! `min_age` (default 24 h), because a writer elsewhere (a second process, a zombie) may have
//! written it for a commit that has not landed yet. The sweep runs inside the table's own
//! committer between commits, so this process never has a file of that table in flight.
//! Names are compared by file name: ours are unique per attempt (commit UUID), and a name match
//! anywhere keeps the file, which can only err on the side of keeping.

use std::collections::HashSet;
use std::time::Duration;

use iceberg::table::Table;
use iceberg::TableIdent;

use super::compact::read_manifest_list;
use crate::lake::catalog::Lake;
use crate::lake::io::store;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Files under the table's data directory.
    pub listed: usize,
    /// Files some live snapshot references.
    pub referenced: usize,
    /// Unreferenced but younger than the safety age: left for a later sweep.
    pub pending: usize,
    pub deleted: usize,
    pub bytes_deleted: u64,
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Names of every data file any live snapshot of `table` references.
pub async fn referenced_data_files(table: &Table) -> anyhow::Result<HashSet<String>> {
    let io = table.file_io();
    let mut names = HashSet::new();
    let mut seen_manifests = HashSet::new();
    for snapshot in table.metadata().snapshots() {
        let list = read_manifest_list(table, snapshot.manifest_list()).await?;
        for m in list.entries() {
            if !seen_manifests.insert(m.manifest_path.clone()) {
                continue;
            }
            let manifest = m.load_manifest(io).await?;
            // Every entry, deleted ones included: an older snapshot may still read that file.
            for entry in manifest.entries() {
                names.insert(file_name(entry.file_path()).to_string());
            }
        }
    }
    Ok(names)
}

/// Which listed files to delete: unreferenced and older than `min_age` at `now`.
pub fn choose<'a>(
    listed: &'a [store::Listed],
    referenced: &HashSet<String>,
    now: chrono::DateTime<chrono::Utc>,
    min_age: Duration,
) -> (Vec<&'a store::Listed>, usize) {
    let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    let mut doomed = Vec::new();
    let mut pending = 0;
    for f in listed {
        if referenced.contains(file_name(&f.location)) {
            continue;
        }
        if now - f.last_modified >= min_age {
            doomed.push(f);
        } else {
            pending += 1;
        }
    }
    (doomed, pending)
}

/// List, decide, delete. With `dry_run` nothing is deleted (the report says what would be).
pub async fn sweep(
    lake: &Lake,
    ident: &TableIdent,
    min_age: Duration,
    dry_run: bool,
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let table = lake.catalog.load_unpinned(ident).await?;
    if !super::every_version_visible(table.metadata()) {
        // Older versions live in the catalog's own history (Nessie); its GC owns their files.
        return Ok(report);
    }
    let props = table.file_io().config().props().clone();
    let data_dir = format!("{}/data", table.metadata().location().trim_end_matches('/'));
    // Listed before the references are read: a file committed in between is then both
    // listed and referenced, never listed-but-unknown.
    let listed = store::list(&data_dir, &props).await?;
    let referenced = referenced_data_files(&table).await?;
    report.listed = listed.len();
    report.referenced = listed
        .iter()
        .filter(|f| referenced.contains(file_name(&f.location)))
        .count();
    let (doomed, pending) = choose(&listed, &referenced, chrono::Utc::now(), min_age);
    report.pending = pending;
    for f in doomed {
        if !dry_run {
            store::delete(&f.location, &props).await?;
        }
        report.deleted += 1;
        report.bytes_deleted += f.size;
    }
    tracing::debug!(table = %ident, ?report, dry_run, "orphan sweep done");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn listed(name: &str, age_s: i64, now: chrono::DateTime<Utc>) -> store::Listed {
        store::Listed {
            location: format!("file:///w/ns/t/data/{name}"),
            size: 100,
            last_modified: now - chrono::Duration::seconds(age_s),
        }
    }

    #[test]
    fn only_old_unreferenced_files_go() {
        let now = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let files = [
            listed("a.parquet", 90_000, now),   // referenced, old: kept
            listed("b.parquet", 90_000, now),   // orphan, old: deleted
            listed("c.parquet", 60, now),       // orphan, young: pending
            listed("d.parquet", 86_400, now),   // orphan, exactly the age: deleted
            listed("x/a.parquet", 90_000, now), // same name in a partition dir: kept
        ];
        let referenced: HashSet<String> = ["a.parquet".to_string()].into();
        let (doomed, pending) = choose(&files, &referenced, now, Duration::from_secs(86_400));
        let names: Vec<_> = doomed.iter().map(|f| file_name(&f.location)).collect();
        assert_eq!(names, ["b.parquet", "d.parquet"]);
        assert_eq!(pending, 1);
    }

    #[test]
    fn a_huge_safety_age_deletes_nothing() {
        let now = Utc::now();
        let files = [listed("b.parquet", 1_000_000, now)];
        let (doomed, pending) = choose(&files, &HashSet::new(), now, Duration::MAX);
        assert!(doomed.is_empty());
        assert_eq!(pending, 1);
    }
}
