//! RFC 3339 timestamps: parse user-supplied times (`sinceTime`, `--until-time`) and print a
//! record's time exactly as the source file wrote it (`--timestamps`).

use runnel_index::TimeStyle;

/// Days from 1970-01-01 to the civil date (proleptic Gregorian); Howard Hinnant's algorithm.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Why a timestamp did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 time (expected e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00.5+02:00)")]
pub struct TimeParseError {
    /// The text that was given.
    pub text: String,
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
}

/// Parse an RFC 3339 time to nanoseconds since the epoch (UTC) and the style it was written in.
pub fn parse_rfc3339(text: &str) -> Result<(i64, TimeStyle), TimeParseError> {
    parse_inner(text.as_bytes()).ok_or_else(|| TimeParseError {
        text: text.to_string(),
    })
}

fn parse_inner(b: &[u8]) -> Option<(i64, TimeStyle)> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    let mut frac_digits = 0u8;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n.min(9)..9 {
            nanos *= 10;
        }
        frac_digits = n.min(9) as u8;
    }
    let rest = &b[i..];
    let (offset_secs, zulu) = match rest {
        [b'Z' | b'z'] => (0, true),
        [sign @ (b'+' | b'-'), oh1, oh2, b':', om1, om2] => {
            let oh = digits(&[*oh1, *oh2])?;
            let om = digits(&[*om1, *om2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let secs = (oh * 3600 + om * 60) as i32;
            (if *sign == b'-' { -secs } else { secs }, false)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - i64::from(offset_secs);
    let ns = secs.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    Some((
        ns,
        TimeStyle {
            offset_secs,
            frac_digits,
            zulu,
        },
    ))
}

/// Append `time_ns` to `out` in RFC 3339 in the given style (zone and fraction digits as the
/// source wrote them).
pub fn format_rfc3339(time_ns: i64, style: TimeStyle, out: &mut Vec<u8>) {
    use std::io::Write;
    let local = time_ns.saturating_add(i64::from(style.offset_secs) * 1_000_000_000);
    let secs = local.div_euclid(1_000_000_000);
    let nanos = local.rem_euclid(1_000_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    let digits = usize::from(style.frac_digits.min(9));
    if digits > 0 {
        let frac = format!("{nanos:09}");
        out.push(b'.');
        out.extend_from_slice(&frac.as_bytes()[..digits]);
    }
    if style.zulu {
        out.push(b'Z');
    } else {
        let off = style.offset_secs;
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.unsigned_abs();
        let _ = write!(out, "{sign}{:02}:{:02}", off / 3600, off % 3600 / 60);
    }
}

/// RFC 3339 in UTC with nanoseconds, for JSON answers.
pub fn utc_nanos_string(time_ns: i64) -> String {
    let mut out = Vec::with_capacity(30);
    let style = TimeStyle {
        offset_secs: 0,
        frac_digits: 9,
        zulu: true,
    };
    format_rfc3339(time_ns, style, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Wall-clock time now in ns since the epoch (UTC); 0 before 1970, saturated after 2262.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) {
        let (ns, style) = parse_rfc3339(text).unwrap();
        let mut out = Vec::new();
        format_rfc3339(ns, style, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn times_print_exactly_as_written() {
        round_trip("2024-05-01T12:00:00Z");
        round_trip("2024-05-01T12:00:00.1Z");
        round_trip("2016-10-06T00:17:09.669794202Z");
        round_trip("2016-10-06T00:17:09.669794202+02:00");
        round_trip("1969-12-31T23:59:59.999999999-05:30");
    }

    #[test]
    fn zone_offsets_compare_as_instants() {
        let (a, _) = parse_rfc3339("2024-05-01T14:00:00+02:00").unwrap();
        let (b, _) = parse_rfc3339("2024-05-01T12:00:00Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(b, 1_714_564_800_000_000_000);
    }

    #[test]
    fn garbage_is_rejected_with_the_text() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00.Z",
        ] {
            let err = parse_rfc3339(bad).unwrap_err();
            assert_eq!(err.text, bad);
        }
    }
}
