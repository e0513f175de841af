//! monthly-archive: keep the newest `recent` backups (default 7) and, for
//! ever, the oldest backup of every 30-day period. Config: `{"recent": 7}`.

use guest_sdk::{Backup, Deletion, Error, Info, Retention};
use serde::Deserialize;

pub struct MonthlyArchive;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "seven")]
    recent: usize,
}

fn seven() -> usize {
    7
}

impl Retention for MonthlyArchive {
    const INFO: Info = Info::new(
        "monthly-archive",
        "0.1.0",
        "the newest N, and one backup per 30 days",
    );
    const CONFIG_EXAMPLE: &'static str = r#"{"recent": 7}"#;
    type Config = Config;

    fn decide(backups: &[Backup], _now: i64, config: &Config) -> Result<Vec<Deletion>, Error> {
        let recent = config.recent;
        let mut periods_kept = Vec::new();
        let mut deletions = Vec::new();
        // Oldest first: the first backup seen in a period is its oldest.
        for (rank, backup) in backups.iter().enumerate().rev() {
            let period = backup.time.div_euclid(30 * 86_400);
            let first_of_period = !periods_kept.contains(&period);
            periods_kept.push(period);
            if rank >= recent && !first_of_period {
                deletions.push(Deletion::new(
                    &backup.key,
                    "neither recent nor the first of its 30 days",
                ));
            }
        }
        Ok(deletions)
    }
}

guest_sdk::export_retention!(MonthlyArchive);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_recent_ones_and_one_per_30_days() {
        // 90 daily backups, newest first, starting on a period boundary.
        let start = 30 * 86_400 * 1000;
        let backups: Vec<Backup> = (0..90)
            .map(|d| Backup {
                key: format!("b{d}"),
                time: start + (89 - d) * 86_400,
                size: 1,
                kind: "scheduled".into(),
                metadata: vec![],
            })
            .collect();
        let deleted =
            guest_sdk::run_retention::<MonthlyArchive>(&backups, 0, r#"{"recent": 7}"#).unwrap();
        let kept: Vec<&str> = backups
            .iter()
            .map(|b| b.key.as_str())
            .filter(|k| !deleted.iter().any(|d| d.key == *k))
            .collect();
        assert_eq!(
            kept,
            [
                "b0", "b1", "b2", "b3", "b4", "b5", "b6", "b29", "b59", "b89"
            ]
        );
    }
}
