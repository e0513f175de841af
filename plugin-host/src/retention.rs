//! Retention decisions, pure: the built-in policy (`maxCount`, `maxAge`),
//! and the host's rules that hold whatever a policy (built-in or plugin)
//! decides.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat};

use crate::component::RetentionBackup;

/// How far two clocks may disagree (seconds) before the host stops trusting
/// this one to delete anything.
pub const MAX_CLOCK_SKEW: i64 = 300;

/// The smallest `maxAge`: below it, a clock running a little ahead would
/// delete every older backup.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(3600);

/// Refuses a `maxAge` below [`MIN_MAX_AGE`]; the error completes a sentence
/// that names the field.
pub fn check_max_age(limit: Duration) -> Result<(), String> {
    if limit < MIN_MAX_AGE {
        return Err(
            "is below the minimum 1h (a clock running a little ahead would delete every older backup): use 1h or more"
                .into(),
        );
    }
    Ok(())
}

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
        // 0 is no limit, on the command line as in the CRD.
        if let Some(max) = max_count.filter(|max| *max > 0)
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

/// The rules the host holds every policy to.
pub struct Guard<'a> {
    /// The cluster's prefix: nothing outside it is deleted.
    pub prefix: &'a str,
    /// The backup just taken.
    pub just_taken: &'a str,
    /// Backups no policy may delete (`--keep-key`: the pre-upgrade backup
    /// the operator protects until the next successful upgrade).
    pub keep: &'a [String],
    /// This executor's clock (Unix seconds).
    pub now: i64,
    /// When the storage stored the backup just taken (its manifest's
    /// Last-Modified): a clock independent of this executor's.
    pub stored_at: i64,
}

/// What the host deletes of what a policy decided: only keys of existing
/// backups under the prefix, each once, never the backup just taken, a
/// protected one or the last one, and nothing at all on a clock that
/// disagrees with the newest backup's time. Returns the deletions kept and,
/// for the report, what was refused and why.
pub fn enforce(
    backups: &[RetentionBackup],
    decided: Vec<Deletion>,
    guard: &Guard,
) -> (Vec<Deletion>, Vec<(String, String)>) {
    if let Some(why) = clock_disagreement(backups, guard.now, guard.stored_at) {
        let refused = decided.into_iter().map(|d| (d.key, why.clone())).collect();
        return (Vec::new(), refused);
    }
    let mut allowed: Vec<Deletion> = Vec::new();
    let mut refused = Vec::new();
    for deletion in decided {
        let why = if deletion.key == guard.just_taken {
            Some("the backup just taken")
        } else if guard.keep.contains(&deletion.key) {
            Some("protected by --keep-key (RETENTION_KEEP_KEYS)")
        } else if !deletion.key.starts_with(guard.prefix) {
            Some("outside the cluster's prefix")
        } else if !backups.iter().any(|b| b.key == deletion.key) {
            Some("not an existing backup")
        } else if allowed.iter().any(|d| d.key == deletion.key) {
            Some("listed twice")
        } else {
            None
        };
        match why {
            Some(why) => refused.push((deletion.key, why.to_string())),
            None => allowed.push(deletion),
        }
    }
    // At least one backup stays: the newest of those the policy would delete.
    if !backups.is_empty() && allowed.len() >= backups.len() {
        let newest = backups[0].key.clone();
        allowed.retain(|d| d.key != newest);
        refused.push((newest, "the last backup".into()));
    }
    (allowed, refused)
}

/// Whether a backup's time is later than `now` (beyond the skew): stamped
/// by a clock running ahead, or `now` is behind.
pub fn stamped_in_future(backup: &RetentionBackup, now: i64) -> bool {
    backup.time > now + MAX_CLOCK_SKEW
}

/// The backup `latest` means: the newest not stamped in the future. One
/// stamped by a clock running ahead would otherwise stay the newest, and be
/// restored as `latest`, for as long as that clock was ahead. `backups` is
/// newest first.
pub fn latest(backups: &[RetentionBackup], now: i64) -> Option<&RetentionBackup> {
    backups.iter().find(|b| !stamped_in_future(b, now))
}

/// Why `now` cannot be trusted to delete by, if it cannot: the storage
/// stored the newest backup at another time than this clock says (this
/// clock runs ahead or behind), or a backup is stamped later than `now`
/// (the clock that stamped it ran ahead, or this one is behind). Ages, and
/// the order of backups, would be wrong either way.
fn clock_disagreement(backups: &[RetentionBackup], now: i64, stored_at: i64) -> Option<String> {
    if (now - stored_at).abs() > MAX_CLOCK_SKEW {
        return Some(format!(
            "this executor's clock says {} but the storage stored the new backup at {}: nothing is deleted on a clock that disagrees; fix the node's clock",
            time(now),
            time(stored_at)
        ));
    }
    let future = backups.iter().find(|b| stamped_in_future(b, now))?;
    Some(format!(
        "backup {} is stamped {}, later than this clock ({}): a clock ran ahead, so nothing is deleted until then or until that backup is removed by hand",
        future.key,
        time(future.time),
        time(now)
    ))
}

fn time(unix: i64) -> String {
    DateTime::from_timestamp(unix, 0).map_or_else(
        || unix.to_string(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::units::parse_duration;

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
                .map(|text| (parse_duration(text).unwrap(), text));
            let deleted: Vec<String> = keep_last(&backups, case.now, case.max_count(), max_age)
                .into_iter()
                .map(|d| d.key)
                .collect();
            assert_eq!(deleted, case.delete, "{}", case.name);
        }
    }

    fn delete(keys: &[&str]) -> Vec<Deletion> {
        keys.iter()
            .map(|k| Deletion {
                key: k.to_string(),
                reason: "policy".into(),
            })
            .collect()
    }

    const NOW: i64 = 1_790_000_000;

    fn guard<'a>(just_taken: &'a str, keep: &'a [String]) -> Guard<'a> {
        Guard {
            prefix: "clusters/prod/bao/",
            just_taken,
            keep,
            now: NOW,
            stored_at: NOW,
        }
    }

    fn reasons(refused: &[(String, String)]) -> Vec<&str> {
        refused.iter().map(|(_, why)| why.as_str()).collect()
    }

    #[test]
    fn the_host_keeps_the_new_backup_the_prefix_and_the_last_one() {
        let backups = vec![
            backup("clusters/prod/bao/3", NOW - 1, "scheduled"),
            backup("clusters/prod/bao/2", NOW - 2, "scheduled"),
            backup("clusters/prod/bao/1", NOW - 3, "scheduled"),
        ];
        let (allowed, refused) = enforce(
            &backups,
            delete(&[
                "clusters/prod/bao/3",
                "clusters/prod/other/1",
                "clusters/prod/bao/9",
                "clusters/prod/bao/1",
                "clusters/prod/bao/1",
            ]),
            &guard("clusters/prod/bao/3", &[]),
        );
        let allowed: Vec<&str> = allowed.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(allowed, ["clusters/prod/bao/1"]);
        assert_eq!(
            reasons(&refused),
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
            &guard("", &[]),
        );
        assert_eq!(allowed.len(), 2);
        assert_eq!(
            refused,
            vec![("clusters/prod/bao/3".to_string(), "the last backup".into())]
        );
    }

    /// The pre-upgrade backup the operator protects survives every policy:
    /// maxAge (built in) and a plugin's decision alike.
    #[test]
    fn a_protected_backup_survives_every_policy() {
        let protected = "clusters/prod/bao/20261101T030000.000Z-pre-upgrade-aaaaaa.snap";
        let backups = vec![
            backup("clusters/prod/bao/new", NOW, "scheduled"),
            backup(protected, NOW - 30 * 86400, "pre-upgrade"),
            backup("clusters/prod/bao/old", NOW - 31 * 86400, "scheduled"),
        ];
        let keep = [protected.to_string()];
        let by_age = keep_last(
            &backups,
            NOW,
            None,
            Some((Duration::from_secs(7 * 86400), "168h")),
        );
        let by_plugin = delete(&[protected, "clusters/prod/bao/old"]);
        for decided in [by_age, by_plugin] {
            let (allowed, refused) =
                enforce(&backups, decided, &guard("clusters/prod/bao/new", &keep));
            let allowed: Vec<&str> = allowed.iter().map(|d| d.key.as_str()).collect();
            assert_eq!(allowed, ["clusters/prod/bao/old"]);
            assert_eq!(
                refused,
                vec![(
                    protected.to_string(),
                    "protected by --keep-key (RETENTION_KEEP_KEYS)".into()
                )]
            );
        }
    }

    #[test]
    fn max_age_has_a_minimum() {
        assert!(check_max_age(MIN_MAX_AGE).is_ok());
        let err = check_max_age(Duration::from_secs(59 * 60)).unwrap_err();
        assert!(err.contains("minimum 1h"), "{err}");
    }

    /// An executor whose clock runs a week ahead: by its clock every older
    /// backup is beyond maxAge. The storage stored the new backup a week
    /// "earlier", so nothing is deleted.
    #[test]
    fn nothing_is_deleted_on_a_clock_running_ahead() {
        let ahead = NOW + 7 * 86400;
        let backups = vec![
            backup("clusters/prod/bao/new", ahead, "scheduled"),
            backup("clusters/prod/bao/2", NOW - 86400, "scheduled"),
            backup("clusters/prod/bao/1", NOW - 2 * 86400, "scheduled"),
        ];
        let decided = keep_last(&backups, ahead, None, Some((MIN_MAX_AGE * 24, "24h")));
        assert_eq!(decided.len(), 2, "by the wrong clock both are too old");
        let guard = Guard {
            now: ahead,
            stored_at: NOW,
            ..guard("clusters/prod/bao/new", &[])
        };
        let (allowed, refused) = enforce(&backups, decided, &guard);
        assert!(allowed.is_empty(), "{allowed:?}");
        assert_eq!(refused.len(), 2);
        assert!(
            refused[0].1.contains("clock says 2026-09-28T14:13:20Z")
                && refused[0].1.contains("disagrees"),
            "{}",
            refused[0].1
        );
    }

    /// A backup stamped in the future (by a clock that ran ahead) would be
    /// the newest for maxCount and `latest` until that time: nothing is
    /// deleted while it exists, and `latest` is the newest backup before now.
    #[test]
    fn a_backup_stamped_in_the_future_stops_deletions_and_is_not_latest() {
        let backups = vec![
            backup("clusters/prod/bao/future", NOW + 30 * 86400, "scheduled"),
            backup("clusters/prod/bao/new", NOW, "scheduled"),
            backup("clusters/prod/bao/1", NOW - 86400, "scheduled"),
        ];
        let decided = keep_last(&backups, NOW, Some(1), None);
        let keys: Vec<&str> = decided.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["clusters/prod/bao/new", "clusters/prod/bao/1"]);
        let (allowed, refused) = enforce(&backups, decided, &guard("clusters/prod/bao/new", &[]));
        assert!(allowed.is_empty(), "{allowed:?}");
        assert!(
            refused[1]
                .1
                .contains("backup clusters/prod/bao/future is stamped"),
            "{}",
            refused[1].1
        );

        assert_eq!(latest(&backups, NOW).unwrap().key, "clusters/prod/bao/new");
        // Within the skew a backup is not in the future.
        assert_eq!(
            latest(&backups, NOW + 30 * 86400 - MAX_CLOCK_SKEW)
                .unwrap()
                .key,
            "clusters/prod/bao/future"
        );
        assert_eq!(latest(&backups[..1], NOW), None);
    }
}
