//! Object storage for the lake, on `object_store`: S3-compatible servers (MinIO, AWS, moto)
//! and the local filesystem through one API.
//!
//! iceberg-rust 0.10 ships only local and in-memory storage, so `ObjectStorage` is our
//! iceberg `Storage` for `s3://` locations; `file://` paths go to iceberg's own local storage,
//! which the lake has used from the start. Listing (manifest compaction, metadata hygiene, the
//! orphan sweeper) goes through `object_store` for both, so those work on either warehouse.
//!
//! S3 settings are the Iceberg property names (`s3.endpoint`, `s3.access-key-id`, …): they
//! come from our catalog properties, extended by what a REST catalog returns per table.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, LocalFsStorage, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

pub const S3_ENDPOINT: &str = "s3.endpoint";
pub const S3_REGION: &str = "s3.region";
pub const CLIENT_REGION: &str = "client.region";
pub const S3_ACCESS_KEY_ID: &str = "s3.access-key-id";
pub const S3_SECRET_ACCESS_KEY: &str = "s3.secret-access-key";
pub const S3_SESSION_TOKEN: &str = "s3.session-token";
pub const S3_PATH_STYLE_ACCESS: &str = "s3.path-style-access";

/// One object found by a listing.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Full location as the tables name it (`s3://bucket/key` or `file:///path`).
    pub location: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// A location split into the store that holds it and the key inside that store.
pub struct Located {
    pub store: Arc<dyn ObjectStore>,
    pub key: ObjPath,
    /// What to put before a key to get the location back (`s3://bucket/` or `file:///`).
    pub base: String,
}

fn store_error(op: &str, location: &str, e: object_store::Error) -> Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => ErrorKind::DataInvalid,
        _ => ErrorKind::Unexpected,
    };
    // object_store errors name the path and the HTTP status, never the credentials.
    Error::new(kind, format!("{op} {location}: {e}"))
}

fn truthy(v: Option<&String>) -> Option<bool> {
    v.map(|s| matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// Open the store for `location` (`s3://…`, `file://…` or an absolute path).
pub fn locate(location: &str, props: &HashMap<String, String>) -> Result<Located> {
    if let Some(rest) = location
        .strip_prefix("s3://")
        .or_else(|| location.strip_prefix("s3a://"))
    {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("{location}: no bucket in the S3 location"),
            ));
        }
        let store = s3_store(bucket, props)?;
        let key = ObjPath::parse(key.trim_matches('/'))
            .map_err(|e| Error::new(ErrorKind::DataInvalid, format!("{location}: {e}")))?;
        let scheme = if location.starts_with("s3a://") {
            "s3a"
        } else {
            "s3"
        };
        return Ok(Located {
            store,
            key,
            base: format!("{scheme}://{bucket}/"),
        });
    }
    let path = location
        .strip_prefix("file://")
        .or_else(|| location.strip_prefix("file:"))
        .unwrap_or(location);
    if !path.starts_with('/') {
        return Err(Error::new(
            ErrorKind::FeatureUnsupported,
            format!("{location}: only s3:// and absolute file:// locations are supported"),
        ));
    }
    // Table locations may hold `.`, `..` or doubled slashes (a relative data directory made
    // them, before start-up cleaned it); object_store refuses such segments, the disk does not.
    let key = ObjPath::parse(clean_local(path))
        .map_err(|e| Error::new(ErrorKind::DataInvalid, format!("{location}: {e}")))?;
    Ok(Located {
        store: Arc::new(LocalFileSystem::new()),
        key,
        base: "file:///".to_string(),
    })
}

/// An absolute local path without `.` segments, empty segments or `..` (resolved lexically),
/// and without leading or trailing slashes: what object_store's paths accept.
pub fn clean_local(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// An S3 client for `bucket` from Iceberg's `s3.*` properties.
pub fn s3_store(bucket: &str, props: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let mut b = AmazonS3Builder::new().with_bucket_name(bucket);
    let region = props
        .get(S3_REGION)
        .or_else(|| props.get(CLIENT_REGION))
        .map(String::as_str)
        .unwrap_or("us-east-1");
    b = b.with_region(region);
    if let Some(endpoint) = props.get(S3_ENDPOINT).filter(|e| !e.is_empty()) {
        b = b
            .with_endpoint(endpoint.trim_end_matches('/'))
            .with_allow_http(endpoint.starts_with("http://"));
    }
    // S3-compatible servers (MinIO, moto) want path-style requests unless told otherwise;
    // virtual-hosted style needs a DNS name per bucket.
    let path_style =
        truthy(props.get(S3_PATH_STYLE_ACCESS)).unwrap_or(props.contains_key(S3_ENDPOINT));
    b = b.with_virtual_hosted_style_request(!path_style);
    if let Some(k) = props.get(S3_ACCESS_KEY_ID).filter(|k| !k.is_empty()) {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = props.get(S3_SECRET_ACCESS_KEY).filter(|s| !s.is_empty()) {
        b = b.with_secret_access_key(s);
    }
    if let Some(t) = props.get(S3_SESSION_TOKEN).filter(|t| !t.is_empty()) {
        b = b.with_token(t);
    }
    let store: Arc<dyn ObjectStore> = Arc::new(
        b.build()
            .map_err(|e| Error::new(ErrorKind::DataInvalid, format!("S3 bucket {bucket}: {e}")))?,
    );
    // Drill builds put the `s3.request` failpoint in front of every request.
    #[cfg(feature = "failpoints")]
    let store = super::faulty::FaultyStore::wrap(store);
    Ok(store)
}

/// Every object under `prefix` (a directory-like location), recursively.
pub async fn list(prefix: &str, props: &HashMap<String, String>) -> Result<Vec<Listed>> {
    let located = locate(prefix, props)?;
    let mut out = Vec::new();
    let mut stream = located.store.list(Some(&located.key));
    while let Some(item) = stream.next().await {
        match item {
            Ok(meta) => out.push(Listed {
                location: format!("{}{}", located.base, meta.location),
                size: meta.size,
                last_modified: meta.last_modified,
            }),
            // A directory that does not exist yet lists as nothing.
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(store_error("listing", prefix, e)),
        }
    }
    Ok(out)
}

/// Delete one object; a missing one counts as deleted.
pub async fn delete(location: &str, props: &HashMap<String, String>) -> Result<()> {
    let located = locate(location, props)?;
    match located.store.delete(&located.key).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(store_error("deleting", location, e)),
    }
}

fn is_local(path: &str) -> bool {
    path.starts_with("file:") || path.starts_with('/')
}

/// iceberg `Storage` over `object_store` for S3 locations (local paths: iceberg's own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStorage {
    props: HashMap<String, String>,
    #[serde(skip)]
    buckets: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl ObjectStorage {
    pub fn new(props: HashMap<String, String>) -> Self {
        ObjectStorage {
            props,
            buckets: Arc::default(),
        }
    }

    /// The store and key for an S3 path, reusing one client per bucket.
    fn s3(&self, path: &str) -> Result<(Arc<dyn ObjectStore>, ObjPath)> {
        let rest = path
            .strip_prefix("s3://")
            .or_else(|| path.strip_prefix("s3a://"))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::FeatureUnsupported,
                    format!("{path}: only s3:// and file:// locations are supported"),
                )
            })?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        let key = ObjPath::parse(key)
            .map_err(|e| Error::new(ErrorKind::DataInvalid, format!("{path}: {e}")))?;
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| Error::new(ErrorKind::Unexpected, "storage clients poisoned"))?;
        if let Some(store) = buckets.get(bucket) {
            return Ok((store.clone(), key));
        }
        let store = s3_store(bucket, &self.props)?;
        buckets.insert(bucket.to_string(), store.clone());
        Ok((store, key))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        if is_local(path) {
            return LocalFsStorage::new().exists(path).await;
        }
        let (store, key) = self.s3(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error("checking", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        if is_local(path) {
            return LocalFsStorage::new().metadata(path).await;
        }
        let (store, key) = self.s3(path)?;
        let meta = store
            .head(&key)
            .await
            .map_err(|e| store_error("reading metadata of", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        if is_local(path) {
            return LocalFsStorage::new().read(path).await;
        }
        let (store, key) = self.s3(path)?;
        let got = store
            .get(&key)
            .await
            .map_err(|e| store_error("reading", path, e))?;
        got.bytes()
            .await
            .map_err(|e| store_error("reading", path, e))
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        if is_local(path) {
            return LocalFsStorage::new().reader(path).await;
        }
        let (store, key) = self.s3(path)?;
        Ok(Box::new(ObjectRead {
            store,
            key,
            location: path.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        if is_local(path) {
            return LocalFsStorage::new().write(path, bs).await;
        }
        let (store, key) = self.s3(path)?;
        store
            .put(&key, PutPayload::from_bytes(bs))
            .await
            .map_err(|e| store_error("writing", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        if is_local(path) {
            return LocalFsStorage::new().writer(path).await;
        }
        let (store, key) = self.s3(path)?;
        Ok(Box::new(ObjectWrite {
            store,
            key,
            location: path.to_string(),
            parts: Vec::new(),
            closed: false,
        }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        if is_local(path) {
            return LocalFsStorage::new().delete(path).await;
        }
        let (store, key) = self.s3(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("deleting", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        if is_local(path) {
            return LocalFsStorage::new().delete_prefix(path).await;
        }
        let (store, key) = self.s3(path)?;
        let keys: Vec<ObjPath> = store
            .list(Some(&key))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| store_error("listing", path, e))?;
        for k in keys {
            match store.delete(&k).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error("deleting", path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Builds `ObjectStorage` from the catalog's (and the table's) properties.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorageFactory;

#[typetag::serde]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStorage::new(config.props().clone())))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    key: ObjPath,
    location: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&self.key, range)
            .await
            .map_err(|e| store_error("reading", &self.location, e))
    }
}

/// Buffers a file and puts it in one request at close: our files are one commit's rows
/// (a few MB), and a single PUT is atomic: a crash never leaves half an object.
struct ObjectWrite {
    store: Arc<dyn ObjectStore>,
    key: ObjPath,
    location: String,
    parts: Vec<Bytes>,
    closed: bool,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        if self.closed {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{}: write after close", self.location),
            ));
        }
        self.parts.push(bs);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::new(
                ErrorKind::Unexpected,
                format!("{}: closed twice", self.location),
            ));
        }
        self.closed = true;
        let payload = PutPayload::from_iter(std::mem::take(&mut self.parts));
        self.store
            .put(&self.key, payload)
            .await
            .map_err(|e| store_error("writing", &self.location, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_split_into_store_and_key() {
        let props = HashMap::from([(S3_ENDPOINT.to_string(), "http://127.0.0.1:9".to_string())]);
        let l = locate("s3://lake/wh/db/t/metadata/", &props).unwrap();
        assert_eq!(l.base, "s3://lake/");
        assert_eq!(l.key.as_ref(), "wh/db/t/metadata");
        let l = locate("file:///tmp/x/warehouse", &props).unwrap();
        assert_eq!(l.base, "file:///");
        assert_eq!(l.key.as_ref(), "tmp/x/warehouse");
        assert!(locate("s3:///key", &props).is_err());
        assert!(locate("relative/dir", &props).is_err());
        assert!(locate("gs://bucket/x", &props).is_err());
    }

    #[tokio::test]
    async fn local_listing_and_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let base = format!("file://{}", dir.path().display());
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/one.parquet"), b"12345").unwrap();
        std::fs::write(dir.path().join("a/two.avro"), b"12").unwrap();
        let props = HashMap::new();
        let mut listed = list(&format!("{base}/a"), &props).await.unwrap();
        listed.sort_by(|x, y| x.location.cmp(&y.location));
        let names: Vec<_> = listed
            .iter()
            .map(|l| (l.location.clone(), l.size))
            .collect();
        assert_eq!(
            names,
            vec![
                (format!("{base}/a/b/one.parquet"), 5),
                (format!("{base}/a/two.avro"), 2)
            ]
        );
        delete(&listed[0].location, &props).await.unwrap();
        delete(&listed[0].location, &props).await.unwrap();
        assert!(!dir.path().join("a/b/one.parquet").exists());
        assert!(list(&format!("{base}/nothing-here"), &props)
            .await
            .unwrap()
            .is_empty());
    }
}
