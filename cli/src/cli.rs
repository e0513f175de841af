//! Command-line interface. Every flag has an environment variable, so the
//! operator configures Jobs through `env` and people use flags by hand.
//! `into_config` turns parsed flags into validated configuration; it does no
//! I/O, so every rule is unit-tested below.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use contract::executor::copies::{CopyTarget, MAX_COPIES};
use contract::executor::paths::JWT_FILE;
use contract::executor::upload::{
    DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, MAX_CONCURRENCY, MAX_PART_SIZE, MIN_PART_SIZE,
};
use contract::executor::{command, env, flag};
use contract::layout::{MANIFEST_SUFFIX, cluster_prefix};
use contract::network::profile;
use contract::plugin_spec::PluginSpec;
use contract::result::BackupKind;
use contract::secret::Secret;
use contract::units::{parse_duration, parse_size};
use executor::backup::{BackupConfig, CopyConfig, KeepLast, RetentionSetting};
use executor::drill::{Canary, Drill};
use executor::openbao::{Auth, OpenBaoConfig};
use executor::restore::{BackupRef, ReadBack, RestoreTarget, Source};
use executor::s3::TargetConfig;
use executor::storage::target::{Backend, FieldNames, StorageFields, endpoint_url};
use operator::RunSettings;
use operator::settings::{
    DEFAULT_EXECUTOR_IMAGE, DEFAULT_EXECUTOR_IMAGES, DEFAULT_KUBERNETES_API_PORTS,
    OperatorSettings, executor_images,
};
use plugin_host::retention;

/// The headings `--help` groups flags under.
mod heading {
    pub const OPENBAO: &str = "OpenBao";
    pub const AUTH: &str = "Authentication";
    pub const STORAGE: &str = "Storage (S3)";
    pub const BACKUP: &str = "Backup";
    pub const RETENTION: &str = "Retention";
    pub const PLUGINS: &str = "Plugins";
    pub const OUTPUT: &str = "Output";
}

#[derive(Debug, Parser)]
#[command(
    name = "openbao-backup",
    version,
    about = "Backups of OpenBao Raft snapshots to S3-compatible storage"
)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` for log pipelines.
    #[arg(long, env = env::LOG_FORMAT, value_enum, default_value_t = LogFormat::Text, global = true, help_heading = heading::OUTPUT)]
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
    #[command(name = command::BACKUP, after_help = BACKUP_EXAMPLES)]
    Backup(Box<BackupArgs>),
    /// List a cluster's backups, newest first: time, kind, size, SHA-256
    /// and the transforms applied.
    #[command(after_help = LIST_EXAMPLES)]
    List(Box<ListArgs>),
    /// Restore a backup into the cluster's active OpenBao node.
    ///
    /// Reads the manifest, undoes the recorded transforms with the plugins
    /// given, checks every digest while streaming, and sends the snapshot's
    /// last bytes only once all checks passed: OpenBao never installs a
    /// snapshot that failed one. Prints one JSON result.
    #[command(name = command::RESTORE, after_help = RESTORE_EXAMPLES)]
    Restore(Box<RestoreArgs>),
    /// Download a backup and check it end to end (object and snapshot
    /// digests, transforms undone, archive) without restoring it.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(Box<ReadArgs>),
    /// Write a backup's raw snapshot (what `bao operator raft snapshot
    /// restore` takes), from the bucket or a downloaded file, checked as
    /// `verify` does. The output file appears only when every check passed.
    #[command(after_help = DECODE_EXAMPLES)]
    Decode(Box<DecodeArgs>),
    /// Rehearse a restore into a throwaway OpenBao (fresh, never
    /// initialised, with the cluster's auto-unseal): verify the whole
    /// backup first, then initialise the throwaway, restore with force,
    /// wait until it is unsealed at the manifest's Raft index, read the
    /// canary back. Prints one JSON result with the failed step or the
    /// measured time to recover. The login flags are the canary's.
    #[command(name = command::DRILL, after_help = DRILL_EXAMPLES)]
    Drill(Box<DrillArgs>),
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

const BACKUP_EXAMPLES: &str = "\
Examples:
  # From a shell set up for `bao` and the AWS CLI
  export BAO_ADDR=https://openbao.example.com:8200 BAO_TOKEN=...
  export AWS_ENDPOINT_URL=https://s3.example.com AWS_REGION=eu-west-1
  openbao-backup backup --cluster bao --namespace prod --bucket openbao-backups

  # Every node listed (only the active one is snapshotted), compressed by the zstd plugin
  openbao-backup backup --openbao-addr https://bao-0:8200,https://bao-1:8200 \\
    --token-file ./token --endpoint-url http://garage:3900 --region garage \\
    --bucket backups --cluster bao --transform zstd.wasm

  # Keep the newest 7 backups and none older than 30 days
  openbao-backup backup --cluster bao --bucket backups --max-count 7 --max-age 30d";

const LIST_EXAMPLES: &str = "\
Examples:
  openbao-backup list --cluster bao --namespace prod --bucket openbao-backups
  openbao-backup list --cluster bao --bucket backups --json \\
    --endpoint-url http://garage:3900 --region garage";

const DRILL_EXAMPLES: &str = "\
Examples:
  # The newest backup into a throwaway OpenBao started with the cluster's seal
  openbao-backup drill --openbao-addr http://127.0.0.1:8300 --cluster bao \\
      --bucket openbao-backups --canary-path secret/data/canary --canary-key value \\
      --token-file canary.token
";

const RESTORE_EXAMPLES: &str = "\
Examples:
  # The cluster's newest backup (the choice is always explicit: --latest or --key)
  openbao-backup restore --cluster bao --namespace prod --bucket openbao-backups --latest

  # One backup, as `openbao-backup list` shows it, compressed and encrypted
  openbao-backup restore --cluster bao --bucket backups --key prod/bao/x.snap \\
    --plugin zstd.wasm --plugin '{\"file\": \"age.wasm\", \"secretFiles\": {\"identity\": \"key.txt\"}}'

  # A new cluster replacing a lost one (other unseal keys, other name)
  openbao-backup restore --cluster bao-new --key s3://backups/prod/bao/x.snap \\
    --force --allow-other-cluster";

const VERIFY_EXAMPLES: &str = "\
Examples:
  # Without --key: the cluster's newest backup (verify only reads)
  openbao-backup verify --cluster bao --namespace prod --bucket openbao-backups
  openbao-backup verify --key s3://backups/prod/bao/x.snap --plugin zstd.wasm";

const DECODE_EXAMPLES: &str = "\
Examples:
  # The raw snapshot `bao operator raft snapshot restore` takes
  openbao-backup decode --key s3://backups/prod/bao/x.snap --plugin zstd.wasm -o bao.snap
  # A downloaded object (its manifest beside it as x.snap.manifest.json)
  openbao-backup decode --file x.snap --plugin zstd.wasm -o - | tar -tzf -";

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the built-in plugins (`builtin:NAME`) with their kinds and
    /// digests (JSON).
    List,
    /// Compile the built-in plugins for this machine into DIR
    /// (`NAME-DIGEST.cwasm`), so that loading them maps the code instead of
    /// compiling it. The image does this at build time into
    /// /usr/share/openbao-backup/plugins, where built-ins are looked for
    /// (OPENBAO_BACKUP_PRECOMPILED_DIR names another directory).
    Precompile {
        /// Where the compiled code goes.
        dir: PathBuf,
    },
    /// Print what a plugin says about itself, and its digest (JSON).
    Inspect {
        /// The plugin component (.wasm), or builtin:NAME.
        file: PathBuf,
        #[command(flatten)]
        load: PluginLoadArgs,
    },
    /// Run a transform over stdin to stdout, or a retention plugin over a
    /// JSON list of backups on stdin (`[{"key", "time" (RFC 3339), "size",
    /// "kind", "metadata"}]`), printing the deletions it decides.
    Run {
        /// The plugin component (.wasm), or builtin:NAME.
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
    /// Write a new plugin crate (Cargo.toml, src/lib.rs with a working
    /// plugin and its tests) into DIR (default ./NAME). `cargo test` tests
    /// it natively; `openbao-backup plugin build` makes the component.
    #[command(after_help = PLUGIN_NEW_EXAMPLES)]
    New {
        /// The plugin's name (its crate's name, and what it reports).
        name: String,
        /// What the plugin does.
        #[arg(long, value_parser = ["retention", "transform"])]
        kind: String,
        /// Where to write the crate (must not exist, or be empty).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Take guest-sdk from this directory instead of the registry.
        #[arg(long)]
        sdk_path: Option<PathBuf>,
    },
    /// Build a plugin crate into a WebAssembly component: `cargo build
    /// --release --target wasm32-unknown-unknown`, then the module into a
    /// component (no wasm-tools needed), which is loaded once to check it.
    /// Prints what `inspect` prints, with the component's path.
    Build {
        /// The crate's directory (or its Cargo.toml); a virtual workspace
        /// builds every member.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Where to write `<crate directory name>.wasm`; default
        /// `<target dir>/plugins`.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Arguments for `cargo build` (after `--`), e.g. `-- --locked`.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

const PLUGIN_NEW_EXAMPLES: &str = "\
Examples:
  openbao-backup plugin new keep-weekly --kind retention
  cd keep-weekly && cargo test && openbao-backup plugin build
  openbao-backup plugin run target/plugins/keep-weekly.wasm --config '{\"keep\": 2}' < backups.json";

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
#[command(next_help_heading = heading::PLUGINS)]
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

    /// The cluster's service network (the API server's
    /// --service-cluster-ip-range), repeated or comma-separated: a
    /// `Hardened` cluster's storage endpoint may not point into it.
    #[arg(long = "service-cidr", env = env::SERVICE_CIDRS, value_delimiter = ',',
          value_parser = |s: &str| s.parse::<contract::network::Cidr>())]
    pub service_cidrs: Vec<contract::network::Cidr>,

    /// Ports on which `Hardened` OpenBao pods may reach the Kubernetes API
    /// server (service registration), repeated or comma-separated.
    #[arg(long = "kubernetes-api-port", env = "KUBERNETES_API_PORTS", value_delimiter = ',',
          default_value = DEFAULT_KUBERNETES_API_PORTS,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub kubernetes_api_ports: Vec<u16>,

    /// The executor image of a spec that names none
    /// (`spec.backup.executorImage`); it must be allowed by
    /// --executor-images.
    #[arg(long, env = "DEFAULT_EXECUTOR_IMAGE", default_value = DEFAULT_EXECUTOR_IMAGE)]
    pub default_executor_image: String,

    /// Watch only this namespace (the chart's namespace-scoped install,
    /// with a Role there instead of a ClusterRole); unset: all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
}

impl OperatorArgs {
    pub fn into_settings(self) -> RunSettings {
        RunSettings {
            metrics_addr: self.metrics_addr,
            leader_election: self.leader_election,
            lease_namespace: self.lease_namespace,
            lease_name: self.lease_name,
            pod_name: self.pod_name,
            watch_namespace: self.watch_namespace.filter(|ns| !ns.trim().is_empty()),
            operator: OperatorSettings {
                jwt_audience: self.jwt_audience,
                executor_images: executor_images(&self.executor_images),
                service_cidrs: self.service_cidrs,
                kubernetes_api_ports: self.kubernetes_api_ports,
                default_executor_image: self.default_executor_image,
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
    #[arg(long, env = env::BACKUP_KIND, value_enum, default_value_t = BackupKind::Manual, help_heading = heading::BACKUP)]
    pub kind: BackupKind,

    /// The CronJob whose template the Job came from, and the Job's name
    /// (the operator sets both): a Job made by hand from the template is
    /// `manual`, not `scheduled`.
    #[arg(long, env = env::BACKUP_CRONJOB, hide = true)]
    pub cronjob: Option<String>,
    #[arg(long, env = env::BACKUP_JOB_NAME, hide = true)]
    pub job_name: Option<String>,

    /// Also write the JSON result here (the operator uses /dev/termination-log).
    #[arg(long, env = env::RESULT_FILE, help_heading = heading::OUTPUT)]
    pub result_file: Option<PathBuf>,

    /// How often to log progress while streaming.
    #[arg(long, env = env::BACKUP_PROGRESS_INTERVAL, default_value = "5s", value_parser = parse_duration, help_heading = heading::OUTPUT)]
    pub progress_interval: Duration,

    /// A transform plugin (compression, encryption) applied to the
    /// snapshot; repeat it to chain them, in order. A .wasm file, or
    /// {"file", "sha256", "config", "secretFiles"} as JSON (docs/plugins.md).
    #[arg(long = flag::TRANSFORM, value_name = "PLUGIN", help_heading = heading::PLUGINS)]
    pub transforms: Vec<PluginSpec>,

    #[command(flatten)]
    pub retention: RetentionArgs,

    #[command(flatten)]
    pub plugin_limits: PluginLimitArgs,

    /// Abort this cluster's multipart uploads and delete its objects without
    /// a manifest once they are this old: leftovers of backups killed
    /// mid-way (SIGKILL, OOM). Keep it longer than any backup runs (the
    /// operator's backup Jobs stop after 6 hours).
    #[arg(long, env = env::BACKUP_SWEEP_AFTER, default_value = "12h", value_parser = parse_duration, help_heading = heading::STORAGE)]
    pub sweep_after: Duration,

    /// Sign the manifest (HMAC-SHA256) with the secret key in this file (at
    /// least 32 bytes), so `restore`, `verify` and `decode` given the same
    /// key refuse a manifest planted or altered in the bucket.
    #[arg(long, env = env::MANIFEST_KEY_FILE, help_heading = heading::BACKUP)]
    pub manifest_key_file: Option<PathBuf>,

    /// A second copy of the backup, made from the stored backup once it is
    /// complete, read back and checked against the manifest's digests; a
    /// failed copy is reported in the result and never fails the backup.
    /// JSON with one of `bucket` (and `endpoint`, `region`,
    /// `credentialsDir`, `caBundle`, `virtualHostedStyle`, `s3Checksum`),
    /// `directory`, or `azureAccount` and `azureContainer` (and
    /// `azureEndpoint`, `credentialsDir`). Repeat it for more copies (at
    /// most 4); the copies keep the backup's keys (--path-prefix).
    #[arg(long = "copy", value_name = "TARGET", value_parser = parse_copy, help_heading = heading::STORAGE)]
    pub copies: Vec<CopyTarget>,

    /// Copies as a JSON array of what --copy takes (the operator sets it).
    #[arg(long = "copies", env = env::BACKUP_COPIES, value_name = "JSON", help_heading = heading::STORAGE)]
    pub copies_json: Option<String>,
}

fn parse_copy(text: &str) -> Result<CopyTarget, String> {
    serde_json::from_str(text).map_err(|e| format!("a copy is a JSON object such as {{\"bucket\": \"offsite\", \"endpoint\": \"https://s3.example.com\", \"credentialsDir\": \"/copy-credentials\"}}: {e}"))
}

fn parse_copies(text: &str) -> Result<Vec<CopyTarget>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| {
        format!(
            "--copies (BACKUP_COPIES) is not a JSON array of copies, each as --copy takes it: {e}"
        )
    })
}

/// What to delete after a successful backup: the built-in policy, or a
/// retention plugin. Nothing is deleted when none is given.
#[derive(Debug, Args)]
#[command(next_help_heading = heading::RETENTION)]
pub struct RetentionArgs {
    /// Keep only the newest N backups of the cluster (pre-upgrade
    /// snapshots are not counted). 0 means no limit, as `maxCount: 0` in
    /// the OpenBaoCluster does.
    #[arg(long, env = env::RETENTION_MAX_COUNT)]
    pub max_count: Option<u32>,

    /// Delete backups older than this (168h, 1h30m, 30d); at least 1h.
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
    #[arg(long, help_heading = heading::OUTPUT)]
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
#[command(next_help_heading = heading::BACKUP)]
pub struct ClusterArgs {
    /// Name of the OpenBaoCluster; part of the object key. Required.
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

    /// Name of the OpenBaoCluster whose backups to read: required for
    /// --latest and for `restore` (the cluster restored into).
    #[arg(long, env = env::OPENBAO_CLUSTER, help_heading = heading::BACKUP)]
    pub cluster: Option<String>,

    /// Namespace of the OpenBaoCluster.
    #[arg(long, env = env::OPENBAO_NAMESPACE, default_value = "default", help_heading = heading::BACKUP)]
    pub namespace: String,

    /// The backup: its object key, `s3://BUCKET/KEY`, or `latest` (the
    /// cluster's newest). `restore` needs it or --latest; `verify` and
    /// `decode` read the newest without either.
    #[arg(long, env = env::BACKUP_KEY, help_heading = heading::BACKUP)]
    pub key: Option<BackupRef>,

    /// The cluster's newest backup (the same as --key latest).
    #[arg(long, help_heading = heading::BACKUP)]
    pub latest: bool,

    #[command(flatten)]
    pub plugins: DecodePluginArgs,

    /// Also write the JSON result here (a restore Job uses
    /// /dev/termination-log).
    #[arg(long, env = env::RESULT_FILE, help_heading = heading::OUTPUT)]
    pub result_file: Option<PathBuf>,

    /// The key the backups' manifests are signed with (`backup
    /// --manifest-key-file`): a manifest without its signature, or not
    /// matching it, is refused before anything else is read.
    #[arg(long, env = env::MANIFEST_KEY_FILE, help_heading = heading::BACKUP)]
    pub manifest_key_file: Option<PathBuf>,

    /// How often to log progress while the snapshot streams.
    #[arg(long, env = env::BACKUP_PROGRESS_INTERVAL, default_value = "5s", value_parser = parse_duration, help_heading = heading::OUTPUT)]
    pub progress_interval: Duration,
}

/// The plugins that undo a backup's transforms.
#[derive(Debug, Args)]
pub struct DecodePluginArgs {
    /// A plugin the backup's transforms need (matched to the manifest by
    /// digest; repeat for each): a .wasm file, or {"file", "config",
    /// "secretFiles"} as JSON, e.g. the age identity in secretFiles.
    #[arg(long = flag::PLUGIN, value_name = "PLUGIN", help_heading = heading::PLUGINS)]
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
    #[arg(long, env = env::RESTORE_FORCE, help_heading = heading::OPENBAO)]
    pub force: bool,

    /// Restore a backup whose manifest names another cluster or namespace
    /// than --cluster and --namespace, or whose key is outside their prefix
    /// (a new cluster replacing a lost one). Refused without it.
    #[arg(long, env = env::RESTORE_ALLOW_OTHER_CLUSTER, help_heading = heading::BACKUP)]
    pub allow_other_cluster: bool,

    /// The cluster whose backups are read (`latest` and the prefix under
    /// --namespace), when it is not --cluster: a lost cluster's backups
    /// restored into a new one (with --allow-other-cluster).
    #[arg(long, env = env::RESTORE_SOURCE_CLUSTER, help_heading = heading::BACKUP)]
    pub source_cluster: Option<String>,

    /// Send nothing: compare the backup's manifest with the live cluster
    /// (cluster, Raft index, OpenBao version, seal, age, size, plugins) and
    /// print each finding as ok, warn or refuse. Exit code 0 when a restore
    /// would go ahead, 2 when it would be refused.
    #[arg(long, env = env::RESTORE_DRY_RUN)]
    pub dry_run: bool,

    /// With --dry-run: print the report as the one JSON line (`previewed`)
    /// instead of text.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The throwaway OpenBao (--openbao-addr, one address); the login
    /// flags log in for the canary read, in the restored data.
    #[command(flatten)]
    pub openbao: OpenBaoArgs,

    /// The backup: without --key, the cluster's newest.
    #[command(flatten)]
    pub read: ReadArgs,

    /// A path under /v1/ read back once restored, e.g. secret/data/canary.
    #[arg(long, env = env::DRILL_CANARY_PATH, help_heading = heading::OPENBAO)]
    pub canary_path: Option<String>,

    /// A key the canary secret's data must hold.
    #[arg(long, env = env::DRILL_CANARY_KEY, requires = "canary_path", help_heading = heading::OPENBAO)]
    pub canary_key: Option<String>,

    /// Where the verified snapshot waits until the throwaway gets it
    /// (removed afterwards); default: the system's temporary directory.
    #[arg(long, env = env::DRILL_SPOOL_DIR, help_heading = heading::OUTPUT)]
    pub spool_dir: Option<PathBuf>,

    /// Connect to this IP for --openbao-addr's host name (the throwaway
    /// pod, reached by its IP while TLS checks its certificate for the
    /// name in --openbao-addr).
    #[arg(long, env = env::DRILL_THROWAWAY_IP, help_heading = heading::OPENBAO)]
    pub throwaway_ip: Option<std::net::IpAddr>,
}

impl DrillArgs {
    pub fn into_config(self) -> Result<(ReadBack, Drill), String> {
        let canary = match self.canary_path {
            Some(path) if path.trim().trim_matches('/').is_empty() => {
                return Err("--canary-path (DRILL_CANARY_PATH) is empty: give a path such as secret/data/canary".into());
            }
            Some(path) => Some(Canary {
                path,
                key: self.canary_key,
                auth: self.openbao.auth()?,
            }),
            None => None,
        };
        let drill = Drill {
            openbao: self.openbao.config()?,
            canary,
            spool_dir: self.spool_dir.unwrap_or_else(std::env::temp_dir),
            throwaway_ip: self.throwaway_ip,
        };
        Ok((self.read.into_read(WithoutKey::Latest)?, drill))
    }
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub read: ReadArgs,

    /// Read this downloaded object instead of the bucket.
    #[arg(long, conflicts_with = "bucket", help_heading = heading::BACKUP)]
    pub file: Option<PathBuf>,

    /// The object's manifest (default: FILE.manifest.json).
    #[arg(long, requires = "file", help_heading = heading::BACKUP)]
    pub manifest: Option<PathBuf>,

    /// Where to write the snapshot; `-` for stdout. Required.
    #[arg(long, short, help_heading = heading::OUTPUT)]
    pub output: PathBuf,
}

/// Whether a command without --key or --latest reads the newest backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutKey {
    /// `verify` and `decode` only read: the newest backup.
    Latest,
    /// `restore` replaces OpenBao's data: never without a choice.
    Refuse,
}

impl ReadArgs {
    /// The backup chosen: --key (BACKUP_KEY, where the operator's restore
    /// Job sets `latest` or a key) or --latest.
    fn backup(&self, without_key: WithoutKey) -> Result<BackupRef, String> {
        match (&self.key, self.latest, without_key) {
            (Some(BackupRef::Key(key)), true, _) => Err(format!(
                "both --latest and --key (BACKUP_KEY) `{key}` are given: choose one backup"
            )),
            (Some(backup), _, _) => Ok(backup.clone()),
            (None, true, _) | (None, false, WithoutKey::Latest) => Ok(BackupRef::Latest),
            (None, false, WithoutKey::Refuse) => Err(
                "restore needs --key KEY (BACKUP_KEY) or --latest: which backup replaces OpenBao's data? `openbao-backup list` shows them".into(),
            ),
        }
    }

    pub fn into_config(self) -> Result<ReadBack, String> {
        self.into_read(WithoutKey::Latest)
    }

    fn into_read(mut self, without_key: WithoutKey) -> Result<ReadBack, String> {
        let mut backup = self.backup(without_key)?;
        // An S3 URL names the bucket too.
        if let BackupRef::Key(key) = &backup
            && let Some(url) = key.strip_prefix("s3://")
        {
            let (bucket, key) = url
                .split_once('/')
                .filter(|(b, k)| !b.is_empty() && !k.is_empty())
                .ok_or_else(|| format!("--key {key}: expected s3://BUCKET/KEY"))?;
            self.target.bucket = Some(bucket.into());
            backup = BackupRef::Key(key.into());
        }
        let target = self.target.into_config()?;
        let cluster_prefix = match (&backup, self.cluster) {
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
                backup,
            },
            plugins: self.plugins.plugins,
            plugin_limits: self.plugins.limits.limits(),
            manifest_key_file: self.manifest_key_file,
            progress_interval: self.progress_interval,
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
                progress_interval: self.read.progress_interval,
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
        let mut read = self.read;
        if let Some(source) = self.source_cluster.filter(|c| !c.trim().is_empty()) {
            read.cluster = Some(source);
        }
        Ok((read.into_read(WithoutKey::Refuse)?, target))
    }
}

#[derive(Debug, Args)]
#[command(next_help_heading = heading::OPENBAO)]
pub struct OpenBaoArgs {
    /// OpenBao node addresses, comma-separated; the active node is found
    /// through sys/health and only it is ever snapshotted. Required
    /// (BAO_ADDR is read when OPENBAO_ADDR is unset).
    #[arg(long, env = env::OPENBAO_ADDR, value_delimiter = ',', required = true)]
    pub openbao_addr: Vec<String>,

    /// PEM file with the CA that signed OpenBao's TLS certificate
    /// (BAO_CACERT is read when OPENBAO_CACERT is unset).
    #[arg(long, env = env::OPENBAO_CACERT)]
    pub openbao_cacert: Option<PathBuf>,

    /// JWT auth role to log in with. One login is required: --jwt-role,
    /// --token-file, or a token in BAO_TOKEN.
    #[arg(long, env = env::OPENBAO_JWT_ROLE, help_heading = heading::AUTH)]
    pub jwt_role: Option<String>,

    /// The JWT to log in with: the projected ServiceAccount token.
    #[arg(long, env = env::OPENBAO_JWT_FILE, default_value = JWT_FILE, help_heading = heading::AUTH)]
    pub jwt_file: PathBuf,

    /// Mount path of OpenBao's JWT auth method.
    #[arg(long, env = env::OPENBAO_JWT_MOUNT, default_value = "jwt", help_heading = heading::AUTH)]
    pub jwt_mount: String,

    /// Audience the projected token was issued for. Kubernetes sets it on the
    /// token; it is only logged here, to help diagnose a refused login.
    #[arg(long, env = env::OPENBAO_JWT_AUDIENCE, default_value = "openbao-internal", help_heading = heading::AUTH)]
    pub jwt_audience: String,

    /// File holding a static OpenBao token (exclusive with --jwt-role
    /// and BAO_TOKEN).
    #[arg(long, env = env::OPENBAO_TOKEN_FILE, help_heading = heading::AUTH)]
    pub token_file: Option<PathBuf>,

    /// The token in BAO_TOKEN, as the `bao` CLI reads it. No flag: a
    /// token on the command line shows in `ps`.
    #[arg(skip = env_token())]
    pub env_token: Option<Secret>,

    /// Timeout for each OpenBao request other than the snapshot stream.
    #[arg(long, env = env::OPENBAO_REQUEST_TIMEOUT, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Fail when the snapshot stream delivers no byte for this long.
    #[arg(long, env = env::OPENBAO_STALL_TIMEOUT, default_value = "60s", value_parser = parse_duration)]
    pub stall_timeout: Duration,
}

#[derive(Debug, Args)]
#[command(next_help_heading = heading::STORAGE)]
pub struct TargetArgs {
    /// S3 endpoint URL; omit for AWS. A custom endpoint implies path-style
    /// addressing unless --virtual-hosted-style is given. When S3_ENDPOINT
    /// is unset, AWS_ENDPOINT_URL_S3 and then AWS_ENDPOINT_URL are read.
    #[arg(long, visible_alias = "endpoint-url", env = env::S3_ENDPOINT)]
    pub endpoint: Option<String>,

    /// Bucket that holds the backups. Required (unless --key
    /// s3://BUCKET/KEY or --file names the backup, or --directory or
    /// --azure-container is the storage).
    #[arg(long, env = env::S3_BUCKET)]
    pub bucket: Option<String>,

    /// A directory (a mounted volume: PVC, NFS) that holds the backups
    /// instead of a bucket, with the same keys, manifests and retention.
    /// It must exist.
    #[arg(long, env = env::BACKUP_DIRECTORY)]
    pub directory: Option<PathBuf>,

    /// Azure Blob Storage account that holds the backups instead of a
    /// bucket; its key is `accountKey` in --credentials-dir.
    #[arg(long, env = env::AZURE_STORAGE_ACCOUNT)]
    pub azure_account: Option<String>,

    /// The Azure Blob Storage container (with --azure-account).
    #[arg(long, env = env::AZURE_CONTAINER)]
    pub azure_container: Option<String>,

    /// The Blob service URL, for an emulator or a sovereign cloud (default
    /// https://ACCOUNT.blob.core.windows.net); with Azurite:
    /// http://127.0.0.1:10000/devstoreaccount1.
    #[arg(long, env = env::AZURE_ENDPOINT)]
    pub azure_endpoint: Option<String>,

    /// S3 region SigV4 signs with (Garage's default is `garage`). Without
    /// it, AWS_REGION, AWS_DEFAULT_REGION or the AWS profile's region, as
    /// the AWS CLI reads them; `us-east-1` when none is set.
    #[arg(long, env = env::S3_REGION)]
    pub region: Option<String>,

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

    /// `crc32`: every part carries its CRC32 (`x-amz-checksum-crc32`), which
    /// S3 checks. `none`: no checksum header the request does not require,
    /// for stores that refuse them (Google Cloud Storage's XML API).
    #[arg(long, env = env::S3_CHECKSUM, default_value = "crc32",
          value_parser = ["crc32", "none"], ignore_case = true)]
    pub s3_checksum: String,

    /// Attempts per S3 request; transient errors are retried with backoff.
    #[arg(long, env = env::S3_MAX_ATTEMPTS, default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub max_attempts: u32,

    /// `Hardened` refuses, before connecting, an --endpoint whose host
    /// resolves to a loopback or link-local (cloud metadata) address or
    /// into --service-cidr. The operator sets it for `Hardened` clusters.
    #[arg(long, env = env::SECURITY_PROFILE, default_value = profile::DEVELOPMENT,
          value_parser = [profile::DEVELOPMENT, profile::HARDENED], ignore_case = true)]
    pub security_profile: String,

    /// The cluster's service network (repeated or comma-separated), which
    /// a `Hardened` --endpoint may not resolve into.
    #[arg(long = "service-cidr", env = env::SERVICE_CIDRS, value_delimiter = ',',
          value_parser = |s: &str| s.parse::<contract::network::Cidr>())]
    pub service_cidrs: Vec<contract::network::Cidr>,
}

impl BackupArgs {
    pub fn into_config(self) -> Result<BackupConfig, String> {
        let openbao = self.openbao.config()?;
        let auth = self.openbao.auth()?;
        let target = self.target.into_config()?;
        let (namespace, cluster) = self.cluster.names()?;
        let copies: Vec<CopyTarget> = parse_copies(self.copies_json.as_deref().unwrap_or(""))?
            .into_iter()
            .chain(self.copies)
            .collect();
        if copies.len() > MAX_COPIES {
            return Err(format!(
                "--copy (BACKUP_COPIES): {} copies given; at most {MAX_COPIES}",
                copies.len()
            ));
        }
        let copies = copies
            .iter()
            .enumerate()
            .map(|(i, copy)| CopyConfig::new(copy, &target, &format!("--copy {}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BackupConfig {
            copies,
            openbao,
            auth,
            target,
            cluster,
            namespace,
            // A Job made by hand from the CronJob's template says so.
            kind: contract::executor::cronjob::backup_kind(
                self.kind,
                self.cronjob.as_deref(),
                self.job_name.as_deref(),
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
        let given: Vec<&str> = [
            (self.jwt_role.is_some(), "--jwt-role (OPENBAO_JWT_ROLE)"),
            (
                self.token_file.is_some(),
                "--token-file (OPENBAO_TOKEN_FILE)",
            ),
            (self.env_token.is_some(), env::BAO_TOKEN),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        if given.len() > 1 {
            return Err(format!(
                "both {} are set: choose one way to log in to OpenBao",
                given.join(" and ")
            ));
        }
        if let Some(token) = &self.env_token {
            return Ok(Auth::EnvToken(token.clone()));
        }
        match (&self.jwt_role, &self.token_file) {
            (Some(_), Some(_)) => unreachable!("refused above"),
            (None, None) => Err("no OpenBao login configured: set --jwt-role (OPENBAO_JWT_ROLE) for JWT auth, --token-file (OPENBAO_TOKEN_FILE) for a static token, or BAO_TOKEN for a token in the environment".into()),
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
        let backend = self.backend()?;
        let bucket = match backend {
            Backend::S3 => self
                .bucket
                .filter(|b| !b.trim().is_empty())
                .ok_or("--bucket (S3_BUCKET) is required (or --directory, or --azure-account and --azure-container)")?,
            _ => String::new(),
        };
        let endpoint = endpoint_url(
            "--endpoint (S3_ENDPOINT)",
            self.endpoint.as_deref(),
            "https://s3.example.com",
        )?;
        Ok(TargetConfig {
            backend,
            force_path_style: endpoint.is_some() && !self.virtual_hosted_style,
            checksums: !self.s3_checksum.eq_ignore_ascii_case("none"),
            endpoint,
            bucket,
            region: self.region.filter(|r| !r.trim().is_empty()),
            path_prefix: self.path_prefix.trim_matches('/').to_string(),
            part_size: self.part_size,
            concurrency: usize::from(self.concurrency),
            credentials_dir: self.credentials_dir,
            ca_bundle: self.ca_bundle,
            max_attempts: self.max_attempts,
            hardened: self
                .security_profile
                .eq_ignore_ascii_case(profile::HARDENED)
                .then_some(self.service_cidrs),
        })
    }
}

impl TargetArgs {
    /// Which storage the flags name: one of a bucket, a directory or an
    /// Azure container; a bucket when none is named.
    fn backend(&self) -> Result<Backend, String> {
        let fields = StorageFields {
            bucket: self.bucket.as_deref(),
            directory: self.directory.as_deref(),
            azure_account: self.azure_account.as_deref(),
            azure_container: self.azure_container.as_deref(),
            azure_endpoint: self.azure_endpoint.as_deref(),
        };
        let named = Backend::named(
            fields,
            &FieldNames {
                bucket: "--bucket (S3_BUCKET)",
                directory: "--directory (BACKUP_DIRECTORY)",
                azure: "--azure-account/--azure-container",
                azure_both: "--azure-account (AZURE_STORAGE_ACCOUNT) and --azure-container (AZURE_CONTAINER)",
                azure_endpoint: "--azure-endpoint (AZURE_ENDPOINT)",
                holds: "the backups",
            },
        )?;
        Ok(named.unwrap_or(Backend::S3))
    }
}

/// BAO_TOKEN, when set and not empty (as the `bao` CLI ignores an empty one).
fn env_token() -> Option<Secret> {
    std::env::var(env::BAO_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Secret::new(t.trim()))
}

/// What the `bao` and AWS variables add to the environment: for each of
/// our variables that is unset or empty, the first of theirs that is set
/// ([`env::ALIASES`]). Flags still beat every variable.
pub fn env_aliases(
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Vec<(&'static str, std::ffi::OsString)> {
    let set = |name: &str| get(name).filter(|v| !v.is_empty());
    env::ALIASES
        .iter()
        .filter(|(ours, _)| set(ours).is_none())
        .filter_map(|(ours, theirs)| Some((*ours, theirs.iter().find_map(|t| set(t))?)))
        .collect()
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
    use executor::storage::target::AzureTarget;

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

    /// A backup's config from exactly `args` after `backup`.
    fn parse_only(args: &[&str]) -> Result<BackupConfig, String> {
        let argv = ["openbao-backup", "backup"].iter().chain(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Backup(args) = cli.command else {
            panic!("backup expected")
        };
        args.into_config()
    }

    #[test]
    fn copies_take_the_backups_layout_and_their_own_storage() {
        let config = parse(&[
            "--token-file",
            "/t",
            "--path-prefix",
            "clusters",
            "--part-size",
            "20MiB",
            "--copy",
            r#"{"bucket": "offsite", "endpoint": "https://s3.eu.example.com/", "region": "eu", "credentialsDir": "/copy"}"#,
            "--copy",
            r#"{"directory": "/mnt/copies"}"#,
        ])
        .unwrap();
        assert_eq!(config.copies.len(), 2);
        let (bucket, directory) = (&config.copies[0], &config.copies[1]);
        assert_eq!(bucket.location, "s3://offsite");
        assert_eq!(bucket.target.backend, Backend::S3);
        assert_eq!(bucket.target.bucket, "offsite");
        assert_eq!(
            bucket.target.endpoint.as_deref(),
            Some("https://s3.eu.example.com")
        );
        assert!(bucket.target.force_path_style);
        assert_eq!(bucket.target.credentials_dir, Some(PathBuf::from("/copy")));
        assert_eq!(bucket.target.path_prefix, "clusters", "the backup's keys");
        assert_eq!(bucket.target.part_size, 20 * 1024 * 1024);
        assert_eq!(
            directory.target.backend,
            Backend::Directory(PathBuf::from("/mnt/copies"))
        );
        assert_eq!(directory.target.credentials_dir, None, "not the primary's");

        // The operator's variable, then the flags.
        let from_env = super::parse_copies(
            r#"[{"bucket": "a"}, {"azureAccount": "acct", "azureContainer": "c"}]"#,
        )
        .unwrap();
        assert!(super::parse_copies("").unwrap().is_empty());
        assert!(
            super::parse_copies(r#"{"bucket": "a"}"#)
                .unwrap_err()
                .contains("--copies (BACKUP_COPIES) is not a JSON array")
        );
        assert_eq!(from_env.len(), 2);

        let err = |copy: &str| parse(&["--token-file", "/t", "--copy", copy]).unwrap_err();
        assert!(
            err(r#"{"bucket": "a", "directory": "/d"}"#)
                .contains("--copy 1: both bucket and directory are set")
        );
        assert!(err(r#"{"region": "eu"}"#).contains("--copy 1: name the copy's storage"));
        assert!(
            err(r#"{"azureAccount": "acct"}"#)
                .contains("needs both azureAccount and azureContainer")
        );
        assert!(err(r#"{"bucket": "a", "secretAccessKey": "x"}"#).contains("unknown field"));
        assert!(
            err(r#"{"bucket": "a", "endpoint": "s3 host"}"#)
                .contains("--copy 1: endpoint: `s3 host` is not a URL")
        );
        let five: Vec<&str> = (0..5)
            .flat_map(|_| ["--copy", r#"{"bucket": "a"}"#])
            .collect();
        let mut args = vec!["--token-file", "/t"];
        args.extend(five);
        assert!(
            parse(&args)
                .unwrap_err()
                .contains("5 copies given; at most 4")
        );
    }

    #[test]
    fn one_storage_holds_the_backups() {
        let base = [
            "--openbao-addr",
            "http://a:8200",
            "--cluster",
            "c",
            "--token-file",
            "/t",
        ];
        let with = |extra: &[&str]| parse_only(&[&base[..], extra].concat());
        let c = with(&["--directory", "/backups"]).unwrap();
        assert_eq!(c.target.backend, Backend::Directory("/backups".into()));
        assert_eq!(
            with(&["--bucket", "b"]).unwrap().target.backend,
            Backend::S3
        );
        let err = with(&["--bucket", "b", "--directory", "/backups"]).unwrap_err();
        assert!(
            err.contains("both --bucket (S3_BUCKET) and --directory (BACKUP_DIRECTORY)"),
            "{err}"
        );
        let azure = ["--azure-account", "acct", "--azure-container", "backups"];
        let c = with(
            &[
                &azure[..],
                &["--azure-endpoint", "http://127.0.0.1:10000/acct/"],
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!(
            c.target.backend,
            Backend::Azure(AzureTarget {
                account: "acct".into(),
                container: "backups".into(),
                endpoint: Some("http://127.0.0.1:10000/acct".into()),
            })
        );
        let err = with(&["--azure-account", "acct"]).unwrap_err();
        assert!(err.contains("both --azure-account (AZURE_STORAGE_ACCOUNT) and --azure-container (AZURE_CONTAINER)"), "{err}");
        let err = with(&[&azure[..], &["--directory", "/d"]].concat()).unwrap_err();
        assert!(
            err.contains(
                "both --directory (BACKUP_DIRECTORY) and --azure-account/--azure-container are set"
            ),
            "{err}"
        );
        let err = with(&[&azure[..], &["--azure-endpoint", "blob.local"]].concat()).unwrap_err();
        assert!(
            err.contains("--azure-endpoint (AZURE_ENDPOINT): `blob.local` is not a URL"),
            "{err}"
        );
        let err = with(&[]).unwrap_err();
        assert!(
            err.contains("--bucket (S3_BUCKET) is required (or --directory"),
            "{err}"
        );
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
        let days = parse(&["--token-file", "/t", "--max-age", "7d"]).unwrap();
        assert_eq!(
            days.retention,
            Some(RetentionSetting::keep_last(
                KeepLast {
                    max_count: None,
                    max_age: Some((Duration::from_secs(7 * 86_400), "7d".into())),
                },
                Vec::new()
            ))
        );
        let err = parse(&["--token-file", "/t", "--max-age", "7 days"]).unwrap_err();
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

    /// `restore` with an OpenBao address, a token file, a bucket and `args`.
    fn restore_config(args: &[&str]) -> Result<(ReadBack, RestoreTarget), String> {
        let mut argv = vec![
            "openbao-backup",
            "restore",
            "--openbao-addr",
            "http://a:8200",
            "--token-file",
            "/t",
            "--bucket",
            "b",
        ];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .command
        {
            Command::Restore(args) => args.into_config(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_restore_names_the_cluster_it_restores_into() {
        let restore =
            |args: &[&str]| restore_config(&[&["--key", "p/prod/bao/x.snap"], args].concat());
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
    fn a_restore_reads_the_source_clusters_backups_into_its_cluster() {
        let (read, target) = restore_config(&[
            "--latest",
            "--cluster",
            "new",
            "--namespace",
            "prod",
            "--source-cluster",
            "old",
        ])
        .unwrap();
        let executor::restore::Source::Bucket { cluster_prefix, .. } = read.source else {
            panic!("a bucket source")
        };
        assert!(cluster_prefix.ends_with("prod/old/"), "{cluster_prefix}");
        assert_eq!(target.cluster, "new");
        let (read, _) =
            restore_config(&["--latest", "--cluster", "new", "--namespace", "prod"]).unwrap();
        let executor::restore::Source::Bucket { cluster_prefix, .. } = read.source else {
            panic!("a bucket source")
        };
        assert!(cluster_prefix.ends_with("prod/new/"), "{cluster_prefix}");
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

    fn backup_args(extra: &[&str]) -> BackupArgs {
        let mut argv = vec![
            "openbao-backup",
            "backup",
            "--openbao-addr",
            "http://a:8200",
            "--bucket",
            "b",
            "--cluster",
            "c",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Backup(args) => *args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_token_in_bao_token_is_one_login_among_the_others() {
        let with_token = |extra: &[&str]| {
            let mut args = backup_args(extra);
            args.openbao.env_token = Some(Secret::new("s.hunter2"));
            args.into_config()
        };
        let config = with_token(&[]).unwrap();
        match &config.auth {
            Auth::EnvToken(token) => assert_eq!(token.expose(), "s.hunter2"),
            other => panic!("{other:?}"),
        }
        assert!(!format!("{config:?}").contains("hunter2"));
        for (flag, value) in [("--token-file", "/t"), ("--jwt-role", "r")] {
            let err = with_token(&[flag, value]).unwrap_err();
            assert!(
                err.contains(flag) && err.contains("BAO_TOKEN") && err.contains("choose one"),
                "{err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
        let neither = backup_args(&[]).into_config().unwrap_err();
        assert!(neither.contains("BAO_TOKEN"), "{neither}");
    }

    #[test]
    fn bao_and_aws_variables_come_after_ours() {
        use std::ffi::OsString;
        let aliases = |set: &[(&str, &str)]| {
            let set: Vec<(String, OsString)> = set
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect();
            let mut found =
                env_aliases(|name| set.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
            found.sort();
            found
                .into_iter()
                .map(|(k, v)| (k, v.into_string().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(aliases(&[]), vec![]);
        assert_eq!(
            aliases(&[
                ("BAO_ADDR", "http://bao:8200"),
                ("BAO_CACERT", "/ca.pem"),
                ("AWS_ENDPOINT_URL", "http://any:9000"),
            ]),
            vec![
                ("OPENBAO_ADDR", "http://bao:8200".to_string()),
                ("OPENBAO_CACERT", "/ca.pem".to_string()),
                ("S3_ENDPOINT", "http://any:9000".to_string()),
            ]
        );
        // The S3-specific AWS name beats the general one.
        assert_eq!(
            aliases(&[
                ("AWS_ENDPOINT_URL", "http://any:9000"),
                ("AWS_ENDPOINT_URL_S3", "http://s3:9000"),
            ]),
            vec![("S3_ENDPOINT", "http://s3:9000".to_string())]
        );
        // Ours first: nothing to add when it is set; an empty one is unset.
        assert_eq!(
            aliases(&[
                ("OPENBAO_ADDR", "http://ours:8200"),
                ("BAO_ADDR", "http://theirs:8200"),
                ("S3_ENDPOINT", "http://ours:3900"),
                ("AWS_ENDPOINT_URL_S3", "http://theirs:9000"),
            ]),
            vec![]
        );
        assert_eq!(
            aliases(&[("OPENBAO_ADDR", ""), ("BAO_ADDR", "http://theirs:8200")]),
            vec![("OPENBAO_ADDR", "http://theirs:8200".to_string())]
        );
    }

    #[test]
    fn endpoint_url_is_an_alias_and_the_region_is_not_forced() {
        let c = parse(&[
            "--token-file",
            "/t",
            "--endpoint-url",
            "http://127.0.0.1:3900",
        ])
        .unwrap();
        assert_eq!(c.target.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert!(c.target.force_path_style);
        assert_eq!(c.target.region, None, "the AWS chain decides");
        let c = parse(&["--token-file", "/t", "--region", "garage"]).unwrap();
        assert_eq!(c.target.region.as_deref(), Some("garage"));
        let c = parse(&["--token-file", "/t", "--region", ""]).unwrap();
        assert_eq!(c.target.region, None);
    }

    #[test]
    fn a_restore_needs_an_explicit_backup() {
        let restore = |args: &[&str]| {
            restore_config(&[&["--cluster", "bao"], args].concat()).map(|(read, _)| read)
        };
        let backup = |read: ReadBack| match read.source {
            Source::Bucket { backup, .. } => backup,
            other => panic!("{other:?}"),
        };
        let err = restore(&[]).unwrap_err();
        assert!(
            err.contains("restore needs --key KEY (BACKUP_KEY) or --latest"),
            "{err}"
        );
        assert_eq!(backup(restore(&["--latest"]).unwrap()), BackupRef::Latest);
        // `--key latest` is what BACKUP_KEY=latest (the operator's restore
        // Job) amounts to: an explicit choice.
        assert_eq!(
            backup(restore(&["--key", "latest"]).unwrap()),
            BackupRef::Latest
        );
        assert_eq!(
            backup(restore(&["--key", "p/x.snap"]).unwrap()),
            BackupRef::Key("p/x.snap".into())
        );
        let err = restore(&["--latest", "--key", "p/x.snap"]).unwrap_err();
        assert!(err.contains("both --latest and --key"), "{err}");
        // verify and decode only read: without either, the newest.
        let cli = Cli::try_parse_from([
            "openbao-backup",
            "verify",
            "--bucket",
            "b",
            "--cluster",
            "c",
        ])
        .unwrap();
        let Command::Verify(args) = cli.command else {
            unreachable!()
        };
        assert_eq!(backup(args.into_config().unwrap()), BackupRef::Latest);
    }

    #[test]
    fn help_groups_flags_under_headings_with_examples() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        for (name, headings) in [
            (
                "backup",
                &[
                    "OpenBao:",
                    "Authentication:",
                    "Storage (S3):",
                    "Backup:",
                    "Retention:",
                    "Plugins:",
                    "Output:",
                ][..],
            ),
            (
                "restore",
                &[
                    "OpenBao:",
                    "Authentication:",
                    "Storage (S3):",
                    "Backup:",
                    "Plugins:",
                    "Output:",
                ],
            ),
            ("list", &["Storage (S3):", "Backup:", "Output:"]),
            (
                "verify",
                &["Storage (S3):", "Backup:", "Plugins:", "Output:"],
            ),
            (
                "decode",
                &["Storage (S3):", "Backup:", "Plugins:", "Output:"],
            ),
        ] {
            let help = cli
                .find_subcommand_mut(name)
                .unwrap()
                .render_long_help()
                .to_string();
            let help = help.split_once("\nOptions:").unwrap().1;
            for heading in headings {
                assert!(
                    help.contains(&format!("\n{heading}\n")),
                    "{name}: no {heading}\n{help}"
                );
            }
            let examples = help.split("Examples:").nth(1).unwrap_or_default();
            let count = examples.matches("\n  openbao-backup ").count();
            assert!((2..=3).contains(&count), "{name}: {count} examples\n{help}");
            // The flags that are required say so.
            let required = ["--openbao-addr", "--bucket", "--cluster"];
            for flag in required.iter().filter(|f| help.contains(&format!("{f} <"))) {
                let text = help.split(&format!("{flag} <")).nth(1).unwrap();
                let text = text.split("\n\n").next().unwrap();
                assert!(
                    text.contains("Required") || text.contains("required"),
                    "{name} {flag}: {text}"
                );
            }
        }
    }
}
