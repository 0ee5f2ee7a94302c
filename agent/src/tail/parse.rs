//! Line parsers for the two on-disk formats: Docker `json-file` and CRI. Plain loops over byte
//! slices: no generic JSON value is built per line; only the `log` string is unescaped, into a
//! buffer the caller reuses.

use runnel_index::{Stream, TimeStyle};

/// Which format a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker json-file: one JSON object a line.
    JsonFile,
    /// CRI: `<time> <stream> <P|F> <content>`.
    Cri,
}

/// How a file's format is chosen. Never from one byte or one line: a file that starts with
/// garbage (the NULs and cut line a copytruncate leaves) must not be read in the wrong format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatRule {
    /// Known from where the file lives (a file under the Docker root is json-file).
    Fixed(Format),
    /// Decided by the first line that parses: CRI first (the kubelet's pod directories hold
    /// CRI files), json-file when the runtime is Docker (dockershim links json-file logs
    /// there). Lines before it are counted as unparsable.
    FirstParseable,
}

/// One parsed physical line. The message bytes are in the caller's buffer (json-file, unescaped)
/// or borrowed from the line (CRI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMeta {
    /// Timestamp in ns since the epoch (UTC).
    pub time_ns: i64,
    /// How the time was written.
    pub style: TimeStyle,
    /// stdout or stderr.
    pub stream: Stream,
    /// True when this is a fragment that the next line of the same stream continues.
    pub partial: bool,
}

/// Why a line could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a JSON object of the expected shape.
    BadJson,
    /// No `log` string.
    MissingLog,
    /// The `stream` is missing or not stdout/stderr.
    BadStream,
    /// The `time` is missing or not RFC 3339.
    BadTime,
    /// The CRI tag is not `P` or `F`.
    BadTag,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParseError::BadJson => "not a json-file object",
            ParseError::MissingLog => "no \"log\" string",
            ParseError::BadStream => "stream is not stdout or stderr",
            ParseError::BadTime => "time is not RFC 3339",
            ParseError::BadTag => "CRI tag is not P or F",
        })
    }
}

fn parse_stream(s: &[u8]) -> Result<Stream, ParseError> {
    match s {
        b"stdout" => Ok(Stream::Stdout),
        b"stderr" => Ok(Stream::Stderr),
        _ => Err(ParseError::BadStream),
    }
}

/// Parse one CRI line (without its `\n`). Returns the metadata and the content slice.
pub fn parse_cri<'l>(
    line: &'l [u8],
    times: &mut TimeCache,
) -> Result<(LineMeta, &'l [u8]), ParseError> {
    let sp1 = memchr::memchr(b' ', line).ok_or(ParseError::BadTime)?;
    let (time_ns, style) = times.parse(&line[..sp1]).ok_or(ParseError::BadTime)?;
    let rest = &line[sp1 + 1..];
    let sp2 = memchr::memchr(b' ', rest).ok_or(ParseError::BadStream)?;
    let stream = parse_stream(&rest[..sp2])?;
    let rest = &rest[sp2 + 1..];
    let (tag, content) = match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    // CRI-O may add more tags separated by ':'; the first one is the partial flag.
    let partial = match tag.split(|&b| b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(ParseError::BadTag),
    };
    Ok((
        LineMeta {
            time_ns,
            style,
            stream,
            partial,
        },
        content,
    ))
}

/// Parse one json-file line (without its `\n`); the unescaped `log` is appended to `out`
/// (the caller clears it). A `log` without a trailing `\n` is a partial fragment; the `\n`
/// itself is not appended. What follows the `log` is first matched against the tail Docker's
/// json-file driver writes (see [`docker_tail`]).
pub fn parse_json(
    line: &[u8],
    out: &mut Vec<u8>,
    times: &mut TimeCache,
) -> Result<LineMeta, ParseError> {
    parse_json_object(line, out, times, true)
}

/// [`parse_json`] without the match of Docker's tail: every key parsed as it comes (what tests
/// and the fuzzer hold [`parse_json`] against).
pub fn parse_json_any(
    line: &[u8],
    out: &mut Vec<u8>,
    times: &mut TimeCache,
) -> Result<LineMeta, ParseError> {
    parse_json_object(line, out, times, false)
}

/// The stream and time when `rest` (what follows a `log` value) is exactly Docker's
/// `,"stream":"stdout|stderr","time":"<RFC 3339>"}`: matched as literals instead of parsed key
/// by key. None for anything else (spaces, `attrs`, other keys, trailing bytes, a bad time), and
/// the caller parses on from the same place, so the result is the same either way: the keys
/// that follow would set the stream and time last.
fn docker_tail(rest: &[u8], times: &mut TimeCache) -> Option<(Stream, i64, TimeStyle)> {
    const STDOUT: &[u8] = b",\"stream\":\"stdout\",\"time\":\"";
    const STDERR: &[u8] = b",\"stream\":\"stderr\",\"time\":\"";
    let (stream, rest) = match rest.strip_prefix(STDOUT) {
        Some(r) => (Stream::Stdout, r),
        None => (Stream::Stderr, rest.strip_prefix(STDERR)?),
    };
    // A valid time holds no `"`, so it is the whole string the general parse would read.
    let (time_ns, style) = times.parse(rest.strip_suffix(b"\"}")?)?;
    Some((stream, time_ns, style))
}

/// Whether the unescaped `log` (what `out` holds past `start_len`) ends its line; its `\n` is
/// taken off.
fn end_of_line(out: &mut Vec<u8>, start_len: usize) -> bool {
    if out.len() > start_len && out.last() == Some(&b'\n') {
        out.pop();
        true
    } else {
        false
    }
}

/// Any json-file object: keys in any order, whitespace, unknown keys skipped; with
/// `docker_tail_first`, the rest after a `log` value is first tried as [`docker_tail`].
fn parse_json_object(
    line: &[u8],
    out: &mut Vec<u8>,
    times: &mut TimeCache,
    docker_tail_first: bool,
) -> Result<LineMeta, ParseError> {
    let mut p = Cursor { s: line, i: 0 };
    p.ws();
    if !p.eat(b'{') {
        return Err(ParseError::BadJson);
    }
    let start_len = out.len();
    let mut have_log = false;
    let mut stream = None;
    let mut time = None;
    p.ws();
    if p.eat(b'}') {
        return Err(ParseError::MissingLog);
    }
    loop {
        p.ws();
        let key = p.raw_string().ok_or(ParseError::BadJson)?;
        p.ws();
        if !p.eat(b':') {
            return Err(ParseError::BadJson);
        }
        p.ws();
        match key {
            b"log" if p.peek() == Some(b'"') => {
                out.truncate(start_len);
                p.unescape_string(out).ok_or(ParseError::BadJson)?;
                have_log = true;
                if docker_tail_first {
                    if let Some((stream, time_ns, style)) = docker_tail(&p.s[p.i..], times) {
                        return Ok(LineMeta {
                            time_ns,
                            style,
                            stream,
                            partial: !end_of_line(out, start_len),
                        });
                    }
                }
            }
            b"stream" if p.peek() == Some(b'"') => {
                stream = Some(p.raw_string().ok_or(ParseError::BadJson)?);
            }
            b"time" if p.peek() == Some(b'"') => {
                time = Some(p.raw_string().ok_or(ParseError::BadJson)?);
            }
            _ => p.skip_value().ok_or(ParseError::BadJson)?,
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        if p.eat(b'}') {
            break;
        }
        return Err(ParseError::BadJson);
    }
    if !have_log {
        return Err(ParseError::MissingLog);
    }
    let stream = parse_stream(stream.ok_or(ParseError::BadStream)?)?;
    let (time_ns, style) = time
        .and_then(|t| times.parse(t))
        .ok_or(ParseError::BadTime)?;
    Ok(LineMeta {
        time_ns,
        style,
        stream,
        partial: !end_of_line(out, start_len),
    })
}

/// Parse a json-file line too long to hold whole: `head` is its beginning, `tail` its last bytes.
/// The `log` is unescaped from `head` as far as it goes (the caller flags it truncated); `stream`
/// and `time` (written after `log`) are looked up in `tail`.
pub fn parse_json_oversize(
    head: &[u8],
    tail: &[u8],
    out: &mut Vec<u8>,
) -> Result<LineMeta, ParseError> {
    let at = memchr::memmem::find(head, b"\"log\"").ok_or(ParseError::MissingLog)?;
    let mut p = Cursor { s: head, i: at + 5 };
    p.ws();
    if !p.eat(b':') {
        return Err(ParseError::BadJson);
    }
    p.ws();
    if p.peek() != Some(b'"') {
        return Err(ParseError::MissingLog);
    }
    // An unterminated string is expected here: take what was unescaped.
    let _ = p.unescape_string(out);
    let stream = parse_stream(last_json_str(tail, b"\"stream\"").ok_or(ParseError::BadStream)?)?;
    let (time_ns, style) = last_json_str(tail, b"\"time\"")
        .and_then(parse_rfc3339)
        .ok_or(ParseError::BadTime)?;
    // The line did not end inside what we kept, so whether it was a fragment is unknown; the
    // caller treats the over-long line as complete.
    Ok(LineMeta {
        time_ns,
        style,
        stream,
        partial: false,
    })
}

/// The raw string value of the last `key` (quoted, e.g. `"stream"`) in `tail`.
fn last_json_str<'a>(tail: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = memchr::memmem::rfind(tail, key)?;
    let mut c = Cursor {
        s: tail,
        i: at + key.len(),
    };
    c.ws();
    if !c.eat(b':') {
        return None;
    }
    c.ws();
    c.raw_string()
}

/// The stream and time of a json-file line from its last bytes (they are written after `log`),
/// when they are there.
pub fn json_stream_time(tail: &[u8]) -> Option<(Stream, i64, TimeStyle)> {
    let stream = parse_stream(last_json_str(tail, b"\"stream\"")?).ok()?;
    let (t, style) = last_json_str(tail, b"\"time\"").and_then(parse_rfc3339)?;
    Some((stream, t, style))
}

/// The `log` text at the start of a json-file line cut before its end, unescaped into `out`
/// as far as it goes. False when the head has no `log` string.
pub fn json_log_prefix(head: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(at) = memchr::memmem::find(head, b"\"log\"") else {
        return false;
    };
    let mut p = Cursor { s: head, i: at + 5 };
    p.ws();
    if !p.eat(b':') {
        return false;
    }
    p.ws();
    if p.peek() != Some(b'"') {
        return false;
    }
    // An unterminated string is expected here: take what was unescaped.
    let _ = p.unescape_string(out);
    true
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }
    /// A string returned raw (escapes not decoded); used for keys and short values.
    fn raw_string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        loop {
            let rel = memchr::memchr2(b'"', b'\\', &self.s[self.i..])?;
            self.i += rel;
            if self.s[self.i] == b'\\' {
                self.i += 2;
                if self.i > self.s.len() {
                    return None;
                }
            } else {
                let v = &self.s[start..self.i];
                self.i += 1;
                return Some(v);
            }
        }
    }
    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        self.i += 4;
        Some(v)
    }
    /// Decode a JSON string into `out`. Returns None if it is malformed or unterminated
    /// (what was decoded so far stays in `out`).
    fn unescape_string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        if !self.eat(b'"') {
            return None;
        }
        loop {
            let rest = &self.s[self.i..];
            let Some(rel) = memchr::memchr2(b'"', b'\\', rest) else {
                out.extend_from_slice(rest);
                self.i = self.s.len();
                return None;
            };
            out.extend_from_slice(&rest[..rel]);
            self.i += rel;
            if self.s[self.i] == b'"' {
                self.i += 1;
                return Some(());
            }
            self.i += 1;
            let esc = self.peek()?;
            self.i += 1;
            match esc {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'/' => out.push(b'/'),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'u' => {
                    let hi = self.hex4()?;
                    let c = if (0xD800..0xDC00).contains(&hi) {
                        // A high surrogate: a low one must follow to make one code point.
                        let save = self.i;
                        if self.s.get(self.i..self.i + 2) == Some(b"\\u") {
                            self.i += 2;
                            match self.hex4() {
                                Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                                }
                                _ => {
                                    self.i = save;
                                    None
                                }
                            }
                        } else {
                            None
                        }
                    } else {
                        char::from_u32(hi)
                    };
                    let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
                _ => return None,
            }
        }
    }
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.raw_string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                ) {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut v = 0i64;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

/// The value of 8 ASCII digits read as one word; None unless all 8 are digits.
fn eight_digits(b: &[u8]) -> Option<i64> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    let v = u64::from_le_bytes(b.try_into().ok()?);
    // Every byte is 0x30..=0x39: high nibble 3, and adding 6 leaves it 3 (no byte carries,
    // so bytes cannot disturb each other).
    if v & HIGH != THREES || v.wrapping_add(0x0606_0606_0606_0606) & HIGH != THREES {
        return None;
    }
    // Pairs, then quadruples, then the whole: the first byte is the most significant digit.
    let d = v - THREES;
    let d = (d * 10 + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d * 100 + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some(((d * 10_000 + (d >> 32)) & 0xFFFF_FFFF) as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Bytes of the `YYYY-MM-DDTHH:MM:SS` part of an RFC 3339 time.
const WHOLE_SECONDS: usize = 19;

/// Parse RFC 3339 with up to 9 fraction digits (`2024-05-01T12:00:00.123456789Z`,
/// `…+02:00`) into ns since the epoch (UTC) and how it was written.
pub fn parse_rfc3339(s: &[u8]) -> Option<(i64, TimeStyle)> {
    let secs = local_seconds(s)?;
    parse_after_seconds(s, secs)
}

/// The last `YYYY-MM-DDTHH:MM:SS` parsed and its seconds: a file's lines are nearly all in the
/// same second as the line before, so they skip the date arithmetic. Each tailed file keeps one.
#[derive(Debug, Clone)]
pub struct TimeCache {
    /// Always a valid `YYYY-MM-DDTHH:MM:SS` (the epoch until a time was parsed), so a hit
    /// stands for a validated prefix.
    whole: [u8; WHOLE_SECONDS],
    secs: i64,
}

impl Default for TimeCache {
    fn default() -> TimeCache {
        TimeCache {
            whole: *b"1970-01-01T00:00:00",
            secs: 0,
        }
    }
}

impl TimeCache {
    /// [`parse_rfc3339`], remembering the whole seconds.
    #[inline]
    pub fn parse(&mut self, s: &[u8]) -> Option<(i64, TimeStyle)> {
        let secs = match s.get(..WHOLE_SECONDS) {
            Some(whole) if whole == self.whole => self.secs,
            _ => {
                let secs = local_seconds(s)?;
                self.whole.copy_from_slice(&s[..WHOLE_SECONDS]);
                self.secs = secs;
                secs
            }
        };
        parse_after_seconds(s, secs)
    }
}

/// Seconds since the epoch of the `YYYY-MM-DDTHH:MM:SS` that starts `s`, before its offset.
fn local_seconds(s: &[u8]) -> Option<i64> {
    if s.len() < 20
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b't' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let min = digits(&s[14..16])?;
    let sec = digits(&s[17..19])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec)
}

/// The fraction and offset after the whole seconds of `s` (which [`local_seconds`] accepted
/// and made `local`).
fn parse_after_seconds(s: &[u8], local: i64) -> Option<(i64, TimeStyle)> {
    if s.len() < 20 {
        return None;
    }
    let mut i = WHOLE_SECONDS;
    let mut frac_ns = 0i64;
    let mut frac_digits = 0u8;
    if s[i] == b'.' {
        i += 1;
        let start = i;
        // Runtimes write 9 digits: the first 8 in one step, the rest by the loop.
        if let Some(v) = s.get(i..i + 8).and_then(eight_digits) {
            frac_ns = v;
            i += 8;
        }
        while i < s.len() && s[i].is_ascii_digit() {
            if i - start < 9 {
                frac_ns = frac_ns * 10 + i64::from(s[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n.min(9)..9 {
            frac_ns *= 10;
        }
        frac_digits = n.min(9) as u8;
    }
    let (offset_secs, zulu) = match s.get(i)? {
        b'Z' | b'z' if i + 1 == s.len() => (0i32, true),
        b'+' | b'-' if i + 6 == s.len() && s[i + 3] == b':' => {
            let h = digits(&s[i + 1..i + 3])?;
            let m = digits(&s[i + 4..i + 6])?;
            if h > 23 || m > 59 {
                return None;
            }
            let v = (h * 3600 + m * 60) as i32;
            (if s[i] == b'-' { -v } else { v }, false)
        }
        _ => return None,
    };
    let secs = local - i64::from(offset_secs);
    let ns = secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)?;
    Some((
        ns,
        TimeStyle {
            offset_secs,
            frac_digits,
            zulu,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::eight_digits;
    use proptest::prelude::*;

    fn naive(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |v, &c| {
            c.is_ascii_digit().then(|| v * 10 + i64::from(c - b'0'))
        })
    }

    #[test]
    fn edges() {
        assert_eq!(eight_digits(b"00000000"), Some(0));
        assert_eq!(eight_digits(b"99999999"), Some(99_999_999));
        assert_eq!(eight_digits(b"12345678"), Some(12_345_678));
        assert_eq!(eight_digits(b"1234567"), None);
        for bad in [b'/', b':', b'\0', b'0' + 0x80, b' ', 0xff] {
            for at in 0..8 {
                let mut b = *b"12345678";
                b[at] = bad;
                assert_eq!(eight_digits(&b), None, "{b:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        #[test]
        fn eight_digits_is_the_naive_fold(
            b in proptest::collection::vec(prop_oneof![8 => b'0'..=b'9', 1 => any::<u8>()], 8)
        ) {
            prop_assert_eq!(eight_digits(&b), naive(&b));
        }
    }
}
