//! gfs: grandfather-father-son retention. Config (JSON), every field
//! optional and 0 by default:
//! `{"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3, "preUpgrade": 3}`.
//!
//! For each period kind, the newest backup of each of the last N periods
//! (UTC days, ISO weeks starting Monday, months, years) that have a backup
//! is kept; a backup kept by any rule stays. Pre-upgrade snapshots are kept
//! apart: the newest `preUpgrade` of them (default 3).

use std::collections::BTreeSet;

use guest_sdk::{Backup, Deletion, Error, Info, Retention};
use serde::Deserialize;

pub struct Gfs;

/// Maps a time to the period (day, week, month, year) it falls in.
type Period = fn(i64) -> i64;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    daily: usize,
    weekly: usize,
    monthly: usize,
    yearly: usize,
    pre_upgrade: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            daily: 0,
            weekly: 0,
            monthly: 0,
            yearly: 0,
            pre_upgrade: 3,
        }
    }
}

impl Retention for Gfs {
    const INFO: Info = Info::new(
        "gfs",
        env!("CARGO_PKG_VERSION"),
        "grandfather-father-son: the newest backup of each of the last N days, weeks, months and years",
    );
    const CONFIG_EXAMPLE: &'static str =
        r#"{"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3, "preUpgrade": 3}"#;
    type Config = Config;

    fn decide(backups: &[Backup], _now: i64, config: &Config) -> Result<Vec<Deletion>, Error> {
        // Newest first, whatever order they came in.
        let mut ordered: Vec<&Backup> = backups.iter().collect();
        ordered.sort_by_key(|b| std::cmp::Reverse(b.time));
        let rules: [(usize, Period); 4] = [
            (config.daily, day),
            (config.weekly, week),
            (config.monthly, month),
            (config.yearly, year),
        ];
        let mut kept = BTreeSet::new();
        for (count, period) in rules {
            let mut seen = BTreeSet::new();
            for backup in ordered.iter().filter(|b| b.kind != "pre-upgrade") {
                if seen.len() == count {
                    break;
                }
                if seen.insert(period(backup.time)) {
                    kept.insert(backup.key.as_str());
                }
            }
        }
        let pre_upgrade = ordered.iter().filter(|b| b.kind == "pre-upgrade");
        kept.extend(pre_upgrade.take(config.pre_upgrade).map(|b| b.key.as_str()));
        Ok(ordered
            .iter()
            .filter(|b| !kept.contains(b.key.as_str()))
            .map(|b| {
                let reason = if b.kind == "pre-upgrade" {
                    format!(
                        "beyond the newest {} pre-upgrade snapshots",
                        config.pre_upgrade
                    )
                } else {
                    "not the newest backup of a kept day, week, month or year".to_string()
                };
                Deletion::new(&b.key, reason)
            })
            .collect())
    }
}

/// Days since 1970-01-01 (UTC).
fn day(time: i64) -> i64 {
    time.div_euclid(86_400)
}

/// The Monday starting the ISO week (1970-01-01 was a Thursday).
fn week(time: i64) -> i64 {
    let days = day(time);
    days - (days + 3).rem_euclid(7)
}

fn month(time: i64) -> i64 {
    let (year, month, _) = civil(day(time));
    year * 12 + month
}

fn year(time: i64) -> i64 {
    civil(day(time)).0
}

/// (year, month 1-12, day 1-31) of a day number (Howard Hinnant's
/// days-to-civil algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

guest_sdk::export_retention!(Gfs);

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    /// 2026-11-24T03:00:00Z, a Tuesday.
    const NOW: i64 = 1_795_489_200;

    fn daily_backups(days: i64) -> Vec<Backup> {
        (0..days)
            .map(|d| Backup {
                key: format!("d{d}"),
                time: NOW - d * DAY,
                size: 1,
                kind: "scheduled".into(),
                metadata: Vec::new(),
            })
            .collect()
    }

    fn kept(backups: &[Backup], config: &str) -> Vec<String> {
        let deleted: Vec<String> = guest_sdk::run_retention::<Gfs>(backups, NOW, config)
            .unwrap()
            .into_iter()
            .map(|d| d.key)
            .collect();
        backups
            .iter()
            .map(|b| b.key.clone())
            .filter(|k| !deleted.contains(k))
            .collect()
    }

    #[test]
    fn calendar() {
        assert_eq!(civil(day(NOW)), (2026, 11, 24));
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(day(951_782_400)), (2000, 2, 29));
        // Monday 2026-11-23 starts NOW's week.
        assert_eq!(civil(week(NOW)), (2026, 11, 23));
    }

    #[test]
    fn daily_weekly_monthly_yearly() {
        let backups = daily_backups(800);
        assert_eq!(kept(&backups, r#"{"daily": 3}"#), ["d0", "d1", "d2"]);
        // Newest of this week (Tue d0), then the Sundays before.
        assert_eq!(kept(&backups, r#"{"weekly": 3}"#), ["d0", "d2", "d9"]);
        // Newest of November, October (31st = d24), September (30th = d55).
        assert_eq!(kept(&backups, r#"{"monthly": 3}"#), ["d0", "d24", "d55"]);
        // 2026, 2025 (Dec 31 = d328), 2024 (Dec 31 = d693).
        assert_eq!(kept(&backups, r#"{"yearly": 3}"#), ["d0", "d328", "d693"]);
        assert_eq!(
            kept(&backups, r#"{"daily": 2, "weekly": 2, "monthly": 2}"#),
            ["d0", "d1", "d2", "d24"]
        );
    }

    #[test]
    fn pre_upgrade_snapshots_are_kept_apart() {
        let mut backups = daily_backups(2);
        for i in 0..5 {
            backups.push(Backup {
                key: format!("p{i}"),
                time: NOW - 3600 * (i + 1),
                size: 1,
                kind: "pre-upgrade".into(),
                metadata: Vec::new(),
            });
        }
        assert_eq!(kept(&backups, r#"{"daily": 1}"#), ["d0", "p0", "p1", "p2"]);
        assert_eq!(kept(&backups, r#"{"daily": 1, "preUpgrade": 0}"#), ["d0"]);
    }

    #[test]
    fn bad_config_names_the_field() {
        let error = guest_sdk::run_retention::<Gfs>(&[], NOW, r#"{"dayly": 7}"#).unwrap_err();
        assert!(
            matches!(&error, Error::Config(m) if m.contains("dayly")),
            "{error}"
        );
    }
}
