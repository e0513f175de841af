//! The one grammar for sizes and durations, for every flag, environment
//! variable and CRD field the project parses.
//!
//! Sizes are Kubernetes quantities (`10Mi`, `1Gi`, `1.5Gi`, `500k`), plain
//! numbers as bytes, and the IEC/SI forms accepted before (`10MiB`, `5GB`).
//! One difference from Kubernetes, kept so that older settings keep their
//! meaning: the single letters `K`, `M`, `G` and `T` are binary here (`20M`
//! is 20 MiB); write `MB` (or `500000000`) for decimal megabytes.
//!
//! Durations are Go's, as Kubernetes users write them (`1h30m`, `90s`,
//! `500ms`), plus `d` for days (`7d` = `168h`), or plain seconds (`90`).

use std::time::Duration;

const KIB: u64 = 1024;

/// The multiplier of a size unit; None for an unknown unit.
fn size_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "" | "B" => 1,
        // Binary: Kubernetes' `Ki`..`Ei`, the IEC `KiB`..`EiB`, and the
        // single letters this tool always read as binary.
        "Ki" | "KiB" | "K" => KIB,
        "Mi" | "MiB" | "M" => KIB.pow(2),
        "Gi" | "GiB" | "G" => KIB.pow(3),
        "Ti" | "TiB" | "T" => KIB.pow(4),
        "Pi" | "PiB" => KIB.pow(5),
        "Ei" | "EiB" => KIB.pow(6),
        // Decimal: Kubernetes' `k` and the SI `kB`..`EB`.
        "k" | "kB" | "KB" => 1000,
        "MB" => 1000u64.pow(2),
        "GB" => 1000u64.pow(3),
        "TB" => 1000u64.pow(4),
        "PB" => 1000u64.pow(5),
        "EB" => 1000u64.pow(6),
        _ => return None,
    })
}

/// Bytes: a plain number (`20971520`), a Kubernetes quantity (`10Mi`,
/// `1.5Gi`, `500k`) or an IEC/SI size (`20MiB`, `5GB`); see the module
/// documentation for `M`. A fraction is rounded up to whole bytes, as
/// Kubernetes does.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let not_a_size =
        || format!("`{text}` is not a size: use bytes or a quantity such as 10Mi, 1Gi or 20MiB");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(not_a_size());
    }
    let multiplier = size_unit(unit.trim()).ok_or_else(|| {
        format!(
            "unknown size unit `{}` in `{text}`: use Ki, Mi, Gi (or KiB, MiB, GiB), or plain bytes",
            unit.trim()
        )
    })?;
    let too_large = || format!("size `{text}` is too large");
    if fraction.len() > 18 {
        return Err(not_a_size());
    }
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| not_a_size())?
    };
    let bytes = whole
        .checked_mul(scale)
        .and_then(|n| n.checked_add(fraction))
        .and_then(|n| n.checked_mul(u128::from(multiplier)))
        .ok_or_else(too_large)?
        .div_ceil(scale);
    u64::try_from(bytes).map_err(|_| too_large())
}

/// The longest duration any setting takes: 100 years (`876000h`).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A duration, for every flag and the CRD alike: plain seconds (`90`), or
/// days, hours, minutes, seconds and milliseconds, alone or combined as Go
/// writes them (`168h`, `1h30m`, `90s`, `250ms`) plus `d` for days (`7d`,
/// `1d12h`); at most [`MAX_DURATION`].
/// Sums are checked: no input overflows or wraps.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "`{text}` is not a duration: use seconds, or d, h, m, s and ms such as \"7d\", \"1h30m\" or \"250ms\""
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
            "d" => 86_400_000,
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
    fn sizes_are_kubernetes_quantities_too() {
        const MIB: u64 = 1024 * 1024;
        // Kubernetes' binary and decimal suffixes.
        assert_eq!(parse_size("10Mi"), Ok(10 * MIB));
        assert_eq!(parse_size("1Gi"), Ok(1024 * MIB));
        assert_eq!(parse_size("2Ti"), Ok(2 * 1024 * 1024 * MIB));
        assert_eq!(parse_size("1Ei"), Ok(1 << 60));
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert_eq!(parse_size("1.5Gi"), Ok(1536 * MIB));
        assert_eq!(parse_size("0.5Ki"), Ok(512));
        // A fraction of a byte rounds up, as Kubernetes does.
        assert_eq!(parse_size("0.1Ki"), Ok(103));
        assert_eq!(parse_size("1.5"), Ok(2));
        // Every form accepted before keeps its meaning: single letters are
        // binary, the two-letter SI units decimal.
        assert_eq!(parse_size("20M"), Ok(20 * MIB));
        assert_eq!(parse_size("5GB"), Ok(5_000_000_000));
        assert_eq!(parse_size("10 MiB"), Ok(10 * MIB));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("3B"), Ok(3));
        assert_eq!(parse_size(" 42 "), Ok(42));
        for bad in [
            "", "Mi", "-5Mi", "1.Mi", ".5Mi", "1..5Mi", "5m", "1e6", "10 M i",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_size("16Ei").unwrap_err().contains("too large"));
        assert!(
            parse_size("5m")
                .unwrap_err()
                .contains("unknown size unit `m`")
        );
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
        // Days, for retention periods people think of in days.
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
        assert!(parse_duration("36501d").unwrap_err().contains("100 years"));
        for bad in ["", "d", "h", "1.5h", "1h30", "-5s", "7D", "1w"] {
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
