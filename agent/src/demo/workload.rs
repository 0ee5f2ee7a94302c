//! What the demo containers say: an nginx access log, a worker's JSON logs with the odd huge
//! payload dump, a chatty service-mesh sidecar on stderr, and a report job whose CSV rows
//! sometimes exceed the CRI line limit.

use runnel_index::Stream;

/// A small deterministic pseudo-random source (xorshift64*); the demo needs variety, not
/// cryptography, and no extra dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (a zero seed is replaced, xorshift cannot leave zero).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// Pick one element.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len() as u64) as usize)
            .copied()
            .unwrap_or("")
    }
}

/// The kind of program a demo container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// nginx: access log lines on stdout, an occasional error on stderr.
    Web,
    /// A queue worker: JSON logs on stdout; now and then a > 16 KiB payload dump.
    Worker,
    /// A mesh sidecar: chatty stderr.
    Sidecar,
    /// A report job: CSV rows, sometimes > 16 KiB (CRI `P` fragments).
    Report,
}

/// One application line to write.
pub struct Line {
    /// stdout or stderr.
    pub stream: Stream,
    /// The text, without newline.
    pub text: Vec<u8>,
}

/// The `seq`-th line of a container of this kind at `time` (RFC 3339, for messages that print
/// their own time).
pub fn line(kind: Kind, seq: u64, time: &str, rng: &mut Rng) -> Line {
    match kind {
        Kind::Web => web(seq, time, rng),
        Kind::Worker => worker(seq, time, rng),
        Kind::Sidecar => Line {
            stream: Stream::Stderr,
            text: format!(
                "[{time}][{}][{}] {} outbound|8080||{}.shop.svc.cluster.local rtt={}ms seq={seq}",
                rng.pick(&["info", "info", "debug", "warning"]),
                rng.pick(&["upstream", "pool", "health_checker", "router"]),
                rng.pick(&[
                    "health check ok for",
                    "connection reused for",
                    "refreshing endpoints of"
                ]),
                rng.pick(&["web", "cart", "worker", "payments"]),
                rng.below(40),
            )
            .into_bytes(),
        },
        Kind::Report => report(seq, rng),
    }
}

fn web(seq: u64, time: &str, rng: &mut Rng) -> Line {
    if rng.below(25) == 0 {
        return Line {
            stream: Stream::Stderr,
            text: format!(
                "{time} [error] 7#7: *{seq} upstream timed out (110: Connection timed out) while reading \
                 response header from upstream, client: 10.244.{}.{}, server: web, request: \"GET /api/cart HTTP/1.1\"",
                rng.below(4),
                rng.below(250)
            )
            .into_bytes(),
        };
    }
    let path = rng.pick(&[
        "/",
        "/api/cart",
        "/api/items?page=2",
        "/static/app.js",
        "/healthz",
        "/api/checkout",
    ]);
    let status = rng.pick(&["200", "200", "200", "304", "404", "500"]);
    Line {
        stream: Stream::Stdout,
        text: format!(
            "10.244.{}.{} - - [{time}] \"{} {path} HTTP/1.1\" {status} {} \"-\" \"{}\" rt=0.{:03} seq={seq}",
            rng.below(4),
            rng.below(250),
            rng.pick(&["GET", "GET", "POST"]),
            rng.below(20_000),
            rng.pick(&["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "kube-probe/1.30"]),
            rng.below(1000),
        )
        .into_bytes(),
    }
}

fn worker(seq: u64, time: &str, rng: &mut Rng) -> Line {
    let text = if seq % 40 == 39 {
        // A debug dump of a big payload: ~40 KiB on one line, split by Docker into 3 entries.
        let payload: String = (0..40_000)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect();
        serde_json::json!({"level":"debug","ts":time,"msg":"payload dump","seq":seq,"payload":payload}).to_string()
    } else {
        serde_json::json!({
            "level": if rng.below(10) == 0 { "warn" } else { "info" },
            "ts": time,
            "msg": rng.pick(&["job done", "job retried", "queue polled"]),
            "job_id": rng.next_u64() % 1_000_000,
            "duration_ms": rng.below(900),
            "seq": seq,
        })
        .to_string()
    };
    Line {
        stream: Stream::Stdout,
        text: text.into_bytes(),
    }
}

fn report(seq: u64, rng: &mut Rng) -> Line {
    let cells = if seq % 30 == 29 {
        4_000
    } else {
        4 + rng.below(12)
    };
    let mut text = format!("row,{seq}");
    for _ in 0..cells {
        text.push(',');
        text.push_str(&rng.below(100_000).to_string());
    }
    Line {
        stream: Stream::Stdout,
        text: text.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_reports_sometimes_exceed_16k_and_others_stay_short() {
        let mut rng = Rng::new(1);
        let long = line(Kind::Worker, 39, "2024-05-01T12:00:00Z", &mut rng);
        assert!(long.text.len() > 16 * 1024);
        let v: serde_json::Value = serde_json::from_slice(&long.text).unwrap();
        assert_eq!(v["msg"], "payload dump");
        assert!(line(Kind::Report, 29, "t", &mut rng).text.len() > 16 * 1024);
        for seq in 0..30 {
            for kind in [Kind::Web, Kind::Sidecar] {
                let l = line(kind, seq, "2024-05-01T12:00:00Z", &mut rng);
                assert!((40..2000).contains(&l.text.len()));
                assert!(!l.text.contains(&b'\n'));
            }
        }
    }
}
