//! Why a backup failed, as one line that names the cause.

/// Each variant is a cause the operator and people act on differently; the
/// message says what happened and, where it can, what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("no active OpenBao node: {0}")]
    NoActiveNode(String),
    #[error("OpenBao authentication failed: {0}")]
    AuthRefused(String),
    #[error("OpenBao error: {0}")]
    OpenBao(String),
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("S3 error: {0}")]
    Storage(String),
    /// A storage other than S3 failed: which one (`directory`, `Azure
    /// Blob`), and how.
    #[error("{0} error: {1}")]
    StorageAt(&'static str, String),
    #[error("plugin {0}")]
    Plugin(#[from] plugin_host::chain::ChainError),
    #[error("cancelled: received {0}")]
    Cancelled(&'static str),
    /// Only in the retention report: the backup itself stands.
    #[error("retention: {0}")]
    Retention(String),
}

impl Error {
    /// A stable, machine-readable cause for the JSON result.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::NoActiveNode(_) => "no-active-node",
            Self::AuthRefused(_) => "auth",
            Self::OpenBao(_) => "openbao",
            Self::InvalidSnapshot(_) => "invalid-snapshot",
            Self::Timeout(_) => "timeout",
            Self::Storage(_) | Self::StorageAt(..) => "storage",
            Self::Plugin(_) => "plugin",
            Self::Cancelled(_) => "cancelled",
            Self::Retention(_) => "retention",
        }
    }
}

/// An error and its sources on one line: HTTP clients keep the useful part
/// (connection refused, unknown certificate issuer) in the source chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}
