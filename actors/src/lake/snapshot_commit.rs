//! Committing a snapshot we built ourselves. iceberg-rust 0.10 can only add `append`
//! snapshots (its snapshot producer and transaction actions are crate-private), but a data-file
//! compaction must land as a `replace` snapshot: streaming readers and our own incremental
//! consumers skip those, because no row changed. So we hand the catalog the same two updates a
//! transaction would (add the snapshot, move `main` to it) under the same requirements (same
//! table uuid, `main` still at the snapshot we built on), the way each catalog kind takes them:
//! the SQL catalog as a new `metadata.json` plus a compare-and-swap of its pointer row, exactly
//! as iceberg-catalog-sql does it; a REST catalog as a `CommitTableRequest`.

use std::collections::HashMap;

use iceberg::spec::{Snapshot, SnapshotReference, SnapshotRetention, MAIN_BRANCH};
use iceberg::table::Table;
use iceberg::{Error, ErrorKind, MetadataLocation, Result, TableRequirement, TableUpdate};
use iceberg_catalog_rest::CommitTableRequest;
use sqlx::Connection;

use super::catalog::{CatalogKind, Lake};

/// Commit `snapshot` (whose parent is `base`'s current snapshot) to `base`'s table. A table that
/// moved since `base` is a `CatalogCommitConflicts` error: decide again on the new state.
pub async fn commit_snapshot(lake: &Lake, base: &Table, snapshot: Snapshot) -> Result<()> {
    let id = snapshot.snapshot_id();
    let updates = vec![
        TableUpdate::AddSnapshot { snapshot },
        TableUpdate::SetSnapshotRef {
            ref_name: MAIN_BRANCH.to_string(),
            reference: SnapshotReference::new(id, SnapshotRetention::branch(None, None, None)),
        },
    ];
    let requirements = vec![
        TableRequirement::UuidMatch {
            uuid: base.metadata().uuid(),
        },
        TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN_BRANCH.to_string(),
            snapshot_id: base.metadata().current_snapshot_id(),
        },
    ];
    match &lake.params.catalog {
        CatalogKind::Sql => commit_sql(lake, base, updates, requirements).await,
        CatalogKind::Rest { uri, props } => {
            let mut all = lake.params.storage.0.clone();
            all.extend(props.0.clone());
            if !lake.params.warehouse.is_empty() {
                all.insert("warehouse".to_string(), lake.params.warehouse.clone());
            }
            commit_rest(uri, &all, base, updates, requirements).await
        }
    }
}

fn conflict(detail: String) -> Error {
    Error::new(ErrorKind::CatalogCommitConflicts, detail).with_retryable(true)
}

async fn commit_sql(
    lake: &Lake,
    base: &Table,
    updates: Vec<TableUpdate>,
    requirements: Vec<TableRequirement>,
) -> Result<()> {
    let ident = base.identifier();
    // Check against the catalog's current state, as the SQL catalog does before it writes.
    let current = lake.catalog.load_unpinned(ident).await?;
    for r in &requirements {
        r.check(Some(current.metadata()))
            .map_err(|e| conflict(format!("table {ident} moved: {e}")))?;
    }
    let current_location = current.metadata_location_result()?.to_string();
    let mut builder = current
        .metadata()
        .clone()
        .into_builder(Some(current_location.clone()));
    for u in updates {
        builder = u.apply(builder)?;
    }
    let metadata = builder.build()?.metadata;
    let location = current_location
        .parse::<MetadataLocation>()?
        .with_next_version()
        .with_new_metadata(&metadata);
    metadata.write_to(current.file_io(), &location).await?;
    let location = location.to_string();

    let sql = |e: sqlx::Error| {
        Error::new(
            ErrorKind::Unexpected,
            format!("SQL catalog {}: {e}", lake.params.catalog_db().display()),
        )
    };
    // The catalog's own pool writes the same file: wait for its lock rather than fail.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(lake.params.catalog_db())
        .busy_timeout(std::time::Duration::from_secs(10));
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .map_err(sql)?;
    // The same compare-and-swap iceberg-catalog-sql runs: only if the pointer is still ours.
    let done = sqlx::query(
        "UPDATE iceberg_tables SET metadata_location = ?, previous_metadata_location = ? \
         WHERE catalog_name = ? AND table_name = ? AND table_namespace = ? \
         AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL) AND metadata_location = ?",
    )
    .bind(&location)
    .bind(&current_location)
    .bind(&lake.params.catalog_name)
    .bind(ident.name())
    .bind(ident.namespace().join("."))
    .bind(&current_location)
    .execute(&mut conn)
    .await
    .map_err(sql)?;
    let _ = conn.close().await;
    if done.rows_affected() == 0 {
        return Err(conflict(format!("table {ident} moved during our commit")));
    }
    Ok(())
}

/// The parts of the REST protocol a commit needs: the server's config (its `prefix`), a token
/// (`token`, or the OAuth2 `credential` exchanged at the token endpoint), `header.*` props.
async fn commit_rest(
    uri: &str,
    props: &HashMap<String, String>,
    base: &Table,
    updates: Vec<TableUpdate>,
    requirements: Vec<TableRequirement>,
) -> Result<()> {
    let uri = uri.trim_end_matches('/');
    let http = reqwest::Client::new();
    let err = |what: &str, e: reqwest::Error| {
        Error::new(
            ErrorKind::Unexpected,
            format!("REST catalog {uri}: {what}: {e}"),
        )
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in props {
        if let Some(name) = k.strip_prefix("header.") {
            if let (Ok(n), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                headers.insert(n, v);
            }
        }
    }
    let token = match (props.get("token"), props.get("credential")) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(cred)) => {
            let (id, secret) = match cred.split_once(':') {
                Some((id, secret)) => (Some(id), secret),
                None => (None, cred.as_str()),
            };
            let mut form = vec![
                ("grant_type", "client_credentials"),
                ("client_secret", secret),
            ];
            if let Some(id) = id {
                form.push(("client_id", id));
            }
            form.push((
                "scope",
                props.get("scope").map(String::as_str).unwrap_or("catalog"),
            ));
            let endpoint = props
                .get("oauth2-server-uri")
                .cloned()
                .unwrap_or_else(|| format!("{uri}/v1/oauth/tokens"));
            let answer: serde_json::Value = http
                .post(endpoint)
                .headers(headers.clone())
                .form(&form)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| err("token", e))?
                .json()
                .await
                .map_err(|e| err("token", e))?;
            answer["access_token"].as_str().map(str::to_string)
        }
        (None, None) => None,
    };
    let with_auth = |r: reqwest::RequestBuilder| match &token {
        Some(t) => r.bearer_auth(t).headers(headers.clone()),
        None => r.headers(headers.clone()),
    };
    let mut config = with_auth(http.get(format!("{uri}/v1/config")));
    if let Some(w) = props.get("warehouse") {
        config = config.query(&[("warehouse", w)]);
    }
    let config: serde_json::Value = config
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| err("config", e))?
        .json()
        .await
        .map_err(|e| err("config", e))?;
    let prefix = config["overrides"]["prefix"]
        .as_str()
        .or_else(|| props.get("prefix").map(String::as_str))
        .map(|p| format!("/{p}"))
        .unwrap_or_default();
    let ident = base.identifier();
    let url = format!(
        "{uri}/v1{prefix}/namespaces/{}/tables/{}",
        ident.namespace().to_url_string(),
        ident.name()
    );
    let body = CommitTableRequest {
        identifier: Some(ident.clone()),
        requirements,
        updates,
    };
    let response = with_auth(http.post(url).json(&body))
        .send()
        .await
        .map_err(|e| err("commit", e))?;
    match response.status().as_u16() {
        200 => Ok(()),
        409 => Err(conflict(format!("table {ident} moved during our commit"))),
        code => {
            let text = response.text().await.unwrap_or_default();
            Err(Error::new(
                ErrorKind::Unexpected,
                format!(
                    "REST catalog {uri}: commit answered {code}: {text}; commit outcome unknown"
                ),
            ))
        }
    }
}
