//! Parsing of human-friendly sizes and durations for flags and env vars.

use std::time::Duration;

const KIB: u64 = 1024;

/// Bytes, as a plain number (`20971520`) or with a binary or decimal unit
/// (`20MiB`, `20M`, `5GB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = split_unit(text)
        .ok_or_else(|| format!("`{text}` is not a size: use bytes or a unit such as 10MiB"))?;
    let multiplier = match unit.trim() {
        "" | "B" => 1,
        "K" | "Ki" | "KiB" => KIB,
        "M" | "Mi" | "MiB" => KIB.pow(2),
        "G" | "Gi" | "GiB" => KIB.pow(3),
        "KB" => 1000,
        "MB" => 1000u64.pow(2),
        "GB" => 1000u64.pow(3),
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}`: use KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("size `{text}` is too large"))
}

/// The longest duration any setting takes: 100 years (`876000h`).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration, for every flag and the CRD alike: plain seconds (`90`), or
/// hours, minutes, seconds and milliseconds, alone or combined as Go writes
/// them (`168h`, `1h30m`, `90s`, `250ms`); at most [`MAX_DURATION`].
/// Sums are checked: no input overflows or wraps.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "`{text}` is not a duration: use seconds, or h, m, s and ms such as \"168h\", \"1h30m\" or \"250ms\""
        )
    };
    let too_long = || format!("`{text}` is longer than 100 years (876000h)");
    let max_ms = MAX_DURATION.as_millis() as u64;
    if text.is_empty() {
        return Err(invalid());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .ok()
            .filter(|secs| *secs <= MAX_DURATION.as_secs())
            .map(Duration::from_secs)
            .ok_or_else(too_long);
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        // More digits than u64 holds is too long, not malformed.
        let value: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            "ms" => 1,
            _ => return Err(invalid()),
        };
        total_ms = value
            .checked_mul(unit_ms)
            .and_then(|part| total_ms.checked_add(part))
            .filter(|total| *total <= max_ms)
            .ok_or_else(too_long)?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_millis(total_ms))
}

/// `20MiB` -> (20, "MiB"); None without a leading number.
fn split_unit(text: &str) -> Option<(u64, &str)> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit))
}

/// `1.5 GiB`-style rendering for progress lines.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20971520"), Ok(20 * 1024 * 1024));
        assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("10M"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert!(parse_size("ten").unwrap_err().contains("not a size"));
        assert!(
            parse_size("10XB")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("99999999999999999999").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        // One grammar for every flag and the CRD: compounds too.
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
        assert_eq!(parse_duration("876000h"), Ok(MAX_DURATION));
        for bad in ["", "7d", "h", "1.5h", "1h30", "-5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // Each of these overflowed (a panic in debug builds, a small value
        // after wrapping in release builds) before the checked sums.
        for huge in [
            "18446744073709551615s1s",
            "18446744073709551616s",
            "18446744073709551615",
            "5124095576030431h",
            "876000h1s",
            "99999999999999999h",
        ] {
            let error = parse_duration(huge).unwrap_err();
            assert!(error.contains("longer than 100 years"), "{huge}: {error}");
        }
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn human() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0 * 1024.0 * 1024.0), "1.5 GiB");
    }
}
