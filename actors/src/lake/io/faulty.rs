//! Object storage with the drills' `s3.request` failpoint in front of every request: injected
//! 5xx errors, timeouts and slow responses on S3, where the pipeline meets them for real. Only
//! in builds with the `failpoints` feature; the point costs one atomic load when nothing is armed.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::faults::{self, Point};

pub const POINT: Point = Point::S3Request;

/// Wraps a store; every request first passes the `s3.request` failpoint.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
}

impl FaultyStore {
    pub fn wrap(inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(FaultyStore { inner })
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

/// The failpoint, as the error an S3 client would return.
async fn gate(op: &str, location: &str) -> Result<()> {
    faults::hit(POINT)
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: format!("{op} {location}: {e} (503 Service Unavailable, injected)").into(),
        })
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        gate("PUT", location.as_ref()).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        gate("multipart PUT", location.as_ref()).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        gate("GET", location.as_ref()).await?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let inner = self.inner.clone();
        let gated = locations
            .and_then(|p| async move {
                gate("DELETE", p.as_ref()).await?;
                Ok(p)
            })
            .boxed();
        inner.delete_stream(gated)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let at = prefix.map(|p| p.to_string()).unwrap_or_default();
        let listing = self.inner.list(prefix);
        futures::stream::once(async move {
            match gate("LIST", &at).await {
                Ok(()) => listing,
                Err(e) => futures::stream::once(async { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        gate("LIST", prefix.map(|p| p.as_ref()).unwrap_or_default()).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        gate("COPY", to.as_ref()).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
