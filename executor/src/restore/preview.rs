//! The pure comparison behind `restore --dry-run` and every restore's
//! refusals: the backup's manifest against the live cluster, finding by
//! finding. No I/O here: the live facts are gathered by the caller.

use chrono::{DateTime, Utc};

use contract::manifest::Manifest;
use contract::preview::{Finding, Override, Verdict};
use contract::units::human_bytes;

use crate::openbao::SealStatus;

/// A backup older than this gets a warning.
pub const OLD_AFTER_DAYS: i64 = 30;

/// The backup as read from the bucket.
pub struct Backup<'a> {
    pub key: &'a str,
    pub manifest: &'a Manifest,
    /// The target cluster's prefix the key should lie under ("" for a file).
    pub prefix: &'a str,
    /// Per transform, in the manifest's order: the plugin that undoes it
    /// (`builtin:zstd`, a file), or None when none is available.
    pub plugins: Vec<Option<String>>,
    /// Whether the manifest's signature was checked with a key.
    pub signature_checked: bool,
}

/// The cluster restored into, and what the user said is meant.
pub struct Live<'a> {
    pub namespace: &'a str,
    pub cluster: &'a str,
    /// None when the node did not say.
    pub seal: Option<&'a SealStatus>,
    pub raft_index: u64,
    pub allow_other_cluster: bool,
    pub force: bool,
    pub now: DateTime<Utc>,
}

fn finding(check: &str, verdict: Verdict, message: String) -> Finding {
    Finding {
        check: check.into(),
        verdict,
        message,
        override_: None,
    }
}

/// A refusal that `forced` turns into a warning.
fn forceable(check: &str, forced: bool, by: Override, message: String) -> Finding {
    Finding {
        check: check.into(),
        verdict: if forced {
            Verdict::Warn
        } else {
            Verdict::Refuse
        },
        message,
        override_: Some(by),
    }
}

/// Every finding, in a fixed order: cluster, raft, version, seal, age,
/// size, plugins, signature.
pub fn assess(backup: &Backup, live: &Live) -> Vec<Finding> {
    vec![
        cluster(backup, live),
        raft(backup.manifest, live),
        version(backup.manifest, live),
        seal(backup.manifest, live),
        age(backup.manifest, live.now),
        size(backup.manifest),
        plugins(backup),
        signature(backup),
    ]
}

/// Whether the backup is the target cluster's: its manifest's namespace
/// and cluster, and its key under the cluster's prefix.
pub fn cluster(backup: &Backup, live: &Live) -> Finding {
    let m = backup.manifest;
    let mut differences = Vec::new();
    if (m.namespace.as_str(), m.cluster.as_str()) != (live.namespace, live.cluster) {
        differences.push(format!(
            "it is a backup of cluster {}/{}, not {}/{} (--namespace, --cluster)",
            m.namespace, m.cluster, live.namespace, live.cluster
        ));
    }
    if !backup.key.starts_with(backup.prefix) {
        differences.push(format!(
            "its key is not under the cluster's prefix {} (--path-prefix)",
            backup.prefix
        ));
    }
    if differences.is_empty() {
        return finding(
            "cluster",
            Verdict::Ok,
            format!(
                "a backup of this cluster, {}/{}",
                live.namespace, live.cluster
            ),
        );
    }
    forceable(
        "cluster",
        live.allow_other_cluster,
        Override::AllowOtherCluster,
        format!(
            "{}: it would replace this cluster's data with another's",
            differences.join("; ")
        ),
    )
}

fn raft(m: &Manifest, live: &Live) -> Finding {
    let (backup, now) = (m.raft.index, live.raft_index);
    let message = match now.cmp(&backup) {
        std::cmp::Ordering::Greater => format!(
            "goes back {} entries: the live cluster is at Raft index {now}, the backup at {backup} (term {})",
            now - backup,
            m.raft.term
        ),
        std::cmp::Ordering::Equal => format!(
            "the live cluster is at the backup's Raft index {backup} (term {}): nothing written since is lost",
            m.raft.term
        ),
        std::cmp::Ordering::Less => format!(
            "the live cluster is behind the backup (Raft index {now} < {backup}, term {}): a new or empty cluster",
            m.raft.term
        ),
    };
    finding("raft", Verdict::Ok, message)
}

/// `2.7.2` as numbers, whatever follows a `-` or `+`.
fn version_numbers(version: &str) -> Option<Vec<u64>> {
    let core = version
        .trim_start_matches('v')
        .split(['-', '+'])
        .next()
        .unwrap_or_default();
    core.split('.').map(|n| n.parse().ok()).collect()
}

fn version(m: &Manifest, live: &Live) -> Finding {
    let recorded = m.openbao.as_ref().map(|o| o.version.as_str()).unwrap_or("");
    let current = live.seal.map(|s| s.version.as_str()).unwrap_or("");
    if recorded.is_empty() || current.is_empty() {
        let unknown = if recorded.is_empty() {
            "the backup does not record its OpenBao version (made before it was recorded)"
        } else {
            "the live cluster does not say its version"
        };
        return finding("version", Verdict::Warn, format!("unknown: {unknown}"));
    }
    match (version_numbers(recorded), version_numbers(current)) {
        (Some(b), Some(l)) if b > l => finding(
            "version",
            Verdict::Warn,
            format!(
                "the backup comes from a newer OpenBao ({recorded}) than the live one ({current}), which may not read it: upgrade the cluster first"
            ),
        ),
        (Some(b), Some(l)) if b == l => finding(
            "version",
            Verdict::Ok,
            format!("the same OpenBao version, {current}"),
        ),
        _ => finding(
            "version",
            Verdict::Ok,
            format!("made by OpenBao {recorded}, restored into {current}"),
        ),
    }
}

fn seal(m: &Manifest, live: &Live) -> Finding {
    let recorded = m.openbao.as_ref().filter(|o| !o.seal_type.is_empty());
    let (Some(recorded), Some(current)) = (recorded, live.seal) else {
        let unknown = if recorded.is_none() {
            "the backup does not record its seal (made before it was recorded)"
        } else {
            "the live cluster does not say its seal"
        };
        return finding(
            "seal",
            Verdict::Warn,
            format!(
                "unknown: {unknown}; OpenBao refuses the upload if its seal key cannot open it"
            ),
        );
    };
    if recorded.seal_type != current.seal_type {
        return forceable(
            "seal",
            live.force,
            Override::Force,
            format!(
                "the backup was sealed by a `{}` seal, the live cluster has a `{}` seal: it cannot open it (a forced restore seals the cluster until it restarts with the backup's seal)",
                recorded.seal_type, current.seal_type
            ),
        );
    }
    if !recorded.cluster_id.is_empty() && recorded.cluster_id == current.cluster_id {
        return finding(
            "seal",
            Verdict::Ok,
            format!(
                "the same `{}` seal and cluster id {}: the live cluster's keys are the backup's",
                current.seal_type, current.cluster_id
            ),
        );
    }
    finding(
        "seal",
        Verdict::Warn,
        format!(
            "the same `{}` seal type, another cluster id ({} then, {} now): it opens the backup only with the seal key of the backup's cluster, which only OpenBao can tell (it refuses the upload otherwise)",
            current.seal_type,
            if recorded.cluster_id.is_empty() {
                "unrecorded"
            } else {
                &recorded.cluster_id
            },
            current.cluster_id
        ),
    )
}

/// `3d 4h`, `5h 2m`, `40s`.
fn ago(seconds: i64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn age(m: &Manifest, now: DateTime<Utc>) -> Finding {
    let seconds = (now - m.completed_at).num_seconds();
    let at = m.completed_at.format("%Y-%m-%dT%H:%M:%SZ");
    if seconds < 0 {
        return finding(
            "age",
            Verdict::Warn,
            format!(
                "made at {at}, {} in the future: a clock ran ahead",
                ago(-seconds)
            ),
        );
    }
    let verdict = if seconds > OLD_AFTER_DAYS * 86_400 {
        Verdict::Warn
    } else {
        Verdict::Ok
    };
    finding(
        "age",
        verdict,
        format!("made at {at}, {} ago", ago(seconds)),
    )
}

fn size(m: &Manifest) -> Finding {
    finding(
        "size",
        Verdict::Ok,
        format!(
            "the object {}, the snapshot {} (Raft state {})",
            human_bytes(m.object.size as f64),
            human_bytes(m.snapshot.size as f64),
            human_bytes(m.raft.state_size as f64)
        ),
    )
}

fn plugins(backup: &Backup) -> Finding {
    let transforms = &backup.manifest.transforms;
    if transforms.is_empty() {
        return finding("plugins", Verdict::Ok, "none needed: no transforms".into());
    }
    let mut missing = Vec::new();
    let mut found = Vec::new();
    for (record, plugin) in transforms.iter().zip(&backup.plugins) {
        match plugin {
            Some(plugin) => found.push(format!("{} {} by {plugin}", record.name, record.version)),
            None => missing.push(format!(
                "{} {} (sha256 {})",
                record.name, record.version, record.sha256
            )),
        }
    }
    if missing.is_empty() {
        return finding(
            "plugins",
            Verdict::Ok,
            format!("undone: {}", found.join(", ")),
        );
    }
    finding(
        "plugins",
        Verdict::Refuse,
        format!(
            "no plugin undoes {}: give that plugin's file with --plugin",
            missing.join(", ")
        ),
    )
}

fn signature(backup: &Backup) -> Finding {
    match (&backup.manifest.signature, backup.signature_checked) {
        (_, true) => finding("signature", Verdict::Ok, "signed, and verified".into()),
        (Some(s), false) => finding(
            "signature",
            Verdict::Warn,
            format!(
                "signed with key {}, not checked: give --manifest-key-file",
                s.key_id
            ),
        ),
        (None, false) => finding("signature", Verdict::Ok, "not signed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::manifest::OpenBaoRecord;

    fn manifest(namespace: &str, cluster: &str) -> Manifest {
        let digest = serde_json::json!({"size": 1, "sha256": "0".repeat(64)});
        serde_json::from_value(serde_json::json!({
            "formatVersion": 1, "key": "", "cluster": cluster, "namespace": namespace,
            "kind": "scheduled", "startedAt": "2026-11-24T03:00:00Z",
            "completedAt": "2026-11-24T03:00:01Z", "sourceNode": "", "toolVersion": "",
            "snapshot": digest, "object": digest,
            "raft": {"index": 100, "term": 3, "stateSize": 1},
            "upload": {"partSize": 1, "parts": 1},
            "openbao": {"version": "2.7.2", "sealType": "static", "clusterId": "c-1"}
        }))
        .unwrap()
    }

    fn seal(seal_type: &str, version: &str, cluster_id: &str) -> SealStatus {
        SealStatus {
            seal_type: seal_type.into(),
            version: version.into(),
            cluster_id: cluster_id.into(),
            initialized: true,
            sealed: false,
        }
    }

    const PREFIX: &str = "backups/openbao/prod/";
    const OWN: &str = "backups/openbao/prod/x.snap";

    fn backup(manifest: &Manifest) -> Backup<'_> {
        Backup {
            key: OWN,
            manifest,
            prefix: PREFIX,
            plugins: Vec::new(),
            signature_checked: false,
        }
    }

    fn live(seal: Option<&SealStatus>) -> Live<'_> {
        Live {
            namespace: "openbao",
            cluster: "prod",
            seal,
            raft_index: 150,
            allow_other_cluster: false,
            force: false,
            now: "2026-11-24T05:00:01Z".parse().unwrap(),
        }
    }

    fn get<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
        findings.iter().find(|f| f.check == check).unwrap()
    }

    #[test]
    fn the_clusters_own_recent_backup_with_the_same_seal_is_all_ok() {
        let m = manifest("openbao", "prod");
        let s = seal("static", "2.7.2", "c-1");
        let findings = assess(&backup(&m), &live(Some(&s)));
        let checks: Vec<&str> = findings.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(
            checks,
            [
                "cluster",
                "raft",
                "version",
                "seal",
                "age",
                "size",
                "plugins",
                "signature"
            ]
        );
        for f in &findings {
            assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
        }
        assert!(
            get(&findings, "raft")
                .message
                .starts_with("goes back 50 entries")
        );
        assert!(get(&findings, "age").message.contains("2h 0m ago"));
        assert!(contract::preview::refusal(OWN, &findings, Override::flag).is_none());
    }

    #[test]
    fn another_clusters_backup_is_refused_unless_allowed() {
        let s = seal("static", "2.7.2", "c-1");
        let other = manifest("openbao", "staging");
        let mut b = backup(&other);
        b.key = "backups/openbao/staging/x.snap";
        let f = cluster(&b, &live(Some(&s)));
        assert_eq!(
            (f.verdict, f.override_),
            (Verdict::Refuse, Some(Override::AllowOtherCluster))
        );
        assert!(
            f.message
                .contains("a backup of cluster openbao/staging, not openbao/prod")
                && f.message
                    .contains("not under the cluster's prefix backups/openbao/prod/"),
            "{}",
            f.message
        );
        let line = contract::preview::refusal(b.key, &[f], Override::flag).unwrap();
        assert!(
            line.contains("give --allow-other-cluster (RESTORE_ALLOW_OTHER_CLUSTER)"),
            "{line}"
        );
        // Another namespace, or a manifest that does not match its place.
        let dev = manifest("dev", "prod");
        let f = cluster(&backup(&dev), &live(Some(&s)));
        assert!(
            f.message.contains("cluster dev/prod, not openbao/prod"),
            "{}",
            f.message
        );
        let own = manifest("openbao", "prod");
        let mut moved = backup(&own);
        moved.key = "old/openbao/prod/x.snap";
        let f = cluster(&moved, &live(Some(&s)));
        assert!(f.message.contains("(--path-prefix)") && f.verdict == Verdict::Refuse);
        // Allowed: a warning.
        let mut allowed = live(Some(&s));
        allowed.allow_other_cluster = true;
        let f = cluster(&b, &allowed);
        assert_eq!(f.verdict, Verdict::Warn);
    }

    #[test]
    fn the_raft_finding_says_how_far_back_or_that_the_live_cluster_is_behind() {
        let m = manifest("openbao", "prod");
        let mut l = live(None);
        l.raft_index = 100;
        assert!(
            raft(&m, &l)
                .message
                .contains("nothing written since is lost")
        );
        l.raft_index = 40;
        let f = raft(&m, &l);
        assert!(
            f.message
                .contains("behind the backup (Raft index 40 < 100, term 3)"),
            "{}",
            f.message
        );
        assert_eq!(f.verdict, Verdict::Ok);
    }

    #[test]
    fn a_newer_backup_than_the_live_openbao_or_an_unknown_version_warns() {
        let m = manifest("openbao", "prod");
        let older = seal("static", "2.6.0", "c-1");
        let f = version(&m, &live(Some(&older)));
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(
            f.message
                .contains("newer OpenBao (2.7.2) than the live one (2.6.0)")
        );
        let newer = seal("static", "2.10.1", "c-1");
        assert_eq!(version(&m, &live(Some(&newer))).verdict, Verdict::Ok);
        let mut old = m.clone();
        old.openbao = None;
        let f = version(&old, &live(Some(&newer)));
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(f.message.starts_with("unknown"));
        assert_eq!(version(&m, &live(None)).verdict, Verdict::Warn);
    }

    #[test]
    fn another_seal_type_is_refused_unless_forced_and_another_cluster_id_warns() {
        let m = manifest("openbao", "prod");
        let shamir = seal("shamir", "2.7.2", "c-1");
        let f = super::seal(&m, &live(Some(&shamir)));
        assert_eq!(
            (f.verdict, f.override_),
            (Verdict::Refuse, Some(Override::Force))
        );
        assert!(
            f.message
                .contains("`static` seal, the live cluster has a `shamir` seal")
        );
        let mut forced = live(Some(&shamir));
        forced.force = true;
        assert_eq!(super::seal(&m, &forced).verdict, Verdict::Warn);

        let new_cluster = seal("static", "2.7.2", "c-2");
        let f = super::seal(&m, &live(Some(&new_cluster)));
        assert_eq!((f.verdict, f.override_), (Verdict::Warn, None));
        assert!(
            f.message.contains("another cluster id (c-1 then, c-2 now)"),
            "{}",
            f.message
        );

        let mut old = m.clone();
        old.openbao = Some(OpenBaoRecord::default());
        let f = super::seal(&old, &live(Some(&new_cluster)));
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(
            f.message
                .starts_with("unknown: the backup does not record its seal")
        );
    }

    #[test]
    fn an_old_or_future_backup_warns() {
        let m = manifest("openbao", "prod");
        let now: DateTime<Utc> = "2026-11-24T03:00:01Z".parse().unwrap();
        assert_eq!(
            age(&m, now + chrono::Duration::days(29)).verdict,
            Verdict::Ok
        );
        let f = age(&m, now + chrono::Duration::days(31));
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(f.message.contains("31d 0h ago"), "{}", f.message);
        let f = age(&m, now - chrono::Duration::minutes(5));
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(f.message.contains("5m in the future"), "{}", f.message);
        assert!(size(&m).message.contains("the object 1 B"));
    }

    #[test]
    fn a_transform_no_plugin_undoes_is_refused_and_cannot_be_forced() {
        let mut m = manifest("openbao", "prod");
        m.transforms = serde_json::from_value(serde_json::json!([
            {"name": "zstd", "version": "0.1.0", "sha256": "a".repeat(64)},
            {"name": "age", "version": "0.1.0", "sha256": "b".repeat(64)}
        ]))
        .unwrap();
        let mut b = backup(&m);
        b.plugins = vec![Some("builtin:zstd".into()), None];
        let f = plugins(&b);
        assert_eq!((f.verdict, f.override_), (Verdict::Refuse, None));
        assert!(f.message.contains(&format!(
            "no plugin undoes age 0.1.0 (sha256 {})",
            "b".repeat(64)
        )));
        assert!(f.message.contains("--plugin"));
        b.plugins = vec![Some("builtin:zstd".into()), Some("age.wasm".into())];
        let f = plugins(&b);
        assert_eq!(f.verdict, Verdict::Ok);
        assert_eq!(
            f.message,
            "undone: zstd 0.1.0 by builtin:zstd, age 0.1.0 by age.wasm"
        );
    }

    #[test]
    fn an_unchecked_signature_warns() {
        let mut m = manifest("openbao", "prod");
        m.signature = Some(contract::signing::Signature {
            alg: "hmac-sha256".into(),
            key_id: "k".into(),
            value: "v".into(),
        });
        let mut b = backup(&m);
        assert_eq!(signature(&b).verdict, Verdict::Warn);
        b.signature_checked = true;
        assert_eq!(signature(&b).verdict, Verdict::Ok);
    }
}
