//! Where backups go, as configured: the S3 settings (which the directory
//! and Azure targets share where they apply: prefix, part size,
//! concurrency, credentials directory) and which backend stores them.

use std::path::PathBuf;

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
