//! Command-line interface. Every flag has an environment variable, so the
//! operator configures Jobs through `env` and people use flags by hand.
//! `into_config` turns parsed flags into validated configuration; it does no
//! I/O, so every rule is unit-tested below.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use contract::executor::paths::JWT_FILE;
use contract::executor::upload::{
    DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, MAX_CONCURRENCY, MAX_PART_SIZE, MIN_PART_SIZE,
};
use contract::executor::{command, env, flag};
use contract::layout::{MANIFEST_SUFFIX, cluster_prefix};
use contract::plugin_spec::PluginSpec;
use contract::result::BackupKind;
use contract::units::{parse_duration, parse_size};
use executor::backup::{BackupConfig, KeepLast, RetentionSetting};
use executor::openbao::{Auth, OpenBaoConfig};
use executor::restore::{BackupRef, ReadBack, RestoreTarget, Source};
use executor::s3::TargetConfig;
use operator::RunSettings;
use operator::settings::{DEFAULT_EXECUTOR_IMAGES, OperatorSettings, executor_images};
use plugin_host::retention;

#[derive(Debug, Parser)]
#[command(
    name = "openbao-backup",
    version,
    about = "Backups of OpenBao Raft snapshots to S3-compatible storage"
)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` for log pipelines.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take a Raft snapshot from the active OpenBao node and stream it into S3.
    ///
    /// Prints one JSON result on stdout (and to --result-file); exits non-zero
    /// with a one-line reason on stderr when the backup fails, leaving nothing
    /// behind in the bucket.
    #[command(name = command::BACKUP)]
    Backup(Box<BackupArgs>),
    /// List a cluster's backups, newest first: time, kind, size, SHA-256
    /// and the transforms applied.
    List(Box<ListArgs>),
    /// Restore a backup into the cluster's active OpenBao node.
    ///
    /// Reads the manifest, undoes the recorded transforms with the plugins
    /// given, checks every digest while streaming, and sends the snapshot's
    /// last bytes only once all checks passed: OpenBao never installs a
    /// snapshot that failed one. Prints one JSON result.
    #[command(name = command::RESTORE)]
    Restore(Box<RestoreArgs>),
    /// Download a backup and check it end to end (object and snapshot
    /// digests, transforms undone, archive) without restoring it.
    Verify(Box<ReadArgs>),
    /// Write a backup's raw snapshot (what `bao operator raft snapshot
    /// restore` takes), from the bucket or a downloaded file, checked as
    /// `verify` does. The output file appears only when every check passed.
    Decode(Box<DecodeArgs>),
    /// Run the operator: reconcile OpenBaoClusters' spec.backup into
    /// CronJobs and their results into status.backup.
    Operator(OperatorArgs),
    /// Inspect or run a WebAssembly plugin, for plugin authors.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print the OpenBaoCluster CustomResourceDefinition (YAML), for
    /// `kubectl apply -f -`.
    Crd,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Print what a plugin says about itself, and its digest (JSON).
    Inspect {
        /// The plugin component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        load: PluginLoadArgs,
    },
    /// Run a transform over stdin to stdout, or a retention plugin over a
    /// JSON list of backups on stdin (`[{"key", "time" (RFC 3339), "size",
    /// "kind", "metadata"}]`), printing the deletions it decides.
    Run {
        /// The plugin component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        load: PluginLoadArgs,
        /// The plugin's configuration (JSON).
        #[arg(long, default_value = "")]
        config: String,
        /// Undo the transform (restore direction) instead of applying it.
        #[arg(long)]
        decode: bool,
        /// Bytes per push into a transform.
        #[arg(long, default_value = "1MiB", value_parser = parse_size)]
        chunk_size: u64,
        /// "Now" for a retention plugin (RFC 3339); the current time by default.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
}

/// How a plugin is loaded and sandboxed.
#[derive(Debug, Args)]
pub struct PluginLoadArgs {
    /// Refuse the plugin unless its bytes have this SHA-256 (hex).
    #[arg(long)]
    pub sha256: Option<String>,
    #[command(flatten)]
    pub limits: PluginLimitArgs,
}

/// The sandbox's limits, for every plugin of the command.
#[derive(Debug, Args)]
pub struct PluginLimitArgs {
    /// Memory a plugin instance may use.
    #[arg(long = "plugin-memory-limit", env = env::PLUGIN_MEMORY_LIMIT, default_value = "256MiB", value_parser = parse_size)]
    pub memory: u64,
    /// Wall time of one call into a plugin.
    #[arg(long = "plugin-call-timeout", env = env::PLUGIN_CALL_TIMEOUT, default_value = "10s", value_parser = parse_duration)]
    pub call_timeout: Duration,
    /// Bytes one call into a plugin may return.
    #[arg(long = "plugin-max-output", env = env::PLUGIN_MAX_OUTPUT, default_value = "64MiB", value_parser = parse_size)]
    pub max_output: u64,
}

impl PluginLimitArgs {
    pub fn limits(&self) -> plugin_host::Limits {
        plugin_host::Limits {
            memory_bytes: self.memory as usize,
            call_timeout: self.call_timeout,
            max_output_bytes: self.max_output as usize,
        }
    }
}

#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Audience of the backup pods' projected ServiceAccount tokens; the
    /// OpenBao JWT role must bind the same audience.
    #[arg(long, env = env::OPENBAO_JWT_AUDIENCE, default_value = "openbao-internal")]
    pub jwt_audience: String,

    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,

    /// Elect a leader through a Lease so that several replicas can run.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Namespace of the Lease (the operator's own; the Downward API gives it).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    #[arg(long, env = "LEASE_NAME", default_value = "openbao-backup-operator")]
    pub lease_name: String,

    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// The images backup and restore Jobs may run (comma-separated): a
    /// cluster's author picks the image, and it runs with the Secrets the
    /// spec names.
    #[arg(long, env = "EXECUTOR_IMAGES", default_value = DEFAULT_EXECUTOR_IMAGES)]
    pub executor_images: String,
}

impl OperatorArgs {
    pub fn into_settings(self) -> RunSettings {
        RunSettings {
            metrics_addr: self.metrics_addr,
            leader_election: self.leader_election,
            lease_namespace: self.lease_namespace,
            lease_name: self.lease_name,
            pod_name: self.pod_name,
            operator: OperatorSettings {
                jwt_audience: self.jwt_audience,
                executor_images: executor_images(&self.executor_images),
            },
        }
    }
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub openbao: OpenBaoArgs,

    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// Why this backup runs; recorded in the key, metadata and manifest.
    #[arg(long, env = env::BACKUP_KIND, value_enum, default_value_t = BackupKind::Manual)]
    pub kind: BackupKind,

    /// Also write the JSON result here (the operator uses /dev/termination-log).
    #[arg(long, env = env::RESULT_FILE)]
    pub result_file: Option<PathBuf>,

    /// How often to log progress while streaming.
    #[arg(long, env = env::BACKUP_PROGRESS_INTERVAL, default_value = "5s", value_parser = parse_duration)]
    pub progress_interval: Duration,

    /// A transform plugin (compression, encryption) applied to the
    /// snapshot; repeat it to chain them, in order. A .wasm file, or
    /// {"file", "sha256", "config", "secretFiles"} as JSON (docs/plugins.md).
    #[arg(long = flag::TRANSFORM, value_name = "PLUGIN")]
    pub transforms: Vec<PluginSpec>,

    #[command(flatten)]
    pub retention: RetentionArgs,

    #[command(flatten)]
    pub plugin_limits: PluginLimitArgs,

    /// Abort this cluster's multipart uploads and delete its objects without
    /// a manifest once they are this old: leftovers of backups killed
    /// mid-way (SIGKILL, OOM). Keep it longer than any backup runs (the
    /// operator's backup Jobs stop after 6 hours).
    #[arg(long, env = env::BACKUP_SWEEP_AFTER, default_value = "12h", value_parser = parse_duration)]
    pub sweep_after: Duration,

    /// Sign the manifest (HMAC-SHA256) with the secret key in this file (at
    /// least 32 bytes), so `restore`, `verify` and `decode` given the same
    /// key refuse a manifest planted or altered in the bucket.
    #[arg(long, env = env::MANIFEST_KEY_FILE)]
    pub manifest_key_file: Option<PathBuf>,
}

/// What to delete after a successful backup: the built-in policy, or a
/// retention plugin. Nothing is deleted when none is given.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Keep only the newest N backups of the cluster (pre-upgrade
    /// snapshots are not counted). 0 means no limit, as `maxCount: 0` in
    /// the OpenBaoCluster does.
    #[arg(long, env = env::RETENTION_MAX_COUNT)]
    pub max_count: Option<u32>,

    /// Delete backups older than this (Go syntax: 168h, 1h30m); at least 1h.
    #[arg(long, env = env::RETENTION_MAX_AGE)]
    pub max_age: Option<String>,

    /// A backup no policy may delete, built-in or plugin (the operator
    /// protects the pre-upgrade backup until the next successful upgrade);
    /// repeat it, or comma-separate the keys in the environment variable.
    #[arg(
        long = "keep-key",
        env = env::RETENTION_KEEP_KEYS,
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub keep_keys: Vec<String>,

    /// A retention plugin that decides instead: a .wasm file, or
    /// {"file", "sha256", "config", "secretFiles"} as JSON.
    #[arg(long = flag::RETENTION_PLUGIN, env = env::RETENTION_PLUGIN, value_name = "PLUGIN")]
    pub retention_plugin: Option<PluginSpec>,
}

impl RetentionArgs {
    fn setting(self) -> Result<Option<RetentionSetting>, String> {
        let max_age = self
            .max_age
            .filter(|text| !text.trim().is_empty())
            .map(|text| {
                let limit = parse_duration(&text)
                    .map_err(|e| format!("--max-age (RETENTION_MAX_AGE): {e}"))?;
                retention::check_max_age(limit)
                    .map_err(|e| format!("--max-age (RETENTION_MAX_AGE) `{text}` {e}"))?;
                Ok::<_, String>((limit, text))
            })
            .transpose()?;
        let keep_keys: Vec<String> = self
            .keep_keys
            .iter()
            .map(|key| key.trim().to_string())
            .filter(|key| !key.is_empty())
            .collect();
        // 0 is no limit, here as in the CRD.
        let max_count = self.max_count.filter(|n| *n > 0);
        let built_in = max_count.is_some() || max_age.is_some();
        match self.retention_plugin {
            Some(_) if built_in => Err(
                "--retention-plugin decides alone: drop --max-count and --max-age, or the plugin"
                    .into(),
            ),
            Some(spec) => Ok(Some(RetentionSetting::plugin(spec, keep_keys))),
            None if built_in => Ok(Some(RetentionSetting::keep_last(
                KeepLast { max_count, max_age },
                keep_keys,
            ))),
            None => Ok(None),
        }
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ListArgs {
    pub fn into_config(self) -> Result<(TargetConfig, String), String> {
        let target = self.target.into_config()?;
        let (namespace, cluster) = self.cluster.names()?;
        let prefix = cluster_prefix(&target.path_prefix, &namespace, &cluster);
        Ok((target, prefix))
    }
}

/// The OpenBaoCluster whose backups these are.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Name of the OpenBaoCluster; part of the object key.
    #[arg(long, env = env::OPENBAO_CLUSTER)]
    pub cluster: String,

    /// Namespace of the OpenBaoCluster; part of the object key.
    #[arg(long, env = env::OPENBAO_NAMESPACE, default_value = "default")]
    pub namespace: String,
}

impl ClusterArgs {
    /// (namespace, cluster), each checked to be a usable name.
    pub fn names(self) -> Result<(String, String), String> {
        let cluster = non_empty_name(self.cluster, "--cluster (OPENBAO_CLUSTER)")?;
        let namespace = non_empty_name(self.namespace, "--namespace (OPENBAO_NAMESPACE)")?;
        Ok((namespace, cluster))
    }
}

/// Which backup to read and how to undo its transforms.
#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Name of the OpenBaoCluster whose backups to read (for `latest`).
    #[arg(long, env = env::OPENBAO_CLUSTER)]
    pub cluster: Option<String>,

    /// Namespace of the OpenBaoCluster.
    #[arg(long, env = env::OPENBAO_NAMESPACE, default_value = "default")]
    pub namespace: String,

    /// The backup: its object key, `s3://BUCKET/KEY`, or `latest` (the
    /// cluster's newest).
    #[arg(long, env = env::BACKUP_KEY, default_value = "latest")]
    pub key: BackupRef,

    #[command(flatten)]
    pub plugins: DecodePluginArgs,

    /// Also write the JSON result here (a restore Job uses
    /// /dev/termination-log).
    #[arg(long, env = env::RESULT_FILE)]
    pub result_file: Option<PathBuf>,

    /// The key the backups' manifests are signed with (`backup
    /// --manifest-key-file`): a manifest without its signature, or not
    /// matching it, is refused before anything else is read.
    #[arg(long, env = env::MANIFEST_KEY_FILE)]
    pub manifest_key_file: Option<PathBuf>,
}

/// The plugins that undo a backup's transforms.
#[derive(Debug, Args)]
pub struct DecodePluginArgs {
    /// A plugin the backup's transforms need (matched to the manifest by
    /// digest; repeat for each): a .wasm file, or {"file", "config",
    /// "secretFiles"} as JSON, e.g. the age identity in secretFiles.
    #[arg(long = flag::PLUGIN, value_name = "PLUGIN")]
    pub plugins: Vec<PluginSpec>,

    #[command(flatten)]
    pub limits: PluginLimitArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub openbao: OpenBaoArgs,

    #[command(flatten)]
    pub read: ReadArgs,

    /// Use sys/storage/raft/snapshot-force: for a snapshot taken from a
    /// cluster with other unseal keys (a new cluster after a disaster).
    #[arg(long, env = env::RESTORE_FORCE)]
    pub force: bool,

    /// Restore a backup whose manifest names another cluster or namespace
    /// than --cluster and --namespace, or whose key is outside their prefix
    /// (a new cluster replacing a lost one). Refused without it.
    #[arg(long, env = env::RESTORE_ALLOW_OTHER_CLUSTER)]
    pub allow_other_cluster: bool,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub read: ReadArgs,

    /// Read this downloaded object instead of the bucket.
    #[arg(long, conflicts_with = "bucket")]
    pub file: Option<PathBuf>,

    /// The object's manifest (default: FILE.manifest.json).
    #[arg(long, requires = "file")]
    pub manifest: Option<PathBuf>,

    /// Where to write the snapshot; `-` for stdout.
    #[arg(long, short)]
    pub output: PathBuf,
}

impl ReadArgs {
    pub fn into_config(mut self) -> Result<ReadBack, String> {
        // An S3 URL names the bucket too.
        if let BackupRef::Key(key) = &self.key
            && let Some(url) = key.strip_prefix("s3://")
        {
            let (bucket, key) = url
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .ok_or_else(|| format!("--key {key}: expected s3://BUCKET/KEY"))?;
            self.target.bucket = Some(bucket.into());
            self.key = BackupRef::Key(key.into());
        }
        let target = self.target.into_config()?;
        let cluster_prefix = match (&self.key, self.cluster) {
            (BackupRef::Latest, None) => {
                return Err(
                    "--key latest needs --cluster (OPENBAO_CLUSTER): whose newest backup?".into(),
                );
            }
            (_, cluster) => cluster_prefix(
                &target.path_prefix,
                &non_empty_name(self.namespace, "--namespace (OPENBAO_NAMESPACE)")?,
                &cluster.map_or(Ok(String::new()), |c| {
                    non_empty_name(c, "--cluster (OPENBAO_CLUSTER)")
                })?,
            ),
        };
        Ok(ReadBack {
            source: Source::Bucket {
                target,
                cluster_prefix,
                backup: self.key,
            },
            plugins: self.plugins.plugins,
            plugin_limits: self.plugins.limits.limits(),
            manifest_key_file: self.manifest_key_file,
        })
    }
}

impl DecodeArgs {
    pub fn into_config(self) -> Result<(ReadBack, PathBuf), String> {
        let read = match self.file {
            Some(object) => ReadBack {
                source: Source::File {
                    manifest: self
                        .manifest
                        .unwrap_or_else(|| format!("{}{MANIFEST_SUFFIX}", object.display()).into()),
                    object,
                },
                plugins: self.read.plugins.plugins,
                plugin_limits: self.read.plugins.limits.limits(),
                manifest_key_file: self.read.manifest_key_file,
            },
            None => self.read.into_config()?,
        };
        Ok((read, self.output))
    }
}

impl RestoreArgs {
    pub fn into_config(self) -> Result<(ReadBack, RestoreTarget), String> {
        // The backup's manifest is checked against the cluster restored into.
        let cluster = self.read.cluster.clone().ok_or(
            "restore needs --cluster (OPENBAO_CLUSTER): the OpenBaoCluster restored into, checked against the backup's manifest",
        )?;
        let target = RestoreTarget {
            openbao: self.openbao.config()?,
            auth: self.openbao.auth()?,
            force: self.force,
            namespace: self.read.namespace.clone(),
            cluster,
            allow_other_cluster: self.allow_other_cluster,
        };
        Ok((self.read.into_config()?, target))
    }
}

#[derive(Debug, Args)]
pub struct OpenBaoArgs {
    /// OpenBao node addresses, comma-separated; the active node is found
    /// through sys/health and only it is ever snapshotted.
    #[arg(long, env = env::OPENBAO_ADDR, value_delimiter = ',', required = true)]
    pub openbao_addr: Vec<String>,

    /// PEM file with the CA that signed OpenBao's TLS certificate.
    #[arg(long, env = env::OPENBAO_CACERT)]
    pub openbao_cacert: Option<PathBuf>,

    /// JWT auth role to log in with (exclusive with --token-file).
    #[arg(long, env = env::OPENBAO_JWT_ROLE)]
    pub jwt_role: Option<String>,

    /// The JWT to log in with: the projected ServiceAccount token.
    #[arg(long, env = env::OPENBAO_JWT_FILE, default_value = JWT_FILE)]
    pub jwt_file: PathBuf,

    /// Mount path of OpenBao's JWT auth method.
    #[arg(long, env = env::OPENBAO_JWT_MOUNT, default_value = "jwt")]
    pub jwt_mount: String,

    /// Audience the projected token was issued for. Kubernetes sets it on the
    /// token; it is only logged here, to help diagnose a refused login.
    #[arg(long, env = env::OPENBAO_JWT_AUDIENCE, default_value = "openbao-internal")]
    pub jwt_audience: String,

    /// File holding a static OpenBao token (exclusive with --jwt-role).
    #[arg(long, env = env::OPENBAO_TOKEN_FILE)]
    pub token_file: Option<PathBuf>,

    /// Timeout for each OpenBao request other than the snapshot stream.
    #[arg(long, env = env::OPENBAO_REQUEST_TIMEOUT, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Fail when the snapshot stream delivers no byte for this long.
    #[arg(long, env = env::OPENBAO_STALL_TIMEOUT, default_value = "60s", value_parser = parse_duration)]
    pub stall_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// S3 endpoint URL; omit for AWS. A custom endpoint implies path-style
    /// addressing unless --virtual-hosted-style is given.
    #[arg(long, env = env::S3_ENDPOINT)]
    pub endpoint: Option<String>,

    /// Bucket that holds the backups.
    #[arg(long, env = env::S3_BUCKET)]
    pub bucket: Option<String>,

    /// S3 region (SigV4 signs with it; Garage's default is `garage`).
    #[arg(long, env = env::S3_REGION, default_value = "us-east-1")]
    pub region: String,

    /// Key prefix for this cluster's backups.
    #[arg(long, env = env::S3_PATH_PREFIX, default_value = "")]
    pub path_prefix: String,

    /// Multipart part size (bytes, or with a unit: 20MiB), 5 MiB to 5 GiB.
    /// After 5,000 parts the parts grow, so any object up to 5 TiB fits.
    #[arg(long, env = env::S3_PART_SIZE, default_value_t = DEFAULT_PART_SIZE, value_parser = parse_size)]
    pub part_size: u64,

    /// Parts uploaded at once. Memory is about (concurrency + 1) x part size.
    #[arg(long, env = env::S3_CONCURRENCY, default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_CONCURRENCY)))]
    pub concurrency: u16,

    /// Directory holding `accessKeyId`, `secretAccessKey` and optionally
    /// `sessionToken` and `caCert` (a CA bundle for the endpoint) files: the
    /// mounted credentials Secret. Without it the standard AWS sources apply
    /// (AWS_ACCESS_KEY_ID..., web identity, ...).
    #[arg(long, env = env::S3_CREDENTIALS_DIR)]
    pub credentials_dir: Option<PathBuf>,

    /// PEM bundle of CAs to trust for the S3 endpoint.
    #[arg(long, env = env::AWS_CA_BUNDLE)]
    pub ca_bundle: Option<PathBuf>,

    /// Use virtual-hosted-style addressing (bucket in the host name) with a
    /// custom --endpoint.
    #[arg(long, env = env::S3_VIRTUAL_HOSTED_STYLE)]
    pub virtual_hosted_style: bool,

    /// Attempts per S3 request; transient errors are retried with backoff.
    #[arg(long, env = env::S3_MAX_ATTEMPTS, default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,
}

impl BackupArgs {
    pub fn into_config(self) -> Result<BackupConfig, String> {
        let openbao = self.openbao.config()?;
        let auth = self.openbao.auth()?;
        let target = self.target.into_config()?;
        let (namespace, cluster) = self.cluster.names()?;
        Ok(BackupConfig {
            openbao,
            auth,
            target,
            cluster,
            namespace,
            // A Job made by hand from the CronJob's template says so.
            kind: contract::executor::cronjob::backup_kind(
                self.kind,
                std::env::var(env::BACKUP_CRONJOB).ok().as_deref(),
                std::env::var(env::BACKUP_JOB_NAME).ok().as_deref(),
            ),
            result_file: self.result_file,
            progress_interval: self.progress_interval,
            transforms: self.transforms,
            retention: self.retention.setting()?,
            plugin_limits: self.plugin_limits.limits(),
            sweep_after: self.sweep_after,
            manifest_key_file: self.manifest_key_file,
        })
    }
}

impl OpenBaoArgs {
    fn config(&self) -> Result<OpenBaoConfig, String> {
        let mut addrs = Vec::new();
        for addr in self
            .openbao_addr
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
        {
            let url = reqwest::Url::parse(addr)
                .map_err(|e| format!("--openbao-addr (OPENBAO_ADDR): `{addr}` is not a URL ({e}); use e.g. https://openbao-0.openbao-internal:8200"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!(
                    "--openbao-addr (OPENBAO_ADDR): `{addr}` must start with http:// or https://"
                ));
            }
            addrs.push(url);
        }
        if addrs.is_empty() {
            return Err(
                "--openbao-addr (OPENBAO_ADDR) is empty: give at least one node address".into(),
            );
        }
        Ok(OpenBaoConfig {
            addrs,
            ca_cert: self.openbao_cacert.clone(),
            request_timeout: self.request_timeout,
            stall_timeout: self.stall_timeout,
        })
    }

    fn auth(&self) -> Result<Auth, String> {
        match (&self.jwt_role, &self.token_file) {
            (Some(_), Some(_)) => Err("both --jwt-role (OPENBAO_JWT_ROLE) and --token-file (OPENBAO_TOKEN_FILE) are set: choose one way to log in to OpenBao".into()),
            (None, None) => Err("no OpenBao login configured: set --jwt-role (OPENBAO_JWT_ROLE) for JWT auth or --token-file (OPENBAO_TOKEN_FILE) for a static token".into()),
            (Some(role), None) => {
                if role.trim().is_empty() {
                    return Err("--jwt-role (OPENBAO_JWT_ROLE) is empty: give the JWT auth role name".into());
                }
                Ok(Auth::Jwt {
                    mount: self.jwt_mount.trim_matches('/').to_string(),
                    role: role.clone(),
                    jwt_file: self.jwt_file.clone(),
                    audience: self.jwt_audience.clone(),
                })
            }
            (None, Some(file)) => Ok(Auth::Token { file: file.clone() }),
        }
    }
}

impl TargetArgs {
    fn into_config(self) -> Result<TargetConfig, String> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(format!(
                "--part-size (S3_PART_SIZE) is {} bytes; S3 needs parts from 5 MiB ({MIN_PART_SIZE}) to 5 GiB ({MAX_PART_SIZE})",
                self.part_size
            ));
        }
        let bucket = self
            .bucket
            .filter(|b| !b.trim().is_empty())
            .ok_or("--bucket (S3_BUCKET) is required")?;
        let endpoint = match self.endpoint.filter(|e| !e.trim().is_empty()) {
            Some(e) => Some(
                reqwest::Url::parse(&e)
                    .map_err(|err| format!("--endpoint (S3_ENDPOINT): `{e}` is not a URL ({err}); use e.g. https://s3.example.com"))?
                    .to_string()
                    .trim_end_matches('/')
                    .to_string(),
            ),
            None => None,
        };
        Ok(TargetConfig {
            force_path_style: endpoint.is_some() && !self.virtual_hosted_style,
            endpoint,
            bucket,
            region: self.region,
            path_prefix: self.path_prefix.trim_matches('/').to_string(),
            part_size: self.part_size,
            concurrency: usize::from(self.concurrency),
            credentials_dir: self.credentials_dir,
            ca_bundle: self.ca_bundle,
            max_attempts: self.max_attempts,
        })
    }
}

/// Cluster and namespace names become key segments: refuse what would break
/// the key layout.
fn non_empty_name(name: String, flag: &str) -> Result<String, String> {
    if name.is_empty() || name.contains('/') {
        return Err(format!(
            "{flag} `{name}` must be a non-empty name without `/`"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<BackupConfig, String> {
        let mut argv = vec![
            "openbao-backup",
            "backup",
            "--openbao-addr",
            "http://a:8200,http://b:8200",
            "--bucket",
            "b",
            "--cluster",
            "c",
        ];
        argv.extend_from_slice(extra);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Backup(args) = cli.command else {
            panic!("backup expected")
        };
        args.into_config()
    }

    #[test]
    fn token_auth_with_defaults() {
        let c = parse(&["--token-file", "/t"]).unwrap();
        assert_eq!(c.openbao.addrs.len(), 2);
        assert_eq!(c.target.part_size, 10 * 1024 * 1024);
        assert_eq!(c.target.concurrency, 3);
        assert!(
            !c.target.force_path_style,
            "AWS (no endpoint) uses virtual-hosted style"
        );
        assert!(matches!(c.auth, Auth::Token { .. }));
        assert_eq!(c.kind, BackupKind::Manual);
        assert_eq!(c.sweep_after, Duration::from_secs(12 * 3600));
    }

    #[test]
    fn jwt_auth_uses_mount_and_default_file() {
        let c = parse(&["--jwt-role", "backup", "--jwt-mount", "/k8s/"]).unwrap();
        match c.auth {
            Auth::Jwt {
                mount,
                role,
                jwt_file,
                ..
            } => {
                assert_eq!((mount.as_str(), role.as_str()), ("k8s", "backup"));
                assert_eq!(jwt_file, PathBuf::from(JWT_FILE));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exactly_one_auth_method() {
        let both = parse(&["--jwt-role", "r", "--token-file", "/t"]).unwrap_err();
        assert!(
            both.contains("both --jwt-role") && both.contains("choose one"),
            "{both}"
        );
        let neither = parse(&[]).unwrap_err();
        assert!(
            neither.contains("--jwt-role") && neither.contains("--token-file"),
            "{neither}"
        );
    }

    #[test]
    fn part_size_bounds_name_the_flag() {
        let small = parse(&["--token-file", "/t", "--part-size", "4MiB"]).unwrap_err();
        assert!(
            small.contains("--part-size") && small.contains("5 MiB"),
            "{small}"
        );
        assert_eq!(
            parse(&["--token-file", "/t", "--part-size", "5MiB"])
                .unwrap()
                .target
                .part_size,
            MIN_PART_SIZE
        );
    }

    #[test]
    fn concurrency_range_is_checked_by_the_parser() {
        let err = parse(&["--token-file", "/t", "--concurrency", "0"]).unwrap_err();
        assert!(err.contains("--concurrency"), "{err}");
    }

    #[test]
    fn custom_endpoint_means_path_style() {
        let c = parse(&[
            "--token-file",
            "/t",
            "--endpoint",
            "http://127.0.0.1:3900/",
            "--path-prefix",
            "/x/y/",
        ])
        .unwrap();
        assert!(c.target.force_path_style);
        assert_eq!(c.target.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(c.target.path_prefix, "x/y");
        let vh = parse(&[
            "--token-file",
            "/t",
            "--endpoint",
            "https://s3.example.com",
            "--virtual-hosted-style",
        ])
        .unwrap();
        assert!(!vh.target.force_path_style);
    }

    #[test]
    fn bad_addresses_are_named() {
        let cli = Cli::try_parse_from([
            "openbao-backup",
            "backup",
            "--openbao-addr",
            "openbao:8200",
            "--bucket",
            "b",
            "--cluster",
            "c",
            "--token-file",
            "/t",
        ])
        .unwrap();
        let Command::Backup(args) = cli.command else {
            panic!("backup expected")
        };
        let err = args.into_config().unwrap_err();
        assert!(
            err.contains("--openbao-addr") && err.contains("openbao:8200"),
            "{err}"
        );
    }

    #[test]
    fn cluster_name_cannot_escape_the_key_layout() {
        let err = parse(&["--token-file", "/t", "--namespace", "a/b"]).unwrap_err();
        assert!(err.contains("--namespace"), "{err}");
    }

    #[test]
    fn retention_flags() {
        let none = parse(&["--token-file", "/t"]).unwrap();
        assert_eq!(none.retention, None, "nothing is deleted unless asked");
        let built_in = parse(&[
            "--token-file",
            "/t",
            "--max-count",
            "7",
            "--max-age",
            "1h30m",
        ])
        .unwrap();
        assert_eq!(
            built_in.retention,
            Some(RetentionSetting::keep_last(
                KeepLast {
                    max_count: Some(7),
                    max_age: Some((Duration::from_secs(5400), "1h30m".into())),
                },
                Vec::new()
            ))
        );
        // Below 1h a clock a little ahead would delete every older backup.
        let err = parse(&["--token-file", "/t", "--max-age", "30m"]).unwrap_err();
        assert!(
            err.contains("--max-age (RETENTION_MAX_AGE) `30m` is below the minimum 1h"),
            "{err}"
        );
        // 0 is no limit, as `maxCount: 0` in the CRD: nothing is deleted.
        let zero = parse(&["--token-file", "/t", "--max-count", "0"]).unwrap();
        assert_eq!(zero.retention, None);
        let err = parse(&["--token-file", "/t", "--max-age", "7d"]).unwrap_err();
        assert!(err.contains("--max-age (RETENTION_MAX_AGE)"), "{err}");
        let err = parse(&[
            "--token-file",
            "/t",
            "--max-count",
            "3",
            "--retention-plugin",
            "/p.wasm",
        ])
        .unwrap_err();
        assert!(err.contains("--retention-plugin decides alone"), "{err}");
    }

    #[test]
    fn keep_keys_reach_the_built_in_policy_and_plugins() {
        let flags = parse(&[
            "--token-file",
            "/t",
            "--max-age",
            "168h",
            "--keep-key",
            "a/pre-upgrade.snap",
            "--keep-key",
            "b.snap",
        ])
        .unwrap();
        let keep = vec!["a/pre-upgrade.snap".to_string(), "b.snap".to_string()];
        assert_eq!(
            flags.retention,
            Some(RetentionSetting::keep_last(
                KeepLast {
                    max_count: None,
                    max_age: Some((Duration::from_secs(168 * 3600), "168h".into())),
                },
                keep.clone()
            ))
        );
        // Comma-separated, as the operator sets RETENTION_KEEP_KEYS (clap
        // splits the variable as it splits the flag).
        let plugin = parse(&[
            "--token-file",
            "/t",
            "--retention-plugin",
            "/gfs.wasm",
            "--keep-key",
            "a/pre-upgrade.snap, b.snap",
        ])
        .unwrap();
        assert_eq!(
            plugin.retention,
            Some(RetentionSetting::plugin("/gfs.wasm".parse().unwrap(), keep))
        );
    }

    #[test]
    fn a_backup_is_a_key_an_s3_url_or_the_latest() {
        let read = |args: &[&str]| {
            let mut argv = vec!["openbao-backup", "verify"];
            argv.extend_from_slice(args);
            match Cli::try_parse_from(argv)
                .map_err(|e| e.to_string())?
                .command
            {
                Command::Verify(args) => args.into_config(),
                _ => unreachable!(),
            }
        };
        let url = read(&["--key", "s3://vault-backups/prod/bao/x.snap"]).unwrap();
        match url.source {
            Source::Bucket { target, backup, .. } => {
                assert_eq!(target.bucket, "vault-backups");
                assert_eq!(backup, BackupRef::Key("prod/bao/x.snap".into()));
            }
            other => panic!("{other:?}"),
        }
        let err = read(&["--bucket", "b"]).unwrap_err();
        assert!(err.contains("--key latest needs --cluster"), "{err}");
        let err = read(&["--key", "some/key"]).unwrap_err();
        assert!(err.contains("--bucket (S3_BUCKET) is required"), "{err}");
        let err = read(&["--key", "s3://bucket-only"]).unwrap_err();
        assert!(err.contains("s3://BUCKET/KEY"), "{err}");
    }

    #[test]
    fn a_restore_names_the_cluster_it_restores_into() {
        let restore = |args: &[&str]| {
            let mut argv = vec![
                "openbao-backup",
                "restore",
                "--openbao-addr",
                "http://a:8200",
                "--token-file",
                "/t",
                "--bucket",
                "b",
                "--key",
                "p/prod/bao/x.snap",
            ];
            argv.extend_from_slice(args);
            match Cli::try_parse_from(argv)
                .map_err(|e| e.to_string())?
                .command
            {
                Command::Restore(args) => args.into_config(),
                _ => unreachable!(),
            }
        };
        let err = restore(&[]).unwrap_err();
        assert!(
            err.contains("restore needs --cluster (OPENBAO_CLUSTER)"),
            "{err}"
        );
        let (_, target) = restore(&["--cluster", "bao", "--namespace", "prod"]).unwrap();
        assert_eq!(
            (target.namespace.as_str(), target.cluster.as_str()),
            ("prod", "bao")
        );
        assert!(!target.allow_other_cluster);
        let (_, target) = restore(&["--cluster", "new", "--allow-other-cluster"]).unwrap();
        assert!(target.allow_other_cluster);
    }

    #[test]
    fn transforms_keep_their_order() {
        let config = parse(&[
            "--token-file",
            "/t",
            "--transform",
            "zstd.wasm",
            "--transform",
            r#"{"file": "age.wasm", "config": {"recipients": ["age1x"]}}"#,
        ])
        .unwrap();
        let files: Vec<_> = config.transforms.iter().map(|t| t.file.clone()).collect();
        assert_eq!(
            files,
            [PathBuf::from("zstd.wasm"), PathBuf::from("age.wasm")]
        );
        assert_eq!(config.transforms[1].config["recipients"][0], "age1x");
        let err = parse(&["--token-file", "/t", "--transform", r#"{"file": 3}"#]).unwrap_err();
        assert!(err.contains("--transform"), "{err}");
    }
}
