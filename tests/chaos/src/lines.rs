//! The lines the emulated containers write: each message is a pure function of (seed,
//! container, sequence number), so the checks regenerate what was written instead of keeping
//! it, and a message names its container and number so a stored line says where it belongs.
//!
//! `<name> <seq:08> <body>`; the body is usually short text with quotes, backslashes and
//! non-ASCII characters, now and then a long ASCII line (split into 16 KiB fragments as Docker
//! and containerd split them) and, rarely, the word `POISON`, which the fault proxy answers
//! with a permanent 400 so the sink must dead-letter it.

use crate::rng::Rng;

/// Docker and containerd split lines longer than this into fragments.
pub const FRAGMENT_BYTES: usize = 16 * 1024;
/// One line in this many carries `POISON` (at `seq % POISON_EVERY == POISON_AT`).
pub const POISON_EVERY: u64 = 997;
const POISON_AT: u64 = 500;

/// Whether line `seq` is one the server rejects for good.
pub fn is_poison(seq: u64) -> bool {
    seq % POISON_EVERY == POISON_AT
}

fn line_rng(seed: u64, name: &str, seq: u64) -> Rng {
    let mut h = seed ^ seq.wrapping_mul(0xa076_1d64_78bd_642f);
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Rng::new(h)
}

const SHORT_ALPHABET: &[&str] = &[
    "a", "b", "c", "d", "e", "f", "g", "h", "k", "m", "n", "p", "r", "s", "t", "0", "1", "7", " ",
    " ", "-", "=", "\"", "\\", "é", "ü", "→", "{", "}", ":", "/",
];

/// The message of line `seq` of container `name` (no trailing newline).
pub fn message(seed: u64, name: &str, seq: u64) -> String {
    let mut r = line_rng(seed, name, seq);
    let mut m = format!("{name} {seq:08} ");
    if is_poison(seq) {
        m.push_str("POISON ");
    }
    if r.chance(1.0 / 300.0) {
        // Long: ASCII only, since the runtimes cut fragments at byte offsets.
        let len = r.range(20_000, 40_000) as usize;
        let start = m.len();
        while m.len() - start < len {
            m.push((b'a' + (r.next_u64() % 26) as u8) as char);
        }
    } else {
        let len = r.range(8, 160);
        for _ in 0..len {
            m.push_str(SHORT_ALPHABET[(r.next_u64() % SHORT_ALPHABET.len() as u64) as usize]);
        }
    }
    m
}

/// Which stream line `seq` goes to.
pub fn stream(seed: u64, name: &str, seq: u64) -> &'static str {
    if line_rng(seed ^ 0x5151, name, seq).chance(0.2) {
        "stderr"
    } else {
        "stdout"
    }
}

/// Where a message splits into runtime fragments (byte offsets; ASCII past the first).
fn fragments(msg: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = msg;
    while rest.len() > FRAGMENT_BYTES && rest.is_char_boundary(FRAGMENT_BYTES) {
        let (a, b) = rest.split_at(FRAGMENT_BYTES);
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

/// The json-file lines Docker writes for one message: one per fragment, all but the last
/// without the trailing `\n` in `log`, all with the first fragment's time.
pub fn docker_lines(msg: &str, stream: &str, time: &str) -> Vec<String> {
    let parts = fragments(msg);
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let log = if i == last {
                format!("{p}\n")
            } else {
                p.to_string()
            };
            let mut s =
                serde_json::json!({ "log": log, "stream": stream, "time": time }).to_string();
            s.push('\n');
            s
        })
        .collect()
}

/// The CRI lines the kubelet's runtime writes for one message: `P` fragments, then `F`; each
/// fragment has its own time (`times` gives them in order).
pub fn cri_lines(msg: &str, stream: &str, mut time: impl FnMut() -> String) -> Vec<String> {
    let parts = fragments(msg);
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let tag = if i == last { "F" } else { "P" };
            format!("{} {stream} {tag} {p}\n", time())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_reproducible_and_name_their_line() {
        assert_eq!(message(9, "d01", 42), message(9, "d01", 42));
        assert_ne!(message(9, "d01", 42), message(10, "d01", 42));
        assert!(message(9, "d01", 42).starts_with("d01 00000042 "));
        assert!(message(9, "c02", 500).contains("POISON"));
        let long = (0..5000)
            .map(|s| message(3, "c00", s))
            .find(|m| m.len() > FRAGMENT_BYTES)
            .expect("a long line in 5000");
        let d = docker_lines(&long, "stdout", "2024-05-01T12:00:00Z");
        assert!(d.len() >= 2);
        let merged: String = d
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["log"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(merged, format!("{long}\n"));
        let c = cri_lines(&long, "stderr", || "T".to_string());
        assert!(c[0].starts_with("T stderr P "));
        assert!(c.last().unwrap().starts_with("T stderr F "));
    }
}
