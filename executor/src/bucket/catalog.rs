//! The backups in the bucket: which are complete, finding one, and
//! reading its manifest.

use contract::layout::{MANIFEST_SUFFIX, manifest_key, parse_key};
use contract::manifest::{MANIFEST_FORMAT_VERSION, Manifest};
use plugin_host::RetentionBackup;

use crate::error::Error;
use crate::storage::Store;
use chrono::Utc;
use contract::signing::ManifestKey;
use plugin_host::retention;

/// Which backup: a key, or the newest complete one of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupRef {
    Latest,
    Key(String),
}

impl std::str::FromStr for BackupRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "" => Err("empty: give a backup's object key, or `latest`".into()),
            "latest" => Ok(Self::Latest),
            key => Ok(Self::Key(key.trim_start_matches('/').to_string())),
        }
    }
}

/// The key a reference names; `latest` is the newest backup under the
/// cluster's prefix that has a manifest and is not stamped in the future
/// (`retention::latest`).
pub async fn resolve(store: &Store, prefix: &str, backup: &BackupRef) -> Result<String, Error> {
    match backup {
        BackupRef::Key(key) => Ok(key.clone()),
        BackupRef::Latest => {
            let objects = store.list_sizes(prefix).await?;
            let backups = complete_backups(prefix, &objects);
            let now = Utc::now().timestamp();
            for future in backups
                .iter()
                .filter(|b| retention::stamped_in_future(b, now))
            {
                tracing::warn!(key = %future.key, "not `latest`: stamped in the future by a clock running ahead; name it with --key to restore it");
            }
            match retention::latest(&backups, now) {
                Some(latest) => Ok(latest.key.clone()),
                None if !backups.is_empty() => Err(Error::Config(format!(
                    "every backup under {} is stamped in the future (a clock ran ahead): name one with --key",
                    store.url(prefix)
                ))),
                None => Err(Error::Config(format!(
                    "no backup under {}: check --bucket (or --directory, --azure-container), --path-prefix, --namespace and --cluster",
                    store.url(prefix)
                ))),
            }
        }
    }
}

/// Reads and checks the manifest beside `key`, and its signature with
/// `signing`.
pub async fn manifest(
    store: &Store,
    key: &str,
    signing: Option<&ManifestKey>,
) -> Result<Manifest, Error> {
    let manifest_key = manifest_key(key);
    let bytes = store.get(&manifest_key).await?.ok_or_else(|| {
        Error::Config(format!(
            "no manifest {}: `{key}` is not a complete backup (a backup exists only with its manifest)",
            store.url(&manifest_key)
        ))
    })?;
    let manifest = parse_manifest(&bytes, key, signing)?;
    if manifest.key != key {
        return Err(Error::InvalidSnapshot(format!(
            "the manifest beside {key} describes {}: it was moved or altered",
            manifest.key
        )));
    }
    Ok(manifest)
}

/// A manifest's text (`what` names the backup in errors), its signature
/// checked with `signing` on the JSON exactly as read.
pub fn parse_manifest(
    bytes: &[u8],
    what: &str,
    signing: Option<&ManifestKey>,
) -> Result<Manifest, Error> {
    let invalid = |e: serde_json::Error| {
        Error::InvalidSnapshot(format!("the manifest of {what} is not valid: {e}"))
    };
    let json: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if let Some(signing) = signing {
        signing
            .verify(&json)
            .map_err(|e| Error::InvalidSnapshot(format!("the manifest of {what} {e}")))?;
    }
    let manifest: Manifest = serde_json::from_value(json).map_err(invalid)?;
    if manifest.format_version != MANIFEST_FORMAT_VERSION {
        return Err(Error::InvalidSnapshot(format!(
            "the manifest of {what} has format {}; this tool reads format {MANIFEST_FORMAT_VERSION}",
            manifest.format_version
        )));
    }
    Ok(manifest)
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
    fn a_reference_is_a_key_or_latest() {
        assert_eq!("latest".parse(), Ok(BackupRef::Latest));
        assert_eq!(
            "/c/ns/bao/x.snap".parse(),
            Ok(BackupRef::Key("c/ns/bao/x.snap".into()))
        );
        assert!("  ".parse::<BackupRef>().unwrap_err().contains("latest"));
    }

    #[test]
    fn unreadable_manifests_are_refused_naming_the_backup() {
        let err = parse_manifest(br#"{"formatVersion": 2}"#, "k", None).unwrap_err();
        assert!(
            err.to_string().contains("manifest of k is not valid"),
            "{err}"
        );
        let err = parse_manifest(b"<html>", "k", None).unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }

    #[test]
    fn with_a_key_only_a_manifest_signed_with_it_is_read() {
        let digest = serde_json::json!({"size": 1, "sha256": "0".repeat(64)});
        let mut json = serde_json::json!({
            "formatVersion": 1, "key": "k", "cluster": "c", "namespace": "n",
            "kind": "scheduled", "startedAt": "2026-11-24T03:00:00Z",
            "completedAt": "2026-11-24T03:00:01Z", "sourceNode": "", "toolVersion": "",
            "snapshot": digest, "object": digest,
            "raft": {"index": 1, "term": 1, "stateSize": 1},
            "upload": {"partSize": 1, "parts": 1}
        });
        let key = ManifestKey::new(vec![3; 32]).unwrap();
        let unsigned = serde_json::to_vec(&json).unwrap();
        let err = parse_manifest(&unsigned, "k", Some(&key)).unwrap_err();
        assert_eq!(err.cause(), "invalid-snapshot");
        assert!(
            err.to_string()
                .contains("the manifest of k has no signature"),
            "{err}"
        );
        // As the backup writes it: pretty, from the struct.
        let mut manifest: Manifest = serde_json::from_value(json.clone()).unwrap();
        manifest.signature = Some(key.sign(&json));
        let signed = serde_json::to_vec_pretty(&manifest).unwrap();
        assert_eq!(parse_manifest(&signed, "k", Some(&key)).unwrap(), manifest);
        assert_eq!(parse_manifest(&signed, "k", None).unwrap(), manifest);
        json["raft"]["index"] = 2.into();
        json["signature"] = serde_json::to_value(&manifest.signature).unwrap();
        let altered = serde_json::to_vec(&json).unwrap();
        let err = parse_manifest(&altered, "k", Some(&key)).unwrap_err();
        assert!(
            err.to_string().contains("does not match its signature"),
            "{err}"
        );
    }

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
