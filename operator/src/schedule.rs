//! Kubernetes CronJob schedules, read with the `cron` crate to compute the
//! next backup time. Kubernetes uses five fields with Sunday as day 0; the
//! crate wants a seconds field first and counts Sunday as day 1, so the
//! expression is translated, not passed through.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use cron::Schedule;

/// Parses a CronJob schedule: five fields or one of @yearly, @annually,
/// @monthly, @weekly, @daily, @midnight, @hourly. Errors say how to fix it.
pub fn parse(schedule: &str) -> Result<Schedule, String> {
    let schedule = schedule.trim();
    let expression = match schedule.strip_prefix('@') {
        Some(name) => match name {
            "yearly" | "annually" => "0 0 0 1 1 *".to_string(),
            "monthly" => "0 0 0 1 * *".to_string(),
            "weekly" => "0 0 0 * * 1".to_string(),
            "daily" | "midnight" => "0 0 0 * * *".to_string(),
            "hourly" => "0 0 * * * *".to_string(),
            _ => {
                return Err(format!(
                    "`{schedule}` is not a supported macro: use @hourly, @daily, @weekly, @monthly, @yearly or five cron fields"
                ));
            }
        },
        None => {
            let fields: Vec<&str> = schedule.split_whitespace().collect();
            let [minute, hour, day, month, weekday] = fields[..] else {
                return Err(format!(
                    "`{schedule}` has {} fields; a schedule has five: minute hour day-of-month month day-of-week (e.g. \"0 3 * * *\")",
                    fields.len()
                ));
            };
            format!(
                "0 {minute} {hour} {day} {month} {}",
                shift_weekdays(weekday)?
            )
        }
    };
    Schedule::from_str(&expression)
        .map_err(|e| format!("`{schedule}` is not a valid cron schedule: {e}"))
}

/// The first run strictly after `after`.
pub fn next_run(schedule: &Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.after(&after).next()
}

/// How many runs [`longest_interval`] looks at, at most.
const INTERVAL_RUNS: usize = 1000;

/// The longest time between two consecutive runs among the next
/// [`INTERVAL_RUNS`] runs after `from` (or those within about a year):
/// how long a healthy schedule may go without a backup ("0 3 * * 1-5"
/// gives three days, its weekend). None when it runs fewer than twice.
pub fn longest_interval(schedule: &Schedule, from: DateTime<Utc>) -> Option<std::time::Duration> {
    let horizon = from + chrono::Duration::days(400);
    let mut runs = schedule
        .after(&from)
        .take(INTERVAL_RUNS)
        .take_while(|run| *run <= horizon);
    let mut previous = runs.next()?;
    let mut longest = None;
    for run in runs {
        let gap = (run - previous).to_std().unwrap_or_default();
        longest = longest.max(Some(gap));
        previous = run;
    }
    longest
}

/// Day-of-week numbers from Kubernetes (0-6, Sunday 0) to the crate's
/// (1-7, Sunday 1); names and `*` stay as they are.
fn shift_weekdays(field: &str) -> Result<String, String> {
    let shift = |value: &str| -> Result<String, String> {
        if value.chars().all(|c| c.is_ascii_alphabetic()) || value == "*" || value == "?" {
            return Ok(value.to_string());
        }
        match value.parse::<u8>() {
            Ok(day @ 0..=6) => Ok((day + 1).to_string()),
            _ => Err(format!(
                "day-of-week `{value}` must be 0-6 (Sunday is 0) or SUN-SAT"
            )),
        }
    };
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let range = match range.split_once('-') {
                Some((from, to)) => format!("{}-{}", shift(from)?, shift(to)?),
                None => shift(range)?,
            };
            Ok(match step {
                Some(step) => format!("{range}/{step}"),
                None => range,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|items| items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // A Tuesday.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 0).unwrap()
    }

    fn next(schedule: &str) -> DateTime<Utc> {
        next_run(&parse(schedule).unwrap(), now()).unwrap()
    }

    #[test]
    fn daily_and_macros() {
        assert_eq!(
            next("0 3 * * *"),
            Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap()
        );
        assert_eq!(
            next("@daily"),
            Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap()
        );
        assert_eq!(
            next("@hourly"),
            Utc.with_ymd_and_hms(2026, 11, 24, 11, 0, 0).unwrap()
        );
        assert_eq!(
            next("*/15 * * * *"),
            Utc.with_ymd_and_hms(2026, 11, 24, 10, 15, 0).unwrap()
        );
    }

    #[test]
    fn weekdays_count_from_sunday_zero_like_kubernetes() {
        assert_eq!(
            next("0 3 * * 0"),
            Utc.with_ymd_and_hms(2026, 11, 29, 3, 0, 0).unwrap(),
            "Sunday"
        );
        assert_eq!(
            next("0 3 * * 1"),
            Utc.with_ymd_and_hms(2026, 11, 30, 3, 0, 0).unwrap(),
            "Monday"
        );
        assert_eq!(
            next("0 3 * * 1-5"),
            Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap(),
            "weekdays"
        );
        assert_eq!(
            next("0 3 * * SAT"),
            Utc.with_ymd_and_hms(2026, 11, 28, 3, 0, 0).unwrap()
        );
        assert_eq!(
            next("@weekly"),
            Utc.with_ymd_and_hms(2026, 11, 29, 0, 0, 0).unwrap(),
            "Sunday midnight"
        );
    }

    #[test]
    fn the_longest_interval_is_the_longest_gap_between_runs() {
        let interval = |schedule: &str| {
            longest_interval(&parse(schedule).unwrap(), now()).map(|d| d.as_secs())
        };
        assert_eq!(interval("0 3 * * *"), Some(86_400));
        assert_eq!(interval("@hourly"), Some(3_600));
        assert_eq!(interval("*/15 * * * *"), Some(900));
        assert_eq!(interval("@weekly"), Some(7 * 86_400));
        // Weekdays only: Friday 03:00 to Monday 03:00.
        assert_eq!(interval("0 3 * * 1-5"), Some(3 * 86_400));
        // Twice a day at uneven hours: the longer gap, 20 h.
        assert_eq!(interval("0 2,6 * * *"), Some(20 * 3_600));
        assert_eq!(interval("@monthly"), Some(31 * 86_400));
        // Never runs (February 30th).
        assert_eq!(interval("0 3 30 2 *"), None);
    }

    #[test]
    fn errors_say_what_a_schedule_looks_like() {
        assert!(parse("0 3 * *").unwrap_err().contains("five"));
        assert!(parse("0 3 * * 7").unwrap_err().contains("0-6"));
        assert!(
            parse("61 * * * *")
                .unwrap_err()
                .contains("not a valid cron schedule")
        );
        assert!(parse("@every 1h").unwrap_err().contains("macro"));
    }
}
