//! keep-last: the built-in retention policy as a plugin. Config (JSON):
//! `{"maxCount": 7, "maxAge": "168h"}`, both optional.
//!
//! - `maxAge`: backups taken longer ago than this are deleted.
//! - `maxCount`: only the newest `maxCount` backups are kept (0: no
//!   limit); pre-upgrade snapshots are not counted (nor deleted) by it.
//!
//! A separate implementation from the host's, checked against the same
//! table of cases (`tests/cases.json`).

use guest_sdk::{Backup, Deletion, Error, Info, Retention};
use serde::Deserialize;

pub struct KeepLast;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    max_count: Option<u32>,
    max_age: Option<String>,
}

impl Retention for KeepLast {
    const INFO: Info = Info::new(
        "keep-last",
        env!("CARGO_PKG_VERSION"),
        "keeps the newest maxCount backups (pre-upgrade ones aside) and none older than maxAge",
    );
    const CONFIG_EXAMPLE: &'static str = r#"{"maxCount": 7, "maxAge": "168h"}"#;
    type Config = Config;

    fn decide(backups: &[Backup], now: i64, config: &Config) -> Result<Vec<Deletion>, Error> {
        let max_age = config
            .max_age
            .as_deref()
            .map(|text| seconds(text).map(|s| (text, s)))
            .transpose()?;
        let mut counted = 0u32;
        let mut deletions = Vec::new();
        for backup in backups {
            if let Some((text, limit)) = max_age
                && now - backup.time > limit
            {
                deletions.push(Deletion::new(
                    &backup.key,
                    format!("older than maxAge {text}"),
                ));
                continue;
            }
            if backup.kind == "pre-upgrade" {
                continue;
            }
            counted += 1;
            // 0 is no limit, as everywhere else.
            if let Some(max) = config.max_count.filter(|max| *max > 0)
                && counted > max
            {
                deletions.push(Deletion::new(
                    &backup.key,
                    format!("beyond the newest {max} (maxCount)"),
                ));
            }
        }
        Ok(deletions)
    }
}

/// Go-style durations in hours, minutes and seconds: "168h", "1h30m".
fn seconds(text: &str) -> Result<i64, Error> {
    let invalid = || {
        Error::Config(format!(
            "maxAge `{text}` is not a duration: use hours, minutes or seconds such as \"168h\" or \"1h30m\""
        ))
    };
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let value: i64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit = rest[digits..].chars().next().ok_or_else(invalid)?;
        let scale = match unit {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        total += value * scale;
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

guest_sdk::export_retention!(KeepLast);

#[cfg(test)]
mod tests {
    use super::*;

    /// The table shared with the host's built-in policy.
    #[test]
    fn shared_cases() {
        let cases: serde_json::Value =
            serde_json::from_str(include_str!("../tests/cases.json")).unwrap();
        for case in cases.as_array().unwrap() {
            let now = case["now"].as_i64().unwrap();
            let backups: Vec<Backup> = case["backups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| Backup {
                    key: b["key"].as_str().unwrap().into(),
                    time: now - b["ageSeconds"].as_i64().unwrap(),
                    size: 1,
                    kind: b["kind"].as_str().unwrap_or("scheduled").into(),
                    metadata: Vec::new(),
                })
                .collect();
            let deleted: Vec<String> =
                guest_sdk::run_retention::<KeepLast>(&backups, now, &case["config"].to_string())
                    .unwrap()
                    .into_iter()
                    .map(|d| d.key)
                    .collect();
            let expected: Vec<String> = serde_json::from_value(case["delete"].clone()).unwrap();
            assert_eq!(deleted, expected, "{}", case["name"]);
        }
    }

    #[test]
    fn bad_config_names_the_field() {
        let error =
            guest_sdk::run_retention::<KeepLast>(&[], 0, r#"{"maxAge": "7d"}"#).unwrap_err();
        assert!(
            matches!(&error, Error::Config(m) if m.contains("maxAge `7d`")),
            "{error}"
        );
        let error = guest_sdk::run_retention::<KeepLast>(&[], 0, r#"{"maxcount": 3}"#).unwrap_err();
        assert!(
            matches!(&error, Error::Config(m) if m.contains("maxcount")),
            "{error}"
        );
    }
}
