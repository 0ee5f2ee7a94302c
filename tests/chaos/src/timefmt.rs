//! Wall-clock times as the writers print them: RFC 3339 with nanoseconds (trailing zeros
//! trimmed, as Docker and the kubelet print them) and the kubelet's rotation suffix.

/// Nanoseconds since the Unix epoch now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Civil date and time of Unix seconds, UTC (the sinks' own calendar arithmetic).
fn parts(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    runnel_sinks::encode::civil(secs)
}

/// `2026-12-02T01:02:03.123456789Z`, fraction digits trimmed of trailing zeros.
pub fn rfc3339_nano(ns: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(ns.div_euclid(1_000_000_000));
    let frac = format!("{:09}", ns.rem_euclid(1_000_000_000));
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac}Z")
    }
}

/// The kubelet's rotated-file suffix `20261202-010203` for a time in seconds.
pub fn kubelet_suffix(secs: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(secs);
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // 2024-05-01T12:00:00Z = 1714564800 s.
        assert_eq!(
            rfc3339_nano(1_714_564_800_000_000_000 + 3_000_123),
            "2024-05-01T12:00:00.003000123Z"
        );
        assert_eq!(
            rfc3339_nano(1_714_564_800_500_000_000),
            "2024-05-01T12:00:00.5Z"
        );
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(kubelet_suffix(1_714_564_800 + 3661), "20240501-130101");
        // A leap day.
        assert_eq!(kubelet_suffix(951_782_400), "20000229-000000");
    }
}
