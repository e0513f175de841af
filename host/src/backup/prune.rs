//! Retention after a successful backup: list the cluster's backups, let the
//! policy (built-in or plugin) decide, hold it to the host's rules, and
//! delete. A backup exists exactly when its manifest does, so the manifest
//! goes first: an interrupted deletion leaves an object without a manifest
//! (not a backup), never a manifest without its object.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::BackupError;
use crate::plugin::{Kind, PluginHost, RetentionBackup};
use crate::plugin_spec::{ConfiguredPlugin, PluginSpec};
use crate::retention::{self, Deletion, Guard};
use crate::s3;

use super::naming::{MANIFEST_SUFFIX, manifest_key, parse_key};

/// The built-in policy's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepLast {
    pub max_count: Option<u32>,
    /// The limit and how the user wrote it (for the reasons).
    pub max_age: Option<(Duration, String)>,
}

/// Retention as configured: the built-in policy or a plugin, and the
/// backups no policy may delete.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionSetting {
    policy: PolicySetting,
    keep_keys: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum PolicySetting {
    KeepLast(KeepLast),
    Plugin(PluginSpec),
}

impl RetentionSetting {
    pub fn keep_last(limits: KeepLast, keep_keys: Vec<String>) -> Self {
        Self {
            policy: PolicySetting::KeepLast(limits),
            keep_keys,
        }
    }

    pub fn plugin(spec: PluginSpec, keep_keys: Vec<String>) -> Self {
        Self {
            policy: PolicySetting::Plugin(spec),
            keep_keys,
        }
    }

    /// Loads, digest-checks and compiles a plugin before the backup starts.
    pub fn load(&self, host: &PluginHost) -> Result<RetentionPolicy, BackupError> {
        let decider = match &self.policy {
            PolicySetting::KeepLast(limits) => Decider::KeepLast(limits.clone()),
            PolicySetting::Plugin(spec) => spec
                .load(host, Kind::Retention)
                .map(|plugin| Decider::Plugin(Box::new(plugin)))
                .map_err(|e| BackupError::Config(format!("--retention-plugin {e}")))?,
        };
        Ok(RetentionPolicy {
            decider,
            keep_keys: self.keep_keys.clone(),
        })
    }
}

/// Retention ready to run.
pub struct RetentionPolicy {
    decider: Decider,
    keep_keys: Vec<String>,
}

enum Decider {
    KeepLast(KeepLast),
    Plugin(Box<ConfiguredPlugin>),
}

/// What retention did, in the backup's result. The result is also the
/// Job's termination message, of which the kubelet keeps 4 KiB, and a run
/// may delete thousands of backups: in JSON the lists are cut to fit
/// [`REPORT_BUDGET`] bytes, and the counts say how many there were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "ReportJson", from = "ReportJson")]
pub struct RetentionReport {
    pub deleted: Vec<DeletedBackup>,
    /// Deletions the policy asked for that the host refused, with why.
    pub refused: Vec<DeletedBackup>,
    /// Set when retention failed; the new backup stands regardless.
    pub error: Option<String>,
    /// Deleted backups not in `deleted`: a report read back from JSON
    /// whose list was cut.
    pub unlisted_deleted: usize,
    /// Refused deletions not in `refused`, likewise.
    pub unlisted_refused: usize,
}

impl RetentionReport {
    pub fn deleted_count(&self) -> usize {
        self.deleted.len() + self.unlisted_deleted
    }

    pub fn refused_count(&self) -> usize {
        self.refused.len() + self.unlisted_refused
    }
}

/// The most bytes a report takes in JSON, whatever retention did; the
/// rest of a backup's result stays well under 2 KiB (its keys are bounded
/// by the CRD's limits on their parts).
pub const REPORT_BUDGET: usize = 2048;
/// The most characters of a reason or an error in JSON.
const MAX_TEXT: usize = 256;

/// The JSON form: counts, and as many entries as fit the budget.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportJson {
    #[serde(default)]
    deleted_count: usize,
    #[serde(default)]
    deleted: Vec<DeletedBackup>,
    #[serde(default, skip_serializing_if = "is_zero")]
    refused_count: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    refused: Vec<DeletedBackup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

impl From<RetentionReport> for ReportJson {
    fn from(report: RetentionReport) -> Self {
        let mut json = ReportJson {
            deleted_count: report.deleted_count(),
            refused_count: report.refused_count(),
            deleted: Vec::new(),
            refused: Vec::new(),
            error: report.error.map(|error| cut(error, MAX_TEXT)),
        };
        // Two counts and at most 256 characters of error (6 bytes each
        // when escaped) leave room for entries, listed while they fit.
        let empty = serde_json::to_string(&json).map_or(REPORT_BUDGET, |text| text.len());
        let mut room = REPORT_BUDGET.saturating_sub(empty + r#","refused":[]"#.len());
        let shortened = |entries: Vec<DeletedBackup>| {
            entries.into_iter().map(|entry| DeletedBackup {
                key: entry.key,
                reason: cut(entry.reason, MAX_TEXT),
            })
        };
        json.deleted = list_within(shortened(report.deleted), &mut room);
        json.refused = list_within(shortened(report.refused), &mut room);
        json
    }
}

/// The first `entries` whose JSON (each with its comma) fits in `room`
/// bytes; `room` keeps what is left. Reports in a backup's result list
/// through this, so the result fits a termination message whatever the
/// run did.
pub(super) fn list_within<T: Serialize>(
    entries: impl IntoIterator<Item = T>,
    room: &mut usize,
) -> Vec<T> {
    let mut listed = Vec::new();
    for entry in entries {
        let size = serde_json::to_string(&entry).map_or(usize::MAX, |text| text.len() + 1);
        if size > *room {
            break;
        }
        *room -= size;
        listed.push(entry);
    }
    listed
}

/// At most `max` characters of `text`.
pub(super) fn cut(text: String, max: usize) -> String {
    text.chars().take(max).collect()
}

impl From<ReportJson> for RetentionReport {
    fn from(json: ReportJson) -> Self {
        RetentionReport {
            unlisted_deleted: json.deleted_count.saturating_sub(json.deleted.len()),
            unlisted_refused: json.refused_count.saturating_sub(json.refused.len()),
            deleted: json.deleted,
            refused: json.refused,
            error: json.error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedBackup {
    pub key: String,
    pub reason: String,
}

pub async fn prune(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    just_taken: &str,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<RetentionReport, BackupError> {
    let objects = s3::list_objects(client, bucket, prefix).await?;
    let backups = complete_backups(prefix, &objects);
    let decided = match &policy.decider {
        Decider::KeepLast(limits) => retention::keep_last(
            &backups,
            now.timestamp(),
            limits.max_count,
            limits
                .max_age
                .as_ref()
                .map(|(limit, text)| (*limit, text.as_str())),
        ),
        Decider::Plugin(configured) => {
            let (configured, list) = (configured.as_ref().clone(), backups.clone());
            tokio::task::spawn_blocking(move || {
                configured
                    .plugin
                    .decide(&list, now.timestamp(), configured.plugin_config())
            })
            .await
            .expect("the retention plugin's thread does not panic")
            .map_err(|e| BackupError::Retention(e.to_string()))?
            .into_iter()
            .map(|(key, reason)| Deletion { key, reason })
            .collect()
        }
    };
    let guard = Guard {
        prefix,
        just_taken,
        keep: &policy.keep_keys,
        now: now.timestamp(),
        stored_at: stored_at(client, bucket, &manifest_key(just_taken)).await?,
    };
    let (allowed, refused) = retention::enforce(&backups, decided, &guard);
    let mut report = RetentionReport {
        refused: refused
            .into_iter()
            .map(|(key, why)| DeletedBackup {
                key,
                reason: format!("kept: {why}"),
            })
            .collect(),
        ..Default::default()
    };
    for deletion in allowed {
        s3::delete_object(client, bucket, &manifest_key(&deletion.key)).await?;
        s3::delete_object(client, bucket, &deletion.key).await?;
        tracing::info!(key = %deletion.key, reason = %deletion.reason, "deleted an old backup");
        report.deleted.push(DeletedBackup {
            key: deletion.key,
            reason: deletion.reason,
        });
    }
    Ok(report)
}

/// When the storage stored `key` (its Last-Modified): the clock this
/// executor's is checked against before anything is deleted.
async fn stored_at(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
) -> Result<i64, BackupError> {
    s3::head_object(client, bucket, key)
        .await?
        .and_then(|head| head.modified)
        .map(|time| time.timestamp())
        .ok_or_else(|| BackupError::Storage(format!("s3://{bucket}/{key}: no Last-Modified time")))
}

/// The complete backups among the listed objects (those with a manifest),
/// newest first.
pub(crate) fn complete_backups(prefix: &str, objects: &[(String, u64)]) -> Vec<RetentionBackup> {
    let manifests: std::collections::HashSet<&str> = objects
        .iter()
        .filter_map(|(key, _)| key.strip_suffix(MANIFEST_SUFFIX))
        .collect();
    let mut backups: Vec<RetentionBackup> = objects
        .iter()
        .filter(|(key, _)| manifests.contains(key.as_str()))
        .filter_map(|(key, size)| {
            let (time, kind) = parse_key(prefix, key)?;
            Some(RetentionBackup {
                key: key.clone(),
                time: time.timestamp(),
                size: *size,
                kind: kind.as_str().into(),
                metadata: Vec::new(),
            })
        })
        .collect();
    // Keys sort by time; newest first.
    backups.sort_by(|a, b| b.key.cmp(&a.key));
    backups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_backups_of_this_cluster_count() {
        let prefix = "c/ns/bao/";
        let objects: Vec<(String, u64)> = [
            "c/ns/bao/20261122T030000.000Z-scheduled-aaaaaa.snap",
            "c/ns/bao/20261122T030000.000Z-scheduled-aaaaaa.snap.manifest.json",
            "c/ns/bao/20261124T030000.000Z-manual-bbbbbb.snap",
            "c/ns/bao/20261124T030000.000Z-manual-bbbbbb.snap.manifest.json",
            // No manifest: not a backup (interrupted).
            "c/ns/bao/20261123T030000.000Z-scheduled-cccccc.snap",
            "c/ns/bao/notes.txt",
        ]
        .iter()
        .map(|k| (k.to_string(), 7))
        .collect();
        let backups = complete_backups(prefix, &objects);
        let keys: Vec<&str> = backups.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "c/ns/bao/20261124T030000.000Z-manual-bbbbbb.snap",
                "c/ns/bao/20261122T030000.000Z-scheduled-aaaaaa.snap"
            ]
        );
        assert_eq!(backups[0].kind, "manual");
        assert_eq!(backups[0].size, 7);
    }
}
