//! Settings of the operator itself (from its environment), as the
//! reconcilers and the Jobs they build need them.

/// Settings of the operator itself (from its environment).
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// Audience of the backup pods' projected tokens (`OPENBAO_JWT_AUDIENCE`).
    pub jwt_audience: String,
    /// The images backup and restore Jobs may run (`EXECUTOR_IMAGES`): a
    /// cluster's author picks the image, and it runs with the Secrets the
    /// spec names. See `validate::image_allowed`.
    pub executor_images: Vec<String>,
    /// The executor image of a spec that names none
    /// (`DEFAULT_EXECUTOR_IMAGE`; the chart passes its own image).
    pub default_executor_image: String,
}

impl OperatorSettings {
    /// The image a backup or restore Job runs: the one the spec names, else
    /// the operator's default.
    pub fn executor_image<'a>(&'a self, named: Option<&'a str>) -> &'a str {
        named.unwrap_or(&self.default_executor_image)
    }
}

/// `DEFAULT_EXECUTOR_IMAGE` when unset: this project's image at this
/// version (the chart's appVersion; a test checks they agree).
pub const DEFAULT_EXECUTOR_IMAGE: &str =
    concat!("openbao/backup-executor:v", env!("CARGO_PKG_VERSION"));

/// `EXECUTOR_IMAGES` when unset: the project's own executor.
pub const DEFAULT_EXECUTOR_IMAGES: &str =
    "openbao/backup-executor,docker.io/openbao/backup-executor";

/// The allow-list from `EXECUTOR_IMAGES` (comma-separated).
pub fn executor_images(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}
