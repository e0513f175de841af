//! Retention decisions, pure: the built-in policy (`maxCount`, `maxAge`),
//! and the host's rules that hold whatever a policy (built-in or plugin)
//! decides.

use std::time::Duration;

use crate::plugin::RetentionBackup;

/// A backup to delete and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub key: String,
    pub reason: String,
}

/// The built-in policy: delete backups older than `max_age`, and keep only
/// the newest `max_count`, not counting pre-upgrade snapshots. `backups`
/// is newest first.
pub fn keep_last(
    backups: &[RetentionBackup],
    now: i64,
    max_count: Option<u32>,
    max_age: Option<(Duration, &str)>,
) -> Vec<Deletion> {
    let mut counted = 0u32;
    let mut deletions = Vec::new();
    for backup in backups {
        let age = now.saturating_sub(backup.time);
        if let Some((limit, text)) = max_age
            && age > limit.as_secs() as i64
        {
            deletions.push(Deletion {
                key: backup.key.clone(),
                reason: format!("older than maxAge {text}"),
            });
            continue;
        }
        if backup.kind == "pre-upgrade" {
            continue;
        }
        counted += 1;
        if let Some(max) = max_count
            && counted > max
        {
            deletions.push(Deletion {
                key: backup.key.clone(),
                reason: format!("beyond the newest {max} (maxCount)"),
            });
        }
    }
    deletions
}

/// What the host deletes of what a policy decided: only keys of existing
/// backups under `prefix`, each once, never `just_taken`, and never the
/// last one. Returns the deletions kept and, for the log, what was refused
/// and why.
pub fn enforce(
    backups: &[RetentionBackup],
    decided: Vec<Deletion>,
    prefix: &str,
    just_taken: &str,
) -> (Vec<Deletion>, Vec<(String, &'static str)>) {
    let mut allowed: Vec<Deletion> = Vec::new();
    let mut refused = Vec::new();
    for deletion in decided {
        let why = if deletion.key == just_taken {
            Some("the backup just taken")
        } else if !deletion.key.starts_with(prefix) {
            Some("outside the cluster's prefix")
        } else if !backups.iter().any(|b| b.key == deletion.key) {
            Some("not an existing backup")
        } else if allowed.iter().any(|d| d.key == deletion.key) {
            Some("listed twice")
        } else {
            None
        };
        match why {
            Some(why) => refused.push((deletion.key, why)),
            None => allowed.push(deletion),
        }
    }
    // At least one backup stays: the newest of those the policy would delete.
    if !backups.is_empty() && allowed.len() >= backups.len() {
        let newest = backups[0].key.clone();
        allowed.retain(|d| d.key != newest);
        refused.push((newest, "the last backup"));
    }
    (allowed, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::validate::parse_go_duration;

    fn backup(key: &str, time: i64, kind: &str) -> RetentionBackup {
        RetentionBackup {
            key: key.into(),
            time,
            size: 1,
            kind: kind.into(),
            metadata: Vec::new(),
        }
    }

    /// The table the keep-last plugin is checked against too.
    #[test]
    fn shared_cases() {
        for case in testkit::retention_cases::keep_last() {
            let backups: Vec<RetentionBackup> = case
                .backups
                .iter()
                .map(|b| backup(&b.key, case.now - b.age_seconds, &b.kind))
                .collect();
            let max_age = case
                .max_age()
                .map(|text| (parse_go_duration(text).unwrap(), text));
            let deleted: Vec<String> = keep_last(&backups, case.now, case.max_count(), max_age)
                .into_iter()
                .map(|d| d.key)
                .collect();
            assert_eq!(deleted, case.delete, "{}", case.name);
        }
    }

    #[test]
    fn the_host_keeps_the_new_backup_the_prefix_and_the_last_one() {
        let prefix = "clusters/prod/bao/";
        let backups = vec![
            backup("clusters/prod/bao/3", 3, "scheduled"),
            backup("clusters/prod/bao/2", 2, "scheduled"),
            backup("clusters/prod/bao/1", 1, "scheduled"),
        ];
        let delete = |keys: &[&str]| -> Vec<Deletion> {
            keys.iter()
                .map(|k| Deletion {
                    key: k.to_string(),
                    reason: "policy".into(),
                })
                .collect()
        };
        let (allowed, refused) = enforce(
            &backups,
            delete(&[
                "clusters/prod/bao/3",
                "clusters/prod/other/1",
                "clusters/prod/bao/9",
                "clusters/prod/bao/1",
                "clusters/prod/bao/1",
            ]),
            prefix,
            "clusters/prod/bao/3",
        );
        let allowed: Vec<&str> = allowed.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(allowed, ["clusters/prod/bao/1"]);
        let reasons: Vec<&str> = refused.iter().map(|(_, why)| *why).collect();
        assert_eq!(
            reasons,
            [
                "the backup just taken",
                "outside the cluster's prefix",
                "not an existing backup",
                "listed twice"
            ]
        );

        // A policy that deletes everything still leaves the newest.
        let (allowed, refused) = enforce(
            &backups,
            delete(&[
                "clusters/prod/bao/3",
                "clusters/prod/bao/2",
                "clusters/prod/bao/1",
            ]),
            prefix,
            "",
        );
        assert_eq!(allowed.len(), 2);
        assert_eq!(
            refused,
            vec![("clusters/prod/bao/3".to_string(), "the last backup")]
        );
    }
}
