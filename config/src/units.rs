//! Human sizes (`32MiB`, `1GB`, `4096`) and durations (`500ms`, `10s`, `1h30m`, `7d`), parsed
//! and printed, with serde adapters for the config structs.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Parse a size: a plain integer is bytes; `KiB/MiB/GiB/TiB` are powers of 1024,
/// `KB/MB/GB/TB` powers of 1000.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 4096, 512KiB, 32MiB, 10GiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        u => {
            return Err(format!(
                "{text:?}: unknown size unit {u:?} (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Print a size in the largest binary unit that divides it.
pub fn format_size(n: u64) -> String {
    for (unit, m) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

/// Parse a duration: one or more `<integer><unit>` with units `ms, s, m, h, d` (`1h30m`); a
/// total past what a `Duration` holds is an error.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("{text:?} is not a duration (examples: 500ms, 10s, 5m, 1h30m, 7d)");
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let d = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if d == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..d].parse().map_err(|_| bad())?;
        let after = &rest[d..];
        let u = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let secs = |unit: u64| n.checked_mul(unit).map(Duration::from_secs);
        let part = match &after[..u] {
            "ms" => Some(Duration::from_millis(n)),
            "s" => Some(Duration::from_secs(n)),
            "m" => secs(60),
            "h" => secs(3600),
            "d" => secs(86_400),
            _ => return Err(bad()),
        };
        // An error rather than a silent cap: a capped value would not print back as written.
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        rest = &after[u..];
    }
    Ok(total)
}

/// Print a duration in the largest unit that divides it, in a form [`parse_duration`] reads
/// back: past `u64::MAX` milliseconds (reachable as a plain number of seconds) the seconds and
/// the milliseconds are printed apart (`…s999ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, m) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms.is_multiple_of(m) {
            return format!("{}{unit}", ms / m);
        }
    }
    if ms <= u128::from(u64::MAX) {
        format!("{ms}ms")
    } else {
        format!("{}s{}ms", ms / 1000, ms % 1000)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(u64),
    Text(String),
}

/// serde adapter for sizes.
pub mod size {
    use super::*;
    /// Deserialize a size from an integer or a human string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Num(n) => Ok(n),
            NumOrText::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
        }
    }
    /// Serialize a size as a human string.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(*v))
    }
}

/// serde adapter for durations.
pub mod duration {
    use super::*;
    /// Deserialize a duration from a human string (an integer means seconds).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Num(n) => Ok(Duration::from_secs(n)),
            NumOrText::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
    /// Serialize a duration as a human string.
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_size("MiB").is_err());
        assert_eq!(format_size(10 << 30), "10GiB");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn durations_past_u64_milliseconds_print_and_parse_back() {
        for d in [
            Duration::from_secs(u64::MAX),
            Duration::from_secs(u64::MAX / 1000 + 1),
            Duration::from_secs(u64::MAX) + Duration::from_millis(999),
            Duration::from_secs(1 << 62) + Duration::from_millis(1),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        assert!(parse_duration("18446744073709551615s1000ms")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_duration("999999999999999999d")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "10", "s", "10x", "1.5s", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }
}
