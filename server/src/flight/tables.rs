//! The catalog the query engine reads through: the table a query plans on is reused while
//! the catalog still points at the same metadata file.
//!
//! iceberg-datafusion loads the table anew for every scan, and iceberg-rust keeps parsed
//! manifests in a cache owned by each loaded `Table`; so every query parsed every manifest
//! of every table it named (the dashboard's round: a quarter of a watched instance's CPU in a
//! `perf record`, BENCHMARKS.md "Partial windows"). Metadata files are immutable, so a table
//! whose metadata location is unchanged is exactly the table loaded before, parsed manifests
//! included. Every query still asks the catalog where the table is: it sees the latest commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use iceberg::table::Table;
use iceberg::{Catalog, Result as IcebergResult, TableCommit, TableIdent};
use prometheus::IntCounterVec;

#[derive(Debug)]
pub struct ReadCatalog {
    inner: Arc<dyn Catalog>,
    /// The last table loaded per name (its manifests parsed as queries planned on it).
    tables: Mutex<HashMap<TableIdent, Table>>,
    /// `shopwatch_query_tables_total{outcome="reused"|"loaded"}`.
    loads: IntCounterVec,
}

impl ReadCatalog {
    /// `loads`: `QueryMetrics::tables`.
    pub fn new(inner: Arc<dyn Catalog>, loads: IntCounterVec) -> Self {
        ReadCatalog {
            inner,
            tables: Mutex::new(HashMap::new()),
            loads,
        }
    }

    #[cfg(test)]
    fn reused(&self) -> u64 {
        self.loads.with_label_values(&["reused"]).get()
    }

    /// `fresh` as loaded now, or the table loaded before if it is the same version.
    fn reuse(&self, fresh: Table) -> Table {
        let Ok(mut tables) = self.tables.lock() else {
            return fresh;
        };
        let ident = fresh.identifier().clone();
        match tables.get(&ident) {
            Some(known) if same_version(known, &fresh) => {
                self.loads.with_label_values(&["reused"]).inc();
                known.clone()
            }
            _ => {
                self.loads.with_label_values(&["loaded"]).inc();
                tables.insert(ident, fresh.clone());
                fresh
            }
        }
    }

    fn forget(&self, ident: &TableIdent) {
        if let Ok(mut tables) = self.tables.lock() {
            tables.remove(ident);
        }
    }
}

/// The same metadata file (and so the same snapshot, schema and manifests).
fn same_version(a: &Table, b: &Table) -> bool {
    matches!(
        (a.metadata_location(), b.metadata_location()),
        (Some(x), Some(y)) if x == y
    )
}

shopwatch_actors::wrap_catalog!(ReadCatalog {
    async fn load_table(&self, ident: &TableIdent) -> IcebergResult<Table> {
        let fresh = self.inner.load_table(ident).await?;
        Ok(self.reuse(fresh))
    }
    async fn drop_table(&self, ident: &TableIdent) -> IcebergResult<()> {
        self.forget(ident);
        self.inner.drop_table(ident).await
    }
    async fn purge_table(&self, ident: &TableIdent) -> IcebergResult<()> {
        self.forget(ident);
        self.inner.purge_table(ident).await
    }
    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> IcebergResult<()> {
        self.forget(src);
        self.forget(dest);
        self.inner.rename_table(src, dest).await
    }
    async fn register_table(
        &self,
        ident: &TableIdent,
        metadata_location: String,
    ) -> IcebergResult<Table> {
        self.forget(ident);
        self.inner.register_table(ident, metadata_location).await
    }
    async fn update_table(&self, commit: TableCommit) -> IcebergResult<Table> {
        self.forget(commit.identifier());
        self.inner.update_table(commit).await
    }
});

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    use shopwatch_actors::lake::{Lake, LakeParams};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_table_is_reused_until_another_writer_commits_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(LakeParams::local("lake", "shop", dir.path()))
            .await
            .unwrap();
        let spec = shopwatch_actors::schema::dead_letters_spec();
        lake.ensure_table(&spec).await.unwrap();
        let ident = lake.ident(spec.name);
        let writer = lake.reader_catalog().await.unwrap();
        let metrics = super::super::limits::QueryMetrics::new(&prometheus::Registry::new());
        let read = ReadCatalog::new(lake.reader_catalog().await.unwrap(), metrics.tables);

        let first = read.load_table(&ident).await.unwrap();
        let again = read.load_table(&ident).await.unwrap();
        assert_eq!(first.metadata_location(), again.metadata_location());
        assert_eq!(read.reused(), 1);

        // Another process commits: the next load is the new version, not the one kept.
        let table = writer.load_table(&ident).await.unwrap();
        let tx = Transaction::new(&table);
        let tx = tx
            .update_table_properties()
            .set("shopwatch.test".into(), "1".into())
            .apply(tx)
            .unwrap();
        let committed = tx.commit(writer.as_ref()).await.unwrap();
        let after = read.load_table(&ident).await.unwrap();
        assert_ne!(after.metadata_location(), first.metadata_location());
        assert_eq!(after.metadata_location(), committed.metadata_location());
        assert_eq!(
            after.metadata().properties().get("shopwatch.test"),
            Some(&"1".to_string())
        );
        assert_eq!(read.reused(), 1);
        // And that version is kept in turn.
        read.load_table(&ident).await.unwrap();
        assert_eq!(read.reused(), 2);
    }
}
