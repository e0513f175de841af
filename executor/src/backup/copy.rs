//! Second copies: after the primary backup is complete (object and
//! manifest), each copy target gets the object streamed from the primary
//! (read back with the primary's `Store::stream`, uploaded in parts of the
//! same size, `concurrency` at once: the same memory bound), then the
//! manifest, byte for byte. The copy is then read back whole and checked
//! against the manifest's object digest (size and SHA-256), and retention
//! runs on the copy target with the primary's policy.
//!
//! A copy never fails the backup: its failure is reported (and logged),
//! and what it wrote is removed, as a failed primary upload is.

use std::collections::HashMap;
use std::path::Path;

use futures_util::StreamExt;

use super::parts::PartUploads;
use super::prune::RetentionPolicy;
use crate::bucket::stream::{compare, object_digest};
use crate::error::Error;
use crate::s3::TargetConfig;
use crate::storage::Store;
use crate::storage::target::{Backend, FieldNames, StorageFields, endpoint_url};
use contract::executor::copies::CopyTarget;
use contract::manifest::Manifest;
use contract::result::{COPY_ERROR_BUDGET, CopyReport, cut};

/// How errors name a copy's storage settings: its JSON fields.
const COPY_FIELDS: FieldNames = FieldNames {
    bucket: "bucket",
    directory: "directory",
    azure: "azureAccount/azureContainer",
    azure_both: "azureAccount and azureContainer",
    azure_endpoint: "azureEndpoint",
    holds: "the copy",
};

/// A copy target as configured: where (for the report) and how to reach it.
#[derive(Debug, Clone)]
pub struct CopyConfig {
    /// [`CopyTarget::location`].
    pub location: String,
    pub target: TargetConfig,
}

impl CopyConfig {
    /// The copy's target: the primary's settings (path prefix, part size,
    /// concurrency, attempts, security profile) with the copy's storage
    /// and credentials. `which` names the copy in errors (`--copy 2`).
    pub fn new(copy: &CopyTarget, primary: &TargetConfig, which: &str) -> Result<Self, String> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let fields = StorageFields {
            bucket: copy.bucket.as_deref(),
            directory: copy.directory.as_deref().map(str::trim).map(Path::new),
            azure_account: copy.azure_account.as_deref(),
            azure_container: copy.azure_container.as_deref(),
            azure_endpoint: copy.azure_endpoint.as_deref(),
        };
        let in_copy = |e: String| format!("{which}: {e}");
        let backend = Backend::named(fields, &COPY_FIELDS)
            .map_err(in_copy)?
            .ok_or_else(|| {
                in_copy(
                    "name the copy's storage: bucket, directory, or azureAccount and azureContainer"
                        .into(),
                )
            })?;
        let checksums = match given(&copy.s3_checksum).as_deref() {
            None => true,
            Some(c) if c.eq_ignore_ascii_case("crc32") => true,
            Some(c) if c.eq_ignore_ascii_case("none") => false,
            Some(other) => {
                return Err(format!(
                    "{which}: s3Checksum `{other}` is neither crc32 nor none"
                ));
            }
        };
        let endpoint = endpoint_url(
            "endpoint",
            copy.endpoint.as_deref(),
            "https://s3.example.com",
        )
        .map_err(in_copy)?;
        let target = TargetConfig {
            force_path_style: endpoint.is_some() && !copy.virtual_hosted_style,
            bucket: given(&copy.bucket).unwrap_or_default(),
            backend,
            endpoint,
            region: given(&copy.region),
            credentials_dir: given(&copy.credentials_dir).map(Into::into),
            ca_bundle: given(&copy.ca_bundle).map(Into::into),
            checksums,
            ..primary.clone()
        };
        Ok(Self {
            location: copy.location(),
            target,
        })
    }
}

/// The backup just completed on the primary, as the copies need it.
pub struct Completed<'a> {
    pub primary: &'a Store,
    pub key: &'a str,
    pub manifest_key: &'a str,
    pub manifest: &'a Manifest,
    pub metadata: &'a HashMap<String, String>,
    pub prefix: &'a str,
    pub retention: Option<&'a RetentionPolicy>,
}

/// Makes and checks every copy, one after the other; never fails.
pub async fn copy_all(done: &Completed<'_>, copies: &[CopyConfig]) -> Vec<CopyReport> {
    let mut reports = Vec::with_capacity(copies.len());
    for copy in copies {
        tracing::info!(target = %copy.location, key = %done.key, "copying the backup");
        let mut report = CopyReport {
            target: copy.location.clone(),
            ..Default::default()
        };
        match copy_one(done, &copy.target).await {
            Ok(store) => {
                tracing::info!(target = %copy.location, key = %done.key, "the copy is verified");
                report.verified = true;
                if let Some(policy) = done.retention {
                    let retained = super::retain(&store, done.prefix, done.key, policy).await;
                    report.pruned = retained.deleted_count();
                    report.retention_error = retained.error.map(|e| cut(e, COPY_ERROR_BUDGET));
                }
            }
            Err(error) => {
                tracing::error!(target = %copy.location, key = %done.key, %error, "the copy failed; the backup stands");
                report.error = Some(cut(error.to_string(), COPY_ERROR_BUDGET));
            }
        }
        reports.push(report);
    }
    reports
}

/// Writes the copy and reads it back; on any failure removes what it
/// wrote.
async fn copy_one(done: &Completed<'_>, target: &TargetConfig) -> Result<Store, Error> {
    let store = Store::open(target).await?;
    write(done, &store, target).await?;
    if let Err(error) = read_back(done, &store).await {
        // An object that does not match its manifest is no backup.
        for key in [done.manifest_key, done.key] {
            if let Err(e) = store.delete(key).await {
                tracing::error!(error = %e, %key, "could not delete the unverified copy");
            }
        }
        return Err(error);
    }
    Ok(store)
}

/// The object streamed from the primary in parts, then the manifest.
async fn write(done: &Completed<'_>, store: &Store, target: &TargetConfig) -> Result<(), Error> {
    let mut source = done.primary.stream(done.key).await?.ok_or_else(|| {
        Error::Storage(format!(
            "{}: the backup is gone",
            done.primary.url(done.key)
        ))
    })?;
    let upload = store.begin(done.key, done.metadata.clone()).await?;
    let written = async {
        let mut parts = PartUploads::new(upload.clone(), target);
        let mut size = 0u64;
        while let Some(chunk) = source.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            parts.write(chunk).await?;
        }
        let parts = parts.finish().await?;
        upload.complete(&parts, size).await
    }
    .await;
    if let Err(error) = written {
        if let Err(abort) = upload.abort().await {
            tracing::error!(error = %abort, key = %done.key, "could not abort the copy's upload");
        }
        return Err(error);
    }
    let manifest = done.primary.get(done.manifest_key).await?.ok_or_else(|| {
        Error::Storage(format!(
            "{}: the manifest is gone",
            done.primary.url(done.manifest_key)
        ))
    })?;
    if let Err(error) = store
        .put(done.manifest_key, manifest, "application/json")
        .await
    {
        if let Err(e) = store.delete(done.key).await {
            tracing::error!(error = %e, key = %done.key, "could not delete the copy after its manifest failed");
        }
        return Err(error);
    }
    Ok(())
}

/// The copy read back: its object against the manifest's digest, and its
/// manifest for the same backup.
async fn read_back(done: &Completed<'_>, store: &Store) -> Result<(), Error> {
    let object = store
        .stream(done.key)
        .await?
        .ok_or_else(|| Error::Storage(format!("{}: the copy is missing", store.url(done.key))))?;
    let found = object_digest(object).await?;
    compare("copied object", &found, &done.manifest.object)?;
    let manifest = store.get(done.manifest_key).await?.ok_or_else(|| {
        Error::Storage(format!(
            "{}: the copy's manifest is missing",
            store.url(done.manifest_key)
        ))
    })?;
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| Error::InvalidSnapshot(format!("{}: {e}", store.url(done.manifest_key))))?;
    if manifest.key != done.key || manifest.object != done.manifest.object {
        return Err(Error::InvalidSnapshot(format!(
            "{}: the copy's manifest is not the backup's",
            store.url(done.manifest_key)
        )));
    }
    Ok(())
}
