//! S3 client setup and the multipart-upload calls the backup needs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region, retry::RetryConfig, timeout::TimeoutConfig};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{Error, error_chain};
use contract::network::{Cidr, forbidden, url_host};
use contract::secret::Secret;

pub use crate::storage::target::TargetConfig;

/// Builds the S3 client: custom CA, path-style for non-AWS endpoints,
/// credentials from the mounted Secret or the standard AWS sources, and the
/// SDK's standard retry (transient errors and throttling are retried with
/// exponential backoff and jitter; auth and client errors are not).
pub async fn client(target: &TargetConfig) -> Result<Client, Error> {
    check_endpoint(target).await?;
    let mut trust = TrustStore::default();
    for path in target.ca_bundle.iter().chain(secret_ca(target).iter()) {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the S3 CA bundle {} (--ca-bundle, or caCert in --credentials-dir): {e}",
                path.display()
            ))
        })?;
        trust = trust.with_pem_certificate(pem);
    }
    let tls = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Error::Config(format!("invalid S3 CA bundle: {e}")))?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(tls)
        .build_https();

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(region(target.region.as_deref()).await);
    if let Some(dir) = &target.credentials_dir {
        loader = loader.credentials_provider(credentials_from_dir(dir)?);
    }
    let shared = loader.load().await;

    let mut config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(target.force_path_style)
        // Objects uploaded in parts carry per-part checksums the SDK cannot
        // check on download (it warns); read-back checks SHA-256 itself.
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .retry_config(RetryConfig::standard().with_max_attempts(target.max_attempts))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(120))
                .build(),
        );
    if !target.checksums {
        // No checksum the operation does not require (GCS refuses them).
        config = config.request_checksum_calculation(
            aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
        );
    }
    if let Some(endpoint) = &target.endpoint {
        config = config.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

/// Under the `Hardened` profile, resolves the endpoint's host and refuses
/// it if any address is loopback, link-local (cloud metadata) or in the
/// service network (`contract::network::forbidden`). AWS (no endpoint) is
/// not checked.
pub async fn check_endpoint(target: &TargetConfig) -> Result<(), Error> {
    let (Some(service_cidrs), Some(endpoint)) = (&target.hardened, &target.endpoint) else {
        return Ok(());
    };
    check_host(endpoint, service_cidrs, "--endpoint (S3_ENDPOINT)").await
}

/// Refuses `endpoint` (given by `flag`) if its host resolves to loopback,
/// link-local or the service network (the `Hardened` profile).
pub async fn check_host(endpoint: &str, service_cidrs: &[Cidr], flag: &str) -> Result<(), Error> {
    let host = url_host(endpoint);
    let port = if endpoint.starts_with("http://") {
        80
    } else {
        443
    };
    let addresses = tokio::net::lookup_host((host, port)).await.map_err(|e| {
        Error::Storage(format!(
            "cannot resolve the storage endpoint's host `{host}` ({e}) to check it for the Hardened profile"
        ))
    })?;
    for address in addresses {
        if let Some(why) = forbidden(address.ip(), service_cidrs) {
            return Err(Error::Config(format!(
                "{flag} `{endpoint}` resolves to {why}: the Hardened profile (SECURITY_PROFILE) refuses it as a storage endpoint; give the storage's own address"
            )));
        }
    }
    Ok(())
}

/// The region used when neither `--region` nor the AWS chain names one:
/// what S3-compatible servers (MinIO, Ceph) expect by default and what
/// this tool always used.
pub const FALLBACK_REGION: &str = "us-east-1";

/// The region SigV4 signs with: `--region` (S3_REGION); else the AWS
/// chain as the AWS CLI reads it (AWS_REGION, AWS_DEFAULT_REGION, the
/// profile's `region` in AWS_CONFIG_FILE for AWS_PROFILE); else
/// [`FALLBACK_REGION`]. The chain stops short of the EC2 instance metadata,
/// which off EC2 only adds seconds of timeouts to every command.
pub async fn region(flag: Option<&str>) -> Region {
    use aws_config::meta::region::RegionProviderChain;
    if let Some(region) = flag.map(str::trim).filter(|r| !r.is_empty()) {
        return Region::new(region.to_string());
    }
    let chain = RegionProviderChain::first_try(
        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new());
    match chain.region().await {
        Some(region) => {
            tracing::debug!(%region, "S3 region from the AWS environment or profile");
            region
        }
        None => {
            tracing::info!(
                region = FALLBACK_REGION,
                "no S3 region set (--region, S3_REGION, AWS_REGION, AWS_DEFAULT_REGION or the AWS profile): using {FALLBACK_REGION}"
            );
            Region::new(FALLBACK_REGION)
        }
    }
}

/// A `caCert` key in the mounted credentials Secret is a CA bundle too.
fn secret_ca(target: &TargetConfig) -> Option<PathBuf> {
    let path = target.credentials_dir.as_ref()?.join("caCert");
    path.is_file().then_some(path)
}

/// Reads the keys of the mounted credentials Secret.
fn credentials_from_dir(dir: &Path) -> Result<Credentials, Error> {
    let read =
        |name: &str| Secret::from_file(&dir.join(name), "S3 credentials").map_err(Error::Config);
    let session = dir.join("sessionToken");
    let session = if session.exists() {
        Some(read("sessionToken")?)
    } else {
        None
    };
    Ok(Credentials::new(
        read("accessKeyId")?.expose(),
        read("secretAccessKey")?.expose(),
        session.as_ref().map(|s| s.expose().to_string()),
        None,
        "S3_CREDENTIALS_DIR",
    ))
}

/// The algorithm of the parts' checksums, if they carry one.
fn checksum(target: &TargetConfig) -> Option<ChecksumAlgorithm> {
    target.checksums.then_some(ChecksumAlgorithm::Crc32)
}

/// One multipart upload in progress. Dropping it does not abort: the owner
/// calls `complete` or `abort`.
#[derive(Clone)]
pub struct MultipartUpload {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    sign_payload: bool,
    /// Whether parts carry a CRC32 (`TargetConfig::checksums`).
    checksum: Option<ChecksumAlgorithm>,
}

impl MultipartUpload {
    pub async fn create(
        client: &Client,
        target: &TargetConfig,
        key: &str,
        metadata: HashMap<String, String>,
    ) -> Result<Self, Error> {
        let bucket = target.bucket.as_str();
        let out = client
            .create_multipart_upload()
            .bucket(bucket)
            .set_checksum_algorithm(checksum(target))
            .key(key)
            .content_type("application/octet-stream")
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|e| storage_error("CreateMultipartUpload", bucket, e))?;
        let upload_id = out
            .upload_id
            .ok_or_else(|| Error::Storage("CreateMultipartUpload returned no upload id".into()))?;
        Ok(Self {
            client: client.clone(),
            bucket: bucket.into(),
            key: key.into(),
            upload_id,
            sign_payload: target.signs_payload(),
            checksum: checksum(target),
        })
    }

    /// Uploads one part with its CRC32, which S3 checks; the SDK retries
    /// transient failures of this part.
    pub async fn upload_part(&self, number: i32, body: Bytes) -> Result<CompletedPart, Error> {
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .set_checksum_algorithm(self.checksum.clone())
            .content_length(body.len() as i64)
            .body(ByteStream::from(body));
        let sent = if self.sign_payload {
            request.send().await
        } else {
            request.customize().disable_payload_signing().send().await
        };
        let out =
            sent.map_err(|e| storage_error(&format!("UploadPart {number}"), &self.bucket, e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag)
            .set_checksum_crc32(out.checksum_crc32)
            .build())
    }

    /// An upload begun earlier, by this or another run, to abort it.
    pub fn resume(client: &Client, bucket: &str, key: &str, upload_id: &str) -> Self {
        Self {
            client: client.clone(),
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            sign_payload: false,
            checksum: None,
        }
    }

    /// Completes the upload into an object of `size` bytes. An error answer
    /// does not prove it failed: S3 may have completed it and the answer
    /// been lost (a retry then gets NoSuchUpload). HeadObject decides: an
    /// object of `size` bytes is the completed upload; an object of which
    /// we cannot be sure is removed. On error the caller aborts the upload.
    pub async fn complete(&self, parts: &[CompletedPart], size: u64) -> Result<(), Error> {
        let mut parts = parts.to_vec();
        parts.sort_by_key(|p| p.part_number);
        let Err(error) = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| storage_error("CompleteMultipartUpload", &self.bucket, e))
        else {
            return Ok(());
        };
        let stored = head_object(&self.client, &self.bucket, &self.key).await;
        match stored.map(|head| head.map(|head| head.size)) {
            Ok(None) => Err(error),
            Ok(Some(stored)) if stored == size => {
                tracing::warn!(%error, key = %self.key, "CompleteMultipartUpload answered with an error, but the object is complete");
                Ok(())
            }
            stored => {
                tracing::warn!(%error, key = %self.key, ?stored, "CompleteMultipartUpload failed and the object is not the one uploaded: deleting it");
                if let Err(delete) = delete_object(&self.client, &self.bucket, &self.key).await {
                    tracing::error!(error = %delete, key = %self.key, "could not delete the object");
                }
                Err(error)
            }
        }
    }

    /// Aborts the upload and checks that it is gone: a part upload that was
    /// still on the wire can land after an abort, so S3 asks clients to abort
    /// until ListParts no longer knows the upload.
    pub async fn abort(&self) -> Result<(), Error> {
        for _ in 0..3 {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .send()
                .await;
            if let Err(e) = aborted
                && e.code() != Some("NoSuchUpload")
            {
                return Err(storage_error("AbortMultipartUpload", &self.bucket, e));
            }
            let listed = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .send()
                .await;
            match listed {
                Err(e) if e.code() == Some("NoSuchUpload") => return Ok(()),
                Err(e) => return Err(storage_error("ListParts", &self.bucket, e)),
                Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Err(Error::Storage(format!(
            "multipart upload {} of {} is still listed after 3 aborts",
            self.upload_id, self.key
        )))
    }
}

pub async fn put_object(
    client: &Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), Error> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| storage_error("PutObject", bucket, e))?;
    Ok(())
}

/// What HeadObject says of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    /// When the storage stored it, by the storage's clock.
    pub modified: Option<DateTime<Utc>>,
}

/// An object's size and Last-Modified time, or None when there is no such
/// key (HeadObject).
pub async fn head_object(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectHead>, Error> {
    match client.head_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(Some(ObjectHead {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            modified: out
                .last_modified()
                .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        })),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
        Err(e) => Err(storage_error("HeadObject", bucket, e)),
    }
}

pub async fn delete_object(client: &Client, bucket: &str, key: &str) -> Result<(), Error> {
    client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| storage_error("DeleteObject", bucket, e))?;
    Ok(())
}

/// A small object (a manifest), whole; None when there is no such key.
pub async fn get_object(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, Error> {
    use futures_util::StreamExt;
    let Some(stream) = object_stream(client, bucket, key).await? else {
        return Ok(None);
    };
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(Some(bytes))
}

/// An object as a stream of chunks, or None when there is no such key; a
/// broken download fails the stream.
pub async fn object_stream(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<
    Option<impl futures_util::Stream<Item = Result<Bytes, Error>> + Send + 'static + use<>>,
    Error,
> {
    let out = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => out,
        Err(e) if e.code() == Some("NoSuchKey") => return Ok(None),
        Err(e) => return Err(storage_error("GetObject", bucket, e)),
    };
    let key = key.to_string();
    Ok(Some(futures_util::stream::unfold(
        (out.body, key, 0u64),
        |(mut body, key, received)| async move {
            match body.try_next().await {
                Ok(Some(chunk)) => {
                    let received = received + chunk.len() as u64;
                    Some((Ok(chunk), (body, key, received)))
                }
                Ok(None) => None,
                Err(e) => Some((
                    Err(Error::Storage(format!(
                        "GetObject {key}: the download broke after {received} bytes: {}",
                        error_chain(&e)
                    ))),
                    (body, key, received),
                )),
            }
        },
    )))
}

/// Every object under `prefix`: (key, size).
pub async fn list_objects(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, u64)>, Error> {
    Ok(list_objects_modified(client, bucket, prefix)
        .await?
        .into_iter()
        .map(|(key, size, _)| (key, size))
        .collect())
}

/// Every object under `prefix`: (key, size, last modified).
pub async fn list_objects_modified(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, u64, DateTime<Utc>)>, Error> {
    let mut objects = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| storage_error("ListObjectsV2", bucket, e))?;
        for object in page.contents() {
            if let Some(key) = object.key() {
                objects.push((
                    key.to_string(),
                    object.size().unwrap_or(0).max(0) as u64,
                    utc(object.last_modified()),
                ));
            }
        }
    }
    Ok(objects)
}

/// A multipart upload S3 still holds open.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenUpload {
    pub key: String,
    pub upload_id: String,
    pub initiated: DateTime<Utc>,
}

/// Every open multipart upload under `prefix`.
pub async fn list_uploads(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<OpenUpload>, Error> {
    let mut uploads = Vec::new();
    let (mut key_marker, mut upload_id_marker) = (None, None);
    loop {
        let page = client
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker)
            .set_upload_id_marker(upload_id_marker)
            .send()
            .await
            .map_err(|e| storage_error("ListMultipartUploads", bucket, e))?;
        for upload in page.uploads() {
            if let (Some(key), Some(upload_id)) = (upload.key(), upload.upload_id()) {
                uploads.push(OpenUpload {
                    key: key.into(),
                    upload_id: upload_id.into(),
                    initiated: utc(upload.initiated()),
                });
            }
        }
        if page.is_truncated() != Some(true) || page.next_key_marker().is_none() {
            return Ok(uploads);
        }
        key_marker = page.next_key_marker().map(str::to_string);
        upload_id_marker = page.next_upload_id_marker().map(str::to_string);
    }
}

/// An S3 time as UTC; a missing one is now, which no age limit reaches.
fn utc(time: Option<&aws_sdk_s3::primitives::DateTime>) -> DateTime<Utc> {
    time.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(Utc::now)
}

/// One line with the S3 error code and message, plus a hint for the causes
/// people hit first.
fn storage_error<E, R>(operation: &str, bucket: &str, error: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let hint = match error.code() {
        Some("NoSuchBucket") => {
            format!(" (bucket `{bucket}` does not exist: create it or fix --bucket)")
        }
        Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
            " (check the S3 credentials and the key's permissions on the bucket)".to_string()
        }
        _ => String::new(),
    };
    let detail = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_string(),
        _ => error_chain(&error),
    };
    Error::Storage(format!(
        "{operation} failed: {}{hint}",
        detail.replace('\n', " ")
    ))
}
