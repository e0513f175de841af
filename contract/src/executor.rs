//! How the operator drives the executor: the subcommands and flags it
//! passes, the environment variables it sets (each one also read by the
//! command line, through clap's `env`), and where it mounts files in the
//! executor's pod. Both sides use these constants, so a name cannot drift.

/// The subcommands a Job runs.
pub mod command {
    pub const BACKUP: &str = "backup";
    pub const RESTORE: &str = "restore";
    /// A restore drill into a throwaway OpenBao.
    pub const DRILL: &str = "drill";
}

/// Flags (without the leading `--`) that the operator passes as arguments.
pub mod flag {
    pub const TRANSFORM: &str = "transform";
    pub const RETENTION_PLUGIN: &str = "retention-plugin";
    /// A plugin a restore may need to undo the backup's transforms.
    pub const PLUGIN: &str = "plugin";
}

/// Environment variables; each sets the flag of the same meaning.
pub mod env {
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    pub const RESULT_FILE: &str = "RESULT_FILE";

    pub const OPENBAO_ADDR: &str = "OPENBAO_ADDR";
    pub const OPENBAO_CACERT: &str = "OPENBAO_CACERT";
    pub const OPENBAO_CLUSTER: &str = "OPENBAO_CLUSTER";
    pub const OPENBAO_NAMESPACE: &str = "OPENBAO_NAMESPACE";
    pub const OPENBAO_JWT_ROLE: &str = "OPENBAO_JWT_ROLE";
    pub const OPENBAO_JWT_FILE: &str = "OPENBAO_JWT_FILE";
    pub const OPENBAO_JWT_MOUNT: &str = "OPENBAO_JWT_MOUNT";
    pub const OPENBAO_JWT_AUDIENCE: &str = "OPENBAO_JWT_AUDIENCE";
    pub const OPENBAO_TOKEN_FILE: &str = "OPENBAO_TOKEN_FILE";
    pub const OPENBAO_REQUEST_TIMEOUT: &str = "OPENBAO_REQUEST_TIMEOUT";
    pub const OPENBAO_STALL_TIMEOUT: &str = "OPENBAO_STALL_TIMEOUT";

    pub const S3_ENDPOINT: &str = "S3_ENDPOINT";
    pub const S3_BUCKET: &str = "S3_BUCKET";
    pub const S3_REGION: &str = "S3_REGION";
    pub const S3_PATH_PREFIX: &str = "S3_PATH_PREFIX";
    pub const S3_PART_SIZE: &str = "S3_PART_SIZE";
    pub const S3_CONCURRENCY: &str = "S3_CONCURRENCY";
    pub const S3_CREDENTIALS_DIR: &str = "S3_CREDENTIALS_DIR";
    pub const S3_VIRTUAL_HOSTED_STYLE: &str = "S3_VIRTUAL_HOSTED_STYLE";
    pub const S3_MAX_ATTEMPTS: &str = "S3_MAX_ATTEMPTS";
    /// `crc32` (default) or `none`: whether parts carry a checksum header.
    pub const S3_CHECKSUM: &str = "S3_CHECKSUM";
    pub const AWS_CA_BUNDLE: &str = "AWS_CA_BUNDLE";
    /// A directory (a mounted volume) instead of a bucket.
    pub const BACKUP_DIRECTORY: &str = "BACKUP_DIRECTORY";
    /// An Azure Blob Storage container instead of a bucket.
    pub const AZURE_STORAGE_ACCOUNT: &str = "AZURE_STORAGE_ACCOUNT";
    pub const AZURE_CONTAINER: &str = "AZURE_CONTAINER";
    pub const AZURE_ENDPOINT: &str = "AZURE_ENDPOINT";

    pub const BACKUP_KIND: &str = "BACKUP_KIND";
    /// The CronJob a Job's template comes from, and the pod's Job (the
    /// Downward API's `job-name` label): a `scheduled` backup whose Job
    /// the CronJob controller did not name is `manual` ([`super::cronjob`]).
    pub const BACKUP_CRONJOB: &str = "BACKUP_CRONJOB";
    pub const BACKUP_JOB_NAME: &str = "BACKUP_JOB_NAME";
    pub const BACKUP_PROGRESS_INTERVAL: &str = "BACKUP_PROGRESS_INTERVAL";
    /// Second copies of each backup: a JSON array of
    /// [`super::copies::CopyTarget`] (the `--copy` flag takes one).
    pub const BACKUP_COPIES: &str = "BACKUP_COPIES";
    pub const BACKUP_SWEEP_AFTER: &str = "BACKUP_SWEEP_AFTER";
    pub const MANIFEST_KEY_FILE: &str = "MANIFEST_KEY_FILE";
    pub const RETENTION_MAX_COUNT: &str = "RETENTION_MAX_COUNT";
    pub const RETENTION_MAX_AGE: &str = "RETENTION_MAX_AGE";
    pub const RETENTION_KEEP_KEYS: &str = "RETENTION_KEEP_KEYS";
    pub const RETENTION_PLUGIN: &str = "RETENTION_PLUGIN";

    pub const BACKUP_KEY: &str = "BACKUP_KEY";
    pub const RESTORE_FORCE: &str = "RESTORE_FORCE";
    pub const RESTORE_ALLOW_OTHER_CLUSTER: &str = "RESTORE_ALLOW_OTHER_CLUSTER";
    /// The cluster whose backups a restore reads, when not the target.
    pub const RESTORE_SOURCE_CLUSTER: &str = "RESTORE_SOURCE_CLUSTER";
    /// `restore --dry-run`: the preview only, nothing sent.
    pub const RESTORE_DRY_RUN: &str = "RESTORE_DRY_RUN";
    /// `drill`: the canary path and key read back, and where the verified
    /// snapshot waits before the throwaway gets it.
    pub const DRILL_CANARY_PATH: &str = "DRILL_CANARY_PATH";
    pub const DRILL_CANARY_KEY: &str = "DRILL_CANARY_KEY";
    pub const DRILL_SPOOL_DIR: &str = "DRILL_SPOOL_DIR";
    /// `drill`: the throwaway pod's IP, for OPENBAO_ADDR's host name.
    pub const DRILL_THROWAWAY_IP: &str = "DRILL_THROWAWAY_IP";

    /// `Hardened` (a cluster's `spec.profile`): refuse a storage endpoint
    /// that resolves to loopback, link-local or the service network
    /// ([`crate::network::forbidden`]). Unset or `Development`: no check.
    pub const SECURITY_PROFILE: &str = "SECURITY_PROFILE";
    /// The cluster's service network, comma-separated ranges (the
    /// operator's setting of the same name).
    pub const SERVICE_CIDRS: &str = "SERVICE_CIDRS";

    pub const PLUGIN_MEMORY_LIMIT: &str = "PLUGIN_MEMORY_LIMIT";
    pub const PLUGIN_CALL_TIMEOUT: &str = "PLUGIN_CALL_TIMEOUT";
    pub const PLUGIN_MAX_OUTPUT: &str = "PLUGIN_MAX_OUTPUT";

    /// The names the `bao` CLI and the AWS tools read, so that a shell set
    /// up for them works here too.
    pub const BAO_ADDR: &str = "BAO_ADDR";
    pub const BAO_CACERT: &str = "BAO_CACERT";
    /// A token in the environment, for people at a shell (the operator
    /// mounts a file: `OPENBAO_TOKEN_FILE`). There is no flag: a token on
    /// a command line shows in `ps`.
    pub const BAO_TOKEN: &str = "BAO_TOKEN";
    pub const AWS_ENDPOINT_URL_S3: &str = "AWS_ENDPOINT_URL_S3";
    pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";

    /// The result file's old name: a Job written by an older operator
    /// keeps working.
    pub const BACKUP_RESULT_FILE: &str = "BACKUP_RESULT_FILE";

    /// Variables read when ours is unset, as (ours, others in order): our
    /// own name first, then the `bao` or AWS one, or an old name.
    pub const ALIASES: [(&str, &[&str]); 4] = [
        (RESULT_FILE, &[BACKUP_RESULT_FILE]),
        (OPENBAO_ADDR, &[BAO_ADDR]),
        (OPENBAO_CACERT, &[BAO_CACERT]),
        (S3_ENDPOINT, &[AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL]),
    ];
}

/// Telling the CronJob's own Jobs from Jobs made from its template.
pub mod cronjob {
    use crate::result::BackupKind;

    /// Whether the CronJob controller named `job`: it names its Jobs
    /// `<cronjob>-<scheduled time in minutes since the epoch>`, where
    /// `kubectl create job --from=cronjob/<cronjob> <name>` takes the name
    /// given.
    pub fn scheduled_by(cronjob: &str, job: &str) -> bool {
        job.strip_prefix(cronjob)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|minutes| {
                !minutes.is_empty() && minutes.bytes().all(|b| b.is_ascii_digit())
            })
    }

    /// The kind of a backup run with `kind` by the Job `job` made from the
    /// CronJob `cronjob`'s template: `scheduled` stays only for the Jobs the
    /// CronJob controller made; a Job made by hand is `manual`. Without
    /// both names the kind stands.
    pub fn backup_kind(kind: BackupKind, cronjob: Option<&str>, job: Option<&str>) -> BackupKind {
        match (kind, cronjob, job) {
            (BackupKind::Scheduled, Some(cronjob), Some(job))
                if !cronjob.is_empty() && !job.is_empty() && !scheduled_by(cronjob, job) =>
            {
                BackupKind::Manual
            }
            _ => kind,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn only_the_cronjob_controllers_names_are_scheduled() {
            assert!(scheduled_by("bao-backup", "bao-backup-29410560"));
            assert!(!scheduled_by("bao-backup", "bao-backup-manual-1"));
            assert!(!scheduled_by("bao-backup", "bao-backup-"));
            assert!(!scheduled_by("bao-backup", "bao-backup29410560"));
            assert!(!scheduled_by("bao-backup", "other-backup-29410560"));
            assert!(!scheduled_by("bao-backup", "manual-backup-1"));
            let kind = |cronjob, job| backup_kind(BackupKind::Scheduled, cronjob, job);
            assert_eq!(
                kind(Some("bao-backup"), Some("bao-backup-29410560")),
                BackupKind::Scheduled
            );
            assert_eq!(
                kind(Some("bao-backup"), Some("my-backup")),
                BackupKind::Manual
            );
            assert_eq!(
                kind(Some("bao-backup"), Some("")),
                BackupKind::Scheduled,
                "no label: as told"
            );
            assert_eq!(kind(None, Some("my-backup")), BackupKind::Scheduled);
            assert_eq!(
                backup_kind(BackupKind::PreUpgrade, Some("bao-backup"), Some("x")),
                BackupKind::PreUpgrade
            );
        }
    }
}

/// Second copies: the further targets a backup is copied to and checked
/// on, as the operator renders them (`BACKUP_COPIES`, a JSON array) and
/// `--copy` takes them (one JSON object each). A copy has the primary's
/// keys (its path prefix, hence the same manifest), part size,
/// concurrency, attempts and security profile; it names only where it
/// goes and its own credentials.
pub mod copies {
    use serde::{Deserialize, Serialize};

    /// The most copies a backup makes.
    pub const MAX_COPIES: usize = 4;

    /// Exactly one of `bucket`, `directory`, or `azureAccount` with
    /// `azureContainer`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct CopyTarget {
        /// How results name the copy, when not by its location (the
        /// operator names a volume by its claim, not its mount path).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bucket: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub endpoint: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub region: Option<String>,
        /// A directory of credential files, as `--credentials-dir`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub credentials_dir: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ca_bundle: Option<String>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub virtual_hosted_style: bool,
        /// `crc32` (default) or `none`, as `--s3-checksum`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub s3_checksum: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub directory: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub azure_account: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub azure_container: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub azure_endpoint: Option<String>,
    }

    impl CopyTarget {
        /// Where the copy goes, for results, status and logs (never a
        /// credential): its `name`, else `s3://BUCKET`, the directory, or
        /// `azure://ACCOUNT/CONTAINER`. The operator and the executor name
        /// a copy alike.
        pub fn location(&self) -> String {
            let given = |v: &Option<String>| {
                v.as_deref()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            if let Some(name) = given(&self.name) {
                return name;
            }
            if let Some(directory) = given(&self.directory) {
                return directory;
            }
            if given(&self.azure_account).is_some() || given(&self.azure_container).is_some() {
                return format!(
                    "azure://{}/{}",
                    given(&self.azure_account).unwrap_or_default(),
                    given(&self.azure_container).unwrap_or_default()
                );
            }
            format!("s3://{}", given(&self.bucket).unwrap_or_default())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_copy_is_named_by_its_location_only() {
            let copy: CopyTarget = serde_json::from_str(
                r#"{"bucket":"offsite","endpoint":"https://s3.example.com","credentialsDir":"/creds/copy-0"}"#,
            )
            .unwrap();
            assert_eq!(copy.location(), "s3://offsite");
            let dir = CopyTarget {
                directory: Some("/copies".into()),
                ..Default::default()
            };
            assert_eq!(dir.location(), "/copies");
            let azure = CopyTarget {
                azure_account: Some("acct".into()),
                azure_container: Some("c".into()),
                ..Default::default()
            };
            assert_eq!(azure.location(), "azure://acct/c");
            assert!(
                serde_json::from_str::<CopyTarget>(r#"{"bucket":"b","secretKey":"x"}"#).is_err()
            );
        }
    }
}

/// Multipart upload: S3's bounds and the defaults both sides use.
pub mod upload {
    /// S3's part size bounds (the last part may be smaller).
    pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
    pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
    pub const MAX_PARTS: u64 = 10_000;
    /// The most parts the executor uploads at once.
    pub const MAX_CONCURRENCY: u16 = 64;
    pub const DEFAULT_PART_SIZE: u64 = 10 * 1024 * 1024;
    pub const DEFAULT_CONCURRENCY: u16 = 3;
}

/// The memory an executor Job is given.
pub mod memory {
    const MIB: u64 = 1024 * 1024;
    /// Memory each plugin instance of a Job may use (`PLUGIN_MEMORY_LIMIT`).
    pub const PLUGIN_MIB: u64 = 128;

    /// A Job's memory request and limit, in bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct JobMemory {
        pub request: u64,
        pub limit: u64,
    }

    /// The parts in flight and being filled, a margin, and each transform
    /// plugin's instance (capped at [`PLUGIN_MIB`]; it rarely needs a
    /// quarter of it). The limit is half again the request: the measured
    /// peak is about the parts plus 20-25 MiB, and TLS buffers and
    /// allocator slack on a real node need room above it (held to a
    /// measured peak in cli/tests/backup.rs). Snapshots whose parts grow
    /// (over 5,000 parts) need more: see README "Memory and speed".
    pub fn job_memory(part_size: u64, concurrency: u16, transforms: usize) -> JobMemory {
        let buffers = (u64::from(concurrency) + 1) * part_size + 32 * MIB;
        let plugins = transforms as u64 * PLUGIN_MIB * MIB;
        JobMemory {
            request: buffers + plugins / 4,
            limit: buffers + buffers / 2 + plugins,
        }
    }
}

/// Where the operator mounts files in the executor's pod.
pub mod paths {
    /// The projected ServiceAccount token (also the CLI's default).
    pub const JWT_FILE: &str = "/var/run/secrets/openbao-backup/jwt/token";
    pub const TOKEN_DIR: &str = "/var/run/secrets/openbao-backup/token";
    pub const S3_CREDENTIALS_DIR: &str = "/var/run/secrets/openbao-backup/s3";
    pub const OPENBAO_CA_DIR: &str = "/var/run/secrets/openbao-backup/openbao-ca";
    pub const MANIFEST_KEY_DIR: &str = "/var/run/secrets/openbao-backup/manifest-key";
    pub const PLUGIN_DIR: &str = "/var/run/openbao-backup/plugins";
    /// Where a `target.volume` (a PersistentVolumeClaim) is mounted.
    pub const BACKUP_VOLUME_DIR: &str = "/var/lib/openbao-backup/backups";
    /// Copy `i`'s credentials: `<COPY_CREDENTIALS_DIR>/<i>`.
    pub const COPY_CREDENTIALS_DIR: &str = "/var/run/secrets/openbao-backup/copies";
    /// Copy `i`'s volume: `<COPY_VOLUME_DIR>/<i>`.
    pub const COPY_VOLUME_DIR: &str = "/var/lib/openbao-backup/copies";
    pub const PLUGIN_SECRET_DIR: &str = "/var/run/secrets/openbao-backup/plugins";
    /// A drill's spool: the verified snapshot until the throwaway gets it.
    pub const DRILL_SPOOL_DIR: &str = "/var/run/openbao-backup/spool";
    /// The result file: the kubelet reports it as the termination message.
    pub const TERMINATION_LOG: &str = "/dev/termination-log";
}
