//! Manifest compaction. iceberg-rust 0.10's fast append adds one manifest per commit and never
//! merges them, so a table committed every second gathers thousands: metadata grows without
//! bound and every query plans over all of them. Before a chosen commit lands, we rewrite the
//! manifest list that commit just wrote: all earlier manifests become one (their entries kept
//! as EXISTING with their original snapshot ids and sequence numbers), plus the commit's own.
//! The list is not referenced by anyone until the commit lands, so rewriting it is safe; if the
//! commit fails, it is an orphan like any failed attempt's files.

use iceberg::spec::{
    FormatVersion, ManifestContentType, ManifestList, ManifestListWriter, ManifestStatus,
    ManifestWriterBuilder,
};
use iceberg::table::Table;
use iceberg::{Error, ErrorKind, Result};

/// Read a (format v2) manifest list of `table`.
pub async fn read_manifest_list(table: &Table, path: &str) -> Result<ManifestList> {
    let bytes = table.file_io().new_input(path)?.read().await?;
    ManifestList::parse_with_version(&bytes, table.metadata().format_version())
}

/// Find the manifest list written for `commit_uuid` in the table's metadata directory
/// (local or object store).
pub async fn find_manifest_list(table: &Table, commit_uuid: &str) -> Option<String> {
    let location = table.metadata().location().trim_end_matches('/');
    let suffix = format!("-{commit_uuid}.avro");
    let listed = crate::lake::io::store::list(
        &format!("{location}/metadata"),
        table.file_io().config().props(),
    )
    .await
    .ok()?;
    let name = listed
        .into_iter()
        .filter_map(|l| l.location.rsplit('/').next().map(str::to_string))
        .find(|n| n.starts_with("snap-") && n.ends_with(&suffix))?;
    Some(format!("{location}/metadata/{name}"))
}

/// Rewrite the manifest list at `list_path` (of the new snapshot `snapshot_id`, whose parent is
/// `base`'s current snapshot) so that manifests from earlier snapshots are merged into one.
/// Returns (manifests before, manifests after).
pub async fn compact_list(
    base: &Table,
    list_path: &str,
    snapshot_id: i64,
) -> Result<(usize, usize)> {
    let io = base.file_io();
    let meta = base.metadata();
    if meta.format_version() != FormatVersion::V2 {
        return Err(Error::new(
            ErrorKind::FeatureUnsupported,
            "manifest compaction needs a v2 table",
        ));
    }
    let list = read_manifest_list(base, list_path).await?;
    let manifests: Vec<_> = list.consume_entries().into_iter().collect();
    let before = manifests.len();
    let (ours, earlier): (Vec<_>, Vec<_>) = manifests
        .into_iter()
        .partition(|m| m.added_snapshot_id == snapshot_id);
    if earlier.len() < 2
        || earlier
            .iter()
            .any(|m| m.content != ManifestContentType::Data)
    {
        return Ok((before, before));
    }
    let schema = meta.current_schema().clone();
    let spec = meta.default_partition_spec().as_ref().clone();
    if earlier
        .iter()
        .any(|m| m.partition_spec_id != spec.spec_id())
    {
        return Ok((before, before));
    }
    let merged_path = format!(
        "{}/metadata/{}-m-compact.avro",
        meta.location().trim_end_matches('/'),
        uuid::Uuid::now_v7()
    );
    let mut writer = ManifestWriterBuilder::new(
        io.new_output(&merged_path)?,
        Some(snapshot_id),
        schema,
        spec,
    )
    .build_v2_data();
    let mut entries = 0usize;
    for m in &earlier {
        let manifest = m.load_manifest(io).await?;
        for entry in manifest.entries() {
            if entry.status() == ManifestStatus::Deleted {
                continue;
            }
            let seq = entry.sequence_number().ok_or_else(|| {
                Error::new(
                    ErrorKind::DataInvalid,
                    "manifest entry without a sequence number",
                )
            })?;
            let snapshot = entry.snapshot_id().ok_or_else(|| {
                Error::new(
                    ErrorKind::DataInvalid,
                    "manifest entry without a snapshot id",
                )
            })?;
            writer.add_existing_file(
                entry.data_file().clone(),
                snapshot,
                seq,
                entry.file_sequence_number,
            )?;
            entries += 1;
        }
    }
    let merged = writer.write_manifest_file().await?;
    let parent = meta.current_snapshot_id();
    let sequence_number = meta.next_sequence_number();
    let mut list_writer = ManifestListWriter::v2(
        io.new_output(list_path)?.writer().await?,
        snapshot_id,
        parent,
        sequence_number,
    );
    let mut all = vec![merged];
    all.extend(ours);
    let after = all.len();
    list_writer.add_manifests(all.into_iter())?;
    list_writer.close().await?;
    tracing::debug!(before, after, entries, "manifests compacted");
    Ok((before, after))
}
