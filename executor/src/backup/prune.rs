//! Retention after a successful backup: list the cluster's backups, let the
//! policy (built-in or plugin) decide, hold it to the host's rules, and
//! delete. A backup exists exactly when its manifest does, so the manifest
//! goes first: an interrupted deletion leaves an object without a manifest
//! (not a backup), never a manifest without its object.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::storage::Store;
use contract::plugin_spec::PluginSpec;
use plugin_host::retention::{self, Deletion, Guard};
use plugin_host::spec::ConfiguredPlugin;
use plugin_host::{Kind, PluginHost};

use crate::bucket::catalog::complete_backups;
use contract::layout::manifest_key;
use contract::result::{DeletedBackup, RetentionReport};

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
    pub fn load(&self, host: &PluginHost) -> Result<RetentionPolicy, Error> {
        let decider = match &self.policy {
            PolicySetting::KeepLast(limits) => Decider::KeepLast(limits.clone()),
            PolicySetting::Plugin(spec) => ConfiguredPlugin::load(spec, host, Kind::Retention)
                .map(|plugin| Decider::Plugin(Box::new(plugin)))
                .map_err(|e| Error::Config(format!("--retention-plugin {e}")))?,
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

pub async fn prune(
    store: &Store,
    prefix: &str,
    just_taken: &str,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<RetentionReport, Error> {
    let objects = store.list_sizes(prefix).await?;
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
            .map_err(|e| Error::Retention(e.to_string()))?
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
        stored_at: stored_at(store, &manifest_key(just_taken)).await?,
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
        store.delete(&manifest_key(&deletion.key)).await?;
        store.delete(&deletion.key).await?;
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
async fn stored_at(store: &Store, key: &str) -> Result<i64, Error> {
    store
        .head(key)
        .await?
        .and_then(|head| head.modified)
        .map(|time| time.timestamp())
        .ok_or_else(|| Error::Storage(format!("{}: no Last-Modified time", store.url(key))))
}
