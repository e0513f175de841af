//! One storage interface for backup, restore, retention and the catalog:
//! an S3 bucket, a directory (a mounted volume) or an Azure Blob container,
//! each with only the operations the callers need. Every backend streams a
//! backup in parts, at most `concurrency` in flight, so memory is bounded by
//! part size x concurrency whatever the target.
//!
//! An upload becomes visible under its key only when complete: S3 and Azure
//! commit a multipart upload or a block list, a directory renames a
//! temporary file into place. What a killed run leaves (an open multipart
//! upload, a temporary file) is listed by `open_uploads` for the next
//! backup's sweep; Azure's uncommitted blocks expire on their own.

pub mod azure;
pub mod local;
pub mod target;

use std::collections::HashMap;

use aws_sdk_s3::types::CompletedPart;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::error::Error;
use crate::s3::{self, MultipartUpload};
pub use crate::s3::{ObjectHead, OpenUpload};
use target::{Backend, TargetConfig};

/// A listed object: key, size, last modified.
pub type Entry = (String, u64, DateTime<Utc>);

/// An object's bytes as they arrive; a broken read fails the stream.
pub type ObjectStream = BoxStream<'static, Result<Bytes, Error>>;

/// A storage target, ready to use.
#[derive(Clone)]
pub enum Store {
    S3 {
        client: aws_sdk_s3::Client,
        target: Box<TargetConfig>,
    },
    Directory(local::Directory),
    Azure(azure::Container),
}

impl Store {
    /// Connects to (or, for a directory, checks) the configured target.
    pub async fn open(target: &TargetConfig) -> Result<Self, Error> {
        Ok(match &target.backend {
            Backend::S3 => Self::S3 {
                client: s3::client(target).await?,
                target: Box::new(target.clone()),
            },
            Backend::Directory(root) => Self::Directory(local::Directory::open(root)?),
            Backend::Azure(azure) => Self::Azure(azure::Container::open(azure, target).await?),
        })
    }

    /// What holds the backups, for results and logs: the bucket, the
    /// directory or the container.
    pub fn location(&self) -> String {
        match self {
            Self::S3 { target, .. } => target.bucket.clone(),
            Self::Directory(dir) => dir.root().display().to_string(),
            Self::Azure(container) => container.name().to_string(),
        }
    }

    /// A key (or prefix) as a URL people can read in an error.
    pub fn url(&self, key: &str) -> String {
        match self {
            Self::S3 { target, .. } => format!("s3://{}/{key}", target.bucket),
            Self::Directory(dir) => dir.root().join(key).display().to_string(),
            Self::Azure(container) => container.url(key),
        }
    }

    /// Begins an upload to `key`, invisible until completed.
    pub async fn begin(
        &self,
        key: &str,
        metadata: HashMap<String, String>,
    ) -> Result<Upload, Error> {
        Ok(match self {
            Self::S3 { client, target } => {
                Upload::S3(MultipartUpload::create(client, target, key, metadata).await?)
            }
            Self::Directory(dir) => Upload::Directory(dir.begin(key).await?),
            Self::Azure(container) => Upload::Azure(container.begin(key, metadata)),
        })
    }

    /// Stores a small object (a manifest) whole.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), Error> {
        match self {
            Self::S3 { client, target } => {
                s3::put_object(client, &target.bucket, key, body, content_type).await
            }
            Self::Directory(dir) => dir.put(key, body).await,
            Self::Azure(container) => container.put(key, body, content_type).await,
        }
    }

    /// An object's size and modification time; None when there is none.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectHead>, Error> {
        match self {
            Self::S3 { client, target } => s3::head_object(client, &target.bucket, key).await,
            Self::Directory(dir) => dir.head(key).await,
            Self::Azure(container) => container.head(key).await,
        }
    }

    /// A small object (a manifest), whole; None when there is no such key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(mut stream) = self.stream(key).await? else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        Ok(Some(bytes))
    }

    /// An object as a stream; None when there is no such key.
    pub async fn stream(&self, key: &str) -> Result<Option<ObjectStream>, Error> {
        Ok(match self {
            Self::S3 { client, target } => s3::object_stream(client, &target.bucket, key)
                .await?
                .map(StreamExt::boxed),
            Self::Directory(dir) => dir.stream(key).await?,
            Self::Azure(container) => container.stream(key).await?,
        })
    }

    /// Every object under `prefix`: (key, size, last modified).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64, DateTime<Utc>)>, Error> {
        match self {
            Self::S3 { client, target } => {
                s3::list_objects_modified(client, &target.bucket, prefix).await
            }
            Self::Directory(dir) => dir.list(prefix).await,
            Self::Azure(container) => container.list(prefix).await,
        }
    }

    /// Every object under `prefix`: (key, size).
    pub async fn list_sizes(&self, prefix: &str) -> Result<Vec<(String, u64)>, Error> {
        Ok(self
            .list(prefix)
            .await?
            .into_iter()
            .map(|(key, size, _)| (key, size))
            .collect())
    }

    /// Deletes `key`; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self {
            Self::S3 { client, target } => s3::delete_object(client, &target.bucket, key).await,
            Self::Directory(dir) => dir.delete(key).await,
            Self::Azure(container) => container.delete(key).await,
        }
    }

    /// Uploads begun and never completed nor aborted (a killed run).
    /// Azure keeps uncommitted blocks out of reach and expires them: none.
    pub async fn open_uploads(&self, prefix: &str) -> Result<Vec<OpenUpload>, Error> {
        match self {
            Self::S3 { client, target } => s3::list_uploads(client, &target.bucket, prefix).await,
            Self::Directory(dir) => dir.open_uploads(prefix).await,
            Self::Azure(_) => Ok(Vec::new()),
        }
    }

    /// Aborts an upload `open_uploads` listed.
    pub async fn abort_open(&self, upload: &OpenUpload) -> Result<(), Error> {
        match self {
            Self::S3 { client, target } => {
                MultipartUpload::resume(client, &target.bucket, &upload.key, &upload.upload_id)
                    .abort()
                    .await
            }
            Self::Directory(dir) => dir.abort_open(upload).await,
            Self::Azure(_) => Ok(()),
        }
    }
}

/// One upload in progress. Dropping it does not abort: the owner calls
/// `complete` or `abort`.
#[derive(Clone)]
pub enum Upload {
    S3(MultipartUpload),
    Directory(local::Upload),
    Azure(azure::Upload),
}

/// A part stored, as `complete` needs it.
#[derive(Debug, Clone)]
pub struct Part {
    /// From 1, in the object's order.
    pub number: u32,
    s3: Option<CompletedPart>,
}

impl Upload {
    /// Stores part `number` (from 1), which begins `offset` bytes into
    /// the object. Parts may be stored in any order and at once.
    pub async fn put_part(&self, number: u32, offset: u64, body: Bytes) -> Result<Part, Error> {
        let s3 = match self {
            Self::S3(upload) => Some(upload.upload_part(number as i32, body).await?),
            Self::Directory(upload) => {
                upload.write_at(offset, body).await?;
                None
            }
            Self::Azure(upload) => {
                upload.put_block(number, body).await?;
                None
            }
        };
        Ok(Part { number, s3 })
    }

    /// Makes the object of `size` bytes visible under its key. On error the
    /// caller aborts.
    pub async fn complete(&self, parts: &[Part], size: u64) -> Result<(), Error> {
        match self {
            Self::S3(upload) => {
                let parts: Vec<CompletedPart> = parts.iter().filter_map(|p| p.s3.clone()).collect();
                upload.complete(&parts, size).await
            }
            Self::Directory(upload) => upload.complete(size).await,
            Self::Azure(upload) => {
                let mut numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
                numbers.sort_unstable();
                upload.commit(&numbers, size).await
            }
        }
    }

    /// Removes what the upload stored, leaving nothing under its key.
    pub async fn abort(&self) -> Result<(), Error> {
        match self {
            Self::S3(upload) => upload.abort().await,
            Self::Directory(upload) => upload.abort().await,
            Self::Azure(upload) => upload.abort().await,
        }
    }
}
