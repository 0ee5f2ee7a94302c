//! TCP connections by state, read from `/proc/<pid>/net/tcp` and `tcp6` once per network
//! namespace (every container of a pod shares one), as cAdvisor's `tcp` metrics report them.

/// cAdvisor's `tcp_state` label values, indexed by the kernel's state number − 1.
pub const STATES: [&str; 11] = [
    "established",
    "synsent",
    "synrecv",
    "finwait1",
    "finwait2",
    "timewait",
    "close",
    "closewait",
    "lastack",
    "listen",
    "closing",
];

/// Connections per state, in [`STATES`] order.
pub type StateCounts = [u64; 11];

/// TCP connections of one network namespace.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TcpStates {
    /// IPv4 (`net/tcp`).
    pub v4: StateCounts,
    /// IPv6 (`net/tcp6`).
    pub v6: StateCounts,
}

/// Count a `/proc/net/tcp`-format table by state. Lines that do not parse are skipped and
/// returned as the second value.
pub fn count_states(table: &[u8]) -> (StateCounts, u64) {
    let mut counts = [0u64; 11];
    let mut bad = 0;
    for line in table.split(|b| *b == b'\n').skip(1) {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        // "  sl  local_address rem_address   st ..." — the state is the fourth field, in hex.
        let st = line
            .split(|b| *b == b' ')
            .filter(|f| !f.is_empty())
            .nth(3)
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| u8::from_str_radix(f, 16).ok());
        match st {
            Some(s @ 1..=11) => counts[usize::from(s) - 1] += 1,
            _ => bad += 1,
        }
    }
    (counts, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_counted_from_the_hex_column() {
        let table = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 24575 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 24576 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:D2A4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 24577 1 0000000000000000 20 4 30 10 -1\n\
   3: 0100007F:D2A6 0100007F:1F90 06 00000000:00000000 03:00000F3C 00000000     0        0 0 3 0000000000000000\n\
   4: garbage\n";
        let (c, bad) = count_states(table);
        assert_eq!(c[0], 2, "established");
        assert_eq!(c[9], 1, "listen");
        assert_eq!(c[5], 1, "timewait");
        assert_eq!(c.iter().sum::<u64>(), 4);
        assert_eq!(bad, 1);
        assert_eq!(count_states(b""), ([0; 11], 0));
    }
}
