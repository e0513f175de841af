//! Where backups go, as configured: the S3 settings (which the directory
//! and Azure targets share where they apply: prefix, part size,
//! concurrency, credentials directory) and which backend stores them.

use std::path::{Path, PathBuf};

use contract::network::Cidr;

/// Which storage holds the backups.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Backend {
    /// An S3 bucket (`bucket`, `endpoint`, `region`...).
    #[default]
    S3,
    /// A directory, e.g. a mounted volume (`--directory`).
    Directory(PathBuf),
    /// An Azure Blob Storage container.
    Azure(AzureTarget),
}

/// An Azure Blob Storage container and how to reach it. The account key is
/// read from `accountKey` in the credentials directory.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureTarget {
    pub account: String,
    pub container: String,
    /// The Blob service URL; None is `https://ACCOUNT.blob.core.windows.net`.
    /// With an emulator (Azurite) the account is the path's first segment:
    /// `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Which storage: S3 (the fields below), a directory or Azure.
    pub backend: Backend,
    pub endpoint: Option<String>,
    pub bucket: String,
    /// `--region`; None lets the AWS chain decide (see [`crate::s3::region`]).
    pub region: Option<String>,
    pub path_prefix: String,
    pub part_size: u64,
    pub concurrency: usize,
    pub credentials_dir: Option<PathBuf>,
    pub ca_bundle: Option<PathBuf>,
    pub force_path_style: bool,
    /// Send a CRC32 with every part (and let the SDK add its default
    /// checksums). Off for stores that refuse `x-amz-checksum-*` headers,
    /// such as Google Cloud Storage's XML API.
    pub checksums: bool,
    pub max_attempts: u32,
    /// Under the `Hardened` profile, the service network: an endpoint that
    /// resolves to loopback, link-local or one of these ranges is refused
    /// before any connection ([`crate::s3::check_endpoint`]). None: no check.
    pub hardened: Option<Vec<Cidr>>,
}

impl TargetConfig {
    /// Whether part bodies go into the SigV4 signature. Over TLS the payload
    /// is left unsigned, as the AWS CLI does: TLS and the per-part CRC32
    /// protect it, and the upload skips a second SHA-256 pass over every
    /// byte. Over plain HTTP the signature is all that protects the bytes.
    pub fn signs_payload(&self) -> bool {
        self.endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    }
}

/// The storage settings as given, on the command line or in a copy's JSON;
/// empty ones (blank, for text) count as absent.
#[derive(Debug, Default, Clone, Copy)]
pub struct StorageFields<'a> {
    pub bucket: Option<&'a str>,
    pub directory: Option<&'a Path>,
    pub azure_account: Option<&'a str>,
    pub azure_container: Option<&'a str>,
    pub azure_endpoint: Option<&'a str>,
}

/// How errors name those settings: flags or JSON fields.
pub struct FieldNames {
    pub bucket: &'static str,
    pub directory: &'static str,
    /// Either Azure setting.
    pub azure: &'static str,
    /// Both Azure settings, joined by "and".
    pub azure_both: &'static str,
    pub azure_endpoint: &'static str,
    /// What the storage is for: "the backups", "the copy".
    pub holds: &'static str,
}

impl Backend {
    /// The one storage the fields name: a bucket, a directory or an Azure
    /// container (its account and container both); None when they name
    /// none. Naming two is an error.
    pub fn named<'a>(
        fields: StorageFields<'a>,
        names: &FieldNames,
    ) -> Result<Option<Backend>, String> {
        let set = |v: Option<&'a str>| v.map(str::trim).filter(|v| !v.is_empty());
        let directory = fields.directory.filter(|d| !d.as_os_str().is_empty());
        let azure = set(fields.azure_account).is_some() || set(fields.azure_container).is_some();
        let given: Vec<&str> = [
            (set(fields.bucket).is_some(), names.bucket),
            (directory.is_some(), names.directory),
            (azure, names.azure),
        ]
        .into_iter()
        .filter_map(|(given, name)| given.then_some(name))
        .collect();
        if given.len() > 1 {
            return Err(format!(
                "both {} are set: choose one storage for {}",
                given.join(" and "),
                names.holds
            ));
        }
        if let Some(directory) = directory {
            return Ok(Some(Backend::Directory(directory.into())));
        }
        if set(fields.bucket).is_some() {
            return Ok(Some(Backend::S3));
        }
        if !azure {
            return Ok(None);
        }
        let (Some(account), Some(container)) =
            (set(fields.azure_account), set(fields.azure_container))
        else {
            return Err(format!(
                "Azure Blob Storage needs both {}",
                names.azure_both
            ));
        };
        Ok(Some(Backend::Azure(AzureTarget {
            account: account.into(),
            container: container.into(),
            endpoint: endpoint_url(
                names.azure_endpoint,
                fields.azure_endpoint,
                "https://ACCOUNT.blob.core.windows.net",
            )?,
        })))
    }
}

/// An endpoint setting as a URL without its trailing slash; None when it
/// is absent or empty. `name` and `example` make the error.
pub fn endpoint_url(
    name: &str,
    value: Option<&str>,
    example: &str,
) -> Result<Option<String>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(value)
        .map_err(|e| format!("{name}: `{value}` is not a URL ({e}); use e.g. {example}"))?;
    Ok(Some(url.as_str().trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: FieldNames = FieldNames {
        bucket: "B",
        directory: "D",
        azure: "A/C",
        azure_both: "A and C",
        azure_endpoint: "E",
        holds: "X",
    };

    #[test]
    fn one_storage_is_named() {
        let named = |fields| Backend::named(fields, &NAMES);
        assert_eq!(named(StorageFields::default()), Ok(None));
        let blank = StorageFields {
            bucket: Some(" "),
            directory: Some(Path::new("")),
            ..Default::default()
        };
        assert_eq!(named(blank), Ok(None));
        let bucket = StorageFields {
            bucket: Some("b"),
            ..Default::default()
        };
        assert_eq!(named(bucket), Ok(Some(Backend::S3)));
        let directory = StorageFields {
            directory: Some(Path::new("/backups")),
            ..Default::default()
        };
        assert_eq!(
            named(directory),
            Ok(Some(Backend::Directory("/backups".into())))
        );
        let azure = StorageFields {
            azure_account: Some("acct"),
            azure_container: Some("c"),
            azure_endpoint: Some("http://127.0.0.1:10000/acct/"),
            ..Default::default()
        };
        assert_eq!(
            named(azure),
            Ok(Some(Backend::Azure(AzureTarget {
                account: "acct".into(),
                container: "c".into(),
                endpoint: Some("http://127.0.0.1:10000/acct".into()),
            })))
        );
    }

    #[test]
    fn two_storages_or_half_of_azure_are_refused() {
        let named = |fields| Backend::named(fields, &NAMES).unwrap_err();
        let two = StorageFields {
            bucket: Some("b"),
            azure_account: Some("acct"),
            ..Default::default()
        };
        assert_eq!(
            named(two),
            "both B and A/C are set: choose one storage for X"
        );
        let half = StorageFields {
            azure_container: Some("c"),
            ..Default::default()
        };
        assert_eq!(named(half), "Azure Blob Storage needs both A and C");
        let bad = StorageFields {
            azure_account: Some("acct"),
            azure_container: Some("c"),
            azure_endpoint: Some("blob.local"),
            ..Default::default()
        };
        assert!(named(bad).starts_with("E: `blob.local` is not a URL"));
    }
}
