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
    /// The cluster's service network (`SERVICE_CIDRS`), which 1.20's API
    /// does not tell: a `Hardened` storage endpoint may not point into it.
    pub service_cidrs: Vec<Cidr>,
    /// The ports OpenBao pods reach the Kubernetes API server on, for
    /// service registration (`KUBERNETES_API_PORTS`, default 443 and 6443:
    /// the `kubernetes` Service's port and the API server's own, which
    /// most network plugins see after the Service's translation).
    pub kubernetes_api_ports: Vec<u16>,
    /// The executor image of a spec that names none
    /// (`DEFAULT_EXECUTOR_IMAGE`; the chart passes its own image).
    pub default_executor_image: String,
}

/// `KUBERNETES_API_PORTS` when unset.
pub const DEFAULT_KUBERNETES_API_PORTS: &str = "443,6443";

use contract::network::Cidr;

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

impl Default for OperatorSettings {
    /// The settings of an operator given no flag or variable (the service
    /// network is then unknown).
    fn default() -> Self {
        Self {
            jwt_audience: "openbao-internal".into(),
            executor_images: executor_images(DEFAULT_EXECUTOR_IMAGES),
            service_cidrs: Vec::new(),
            kubernetes_api_ports: ports(DEFAULT_KUBERNETES_API_PORTS)
                .expect("the default ports parse"),
            default_executor_image: DEFAULT_EXECUTOR_IMAGE.into(),
        }
    }
}

/// Ports from a comma-separated list (`KUBERNETES_API_PORTS`).
pub fn ports(list: &str) -> Result<Vec<u16>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| format!("`{entry}` is not a port (1 to 65535)"))
        })
        .collect()
}

/// The allow-list from `EXECUTOR_IMAGES` (comma-separated).
pub fn executor_images(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_string)
        .collect()
}
