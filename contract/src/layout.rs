//! Object keys and object metadata: pure functions of what the
//! backup knows, so the layout is unit-tested and documented in one place.
//!
//! ```text
//! <pathPrefix>/<namespace>/<cluster>/<UTC time>-<kind>-<random>.snap
//! <pathPrefix>/<namespace>/<cluster>/<UTC time>-<kind>-<random>.snap.manifest.json
//! e.g. clusters/prod/openbao/prod-bao/20261124T031500.123Z-scheduled-9f3a1c.snap
//! ```
//!
//! The time is fixed-width and comes first, so keys sort by time; the random
//! suffix keeps two backups of the same millisecond apart. A backup is
//! complete exactly when its manifest exists.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::result::BackupKind;

pub const MANIFEST_SUFFIX: &str = ".manifest.json";
pub const TOOL_VERSION: &str = concat!("openbao-backup/", env!("CARGO_PKG_VERSION"));

/// The prefix that holds every backup of one cluster (ends with `/`).
pub fn cluster_prefix(path_prefix: &str, namespace: &str, cluster: &str) -> String {
    let path_prefix = path_prefix.trim_matches('/');
    if path_prefix.is_empty() {
        format!("{namespace}/{cluster}/")
    } else {
        format!("{path_prefix}/{namespace}/{cluster}/")
    }
}

pub fn object_key(
    cluster_prefix: &str,
    started: DateTime<Utc>,
    kind: BackupKind,
    random: [u8; 3],
) -> String {
    format!(
        "{cluster_prefix}{}-{}-{}.snap",
        started.format("%Y%m%dT%H%M%S%.3fZ"),
        kind.as_str(),
        hex::encode(random)
    )
}

/// The time and kind a backup's key records; None for keys this tool did
/// not write.
pub fn parse_key(cluster_prefix: &str, key: &str) -> Option<(DateTime<Utc>, BackupKind)> {
    let name = key.strip_prefix(cluster_prefix)?.strip_suffix(".snap")?;
    let (time, rest) = name.split_once('-')?;
    let (kind, _random) = rest.rsplit_once('-')?;
    let time = chrono::NaiveDateTime::parse_from_str(time, "%Y%m%dT%H%M%S%.3fZ").ok()?;
    let kind = match kind {
        "scheduled" => BackupKind::Scheduled,
        "manual" => BackupKind::Manual,
        "pre-upgrade" => BackupKind::PreUpgrade,
        _ => return None,
    };
    Some((time.and_utc(), kind))
}

pub fn manifest_key(object_key: &str) -> String {
    format!("{object_key}{MANIFEST_SUFFIX}")
}

/// What is known when the upload starts; S3 fixes object metadata then, so
/// the size and checksum live in the manifest.
pub fn object_metadata(
    cluster: &str,
    namespace: &str,
    kind: BackupKind,
    started: DateTime<Utc>,
    source_node: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("openbao-cluster".into(), cluster.into()),
        ("openbao-namespace".into(), namespace.into()),
        ("backup-kind".into(), kind.as_str().into()),
        (
            "created-at".into(),
            started.to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
        ("source-node".into(), source_node.into()),
        ("tool-version".into(), TOOL_VERSION.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_795_000_000_000 + ms).unwrap()
    }

    #[test]
    fn key_layout() {
        let prefix = cluster_prefix("/clusters/prod/", "ns", "bao");
        assert_eq!(prefix, "clusters/prod/ns/bao/");
        assert_eq!(cluster_prefix("", "ns", "bao"), "ns/bao/");
        let key = object_key(&prefix, at(123), BackupKind::Scheduled, [0x9f, 0x3a, 0x1c]);
        assert_eq!(
            key,
            "clusters/prod/ns/bao/20261118T110640.123Z-scheduled-9f3a1c.snap"
        );
        assert_eq!(manifest_key(&key), format!("{key}.manifest.json"));
        assert_eq!(
            parse_key(&prefix, &key),
            Some((at(123), BackupKind::Scheduled))
        );
        let pre = object_key(&prefix, at(5), BackupKind::PreUpgrade, [1, 2, 3]);
        assert_eq!(
            parse_key(&prefix, &pre),
            Some((at(5), BackupKind::PreUpgrade))
        );
        for foreign in [
            "clusters/prod/ns/bao/notes.txt",
            "clusters/prod/ns/bao/20261118T110640.123Z-weekly-9f3a1c.snap",
            "clusters/prod/ns/other/20261118T110640.123Z-scheduled-9f3a1c.snap",
            "clusters/prod/ns/bao/sub/20261118T110640.123Z-scheduled-9f3a1c.snap",
        ] {
            assert_eq!(parse_key(&prefix, foreign), None, "{foreign}");
        }
    }

    #[test]
    fn keys_sort_by_time_whatever_the_kind_and_suffix() {
        let a = object_key("p/", at(0), BackupKind::Scheduled, [0xff; 3]);
        let b = object_key("p/", at(1), BackupKind::Manual, [0; 3]);
        let c = object_key(
            "p/",
            at(1000 * 3600 * 24 * 40),
            BackupKind::PreUpgrade,
            [0; 3],
        );
        let mut keys = vec![c.clone(), a.clone(), b.clone()];
        keys.sort();
        assert_eq!(keys, vec![a, b, c]);
    }

    #[test]
    fn metadata_holds_what_is_known_at_start() {
        let meta = object_metadata(
            "bao",
            "ns",
            BackupKind::PreUpgrade,
            at(0),
            "https://bao-0:8200/",
        );
        assert_eq!(meta["backup-kind"], "pre-upgrade");
        assert_eq!(meta["created-at"], "2026-11-18T11:06:40.000Z");
        assert_eq!(meta["source-node"], "https://bao-0:8200/");
        assert!(meta["tool-version"].starts_with("openbao-backup/"));
    }
}
