//! Deterministic generator of realistic container log lines for the index benchmarks.
//!
//! Lines look like what a JVM or Go service prints: a level, a thread or component, a message
//! with ids, paths, latencies; 100–300 bytes each, with about one line in 150 being a long one
//! (a stack trace or a JSON dump of 2–12 KiB). Timestamps advance by a mean interval with a small
//! backwards jitter so they are not strictly monotonic, like real container logs.

/// splitmix64: tiny, fast, and reproducible without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const LEVELS: &[&str] = &["INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const COMPONENTS: &[&str] = &[
    "http-nio-8080-exec-3",
    "http-nio-8080-exec-17",
    "scheduler-1",
    "kafka-consumer-orders-0",
    "grpc-default-executor-5",
    "main",
    "pool-2-thread-9",
];
const LOGGERS: &[&str] = &[
    "c.e.orders.OrderService",
    "c.e.payments.PaymentClient",
    "o.a.k.c.consumer.internals.Fetcher",
    "c.e.inventory.StockRepository",
    "i.g.netty.NettyServerHandler",
    "c.e.api.RequestLoggingFilter",
];
const MESSAGES: &[&str] = &[
    "processed order",
    "request completed",
    "cache miss for key",
    "retrying upstream call after timeout",
    "committed offsets for partition",
    "slow query detected",
    "user session refreshed",
    "payment authorization declined by issuer",
];
const PATHS: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/users/me",
    "/api/v2/inventory/items",
    "/healthz",
    "/api/v1/payments/authorize",
];

/// Produces log lines and their timestamps.
pub struct LogGen {
    rng: Rng,
    time_ns: i64,
    mean_interval_ns: i64,
    line: Vec<u8>,
}

impl LogGen {
    /// Lines start at `start_ns` and advance by `mean_interval_ns` on average.
    pub fn new(seed: u64, start_ns: i64, mean_interval_ns: i64) -> LogGen {
        LogGen {
            rng: Rng::new(seed),
            time_ns: start_ns,
            mean_interval_ns,
            line: Vec::with_capacity(16 << 10),
        }
    }

    /// The next line (without newline) and its timestamp; the slice is reused by the next call.
    pub fn next_line(&mut self) -> (i64, &[u8]) {
        use std::io::Write;
        let step = self.rng.below(2 * self.mean_interval_ns as u64 + 1) as i64;
        self.time_ns += step;
        // Small backwards jitter: up to a quarter of the mean interval.
        let jitter = self.rng.below(self.mean_interval_ns as u64 / 4 + 1) as i64;
        let t = self.time_ns - jitter;
        let r = &mut self.rng;
        self.line.clear();
        let level = r.pick(LEVELS);
        let comp = r.pick(COMPONENTS);
        let logger = r.pick(LOGGERS);
        let msg = r.pick(MESSAGES);
        let path = r.pick(PATHS);
        let _ = write!(
            self.line,
            "{level:5} [{comp}] {logger} - {msg} id={} user=u{} path={path}/{} status={} latency_ms={} trace={:016x}",
            r.below(10_000_000),
            r.below(100_000),
            r.below(1_000_000),
            [200, 200, 200, 201, 204, 404, 500][r.below(7) as usize],
            r.below(2_000),
            r.next_u64(),
        );
        // Pad some lines with extra key=values so lengths spread over 100–300 bytes.
        let extra = r.below(5);
        for _ in 0..extra {
            let _ = write!(
                self.line,
                " k{}=v{}-{:x}",
                r.below(50),
                r.below(1000),
                r.below(1 << 24)
            );
        }
        if r.below(150) == 0 {
            // A long line: a stack trace flattened by the logging framework, or a JSON dump.
            let frames = 20 + r.below(150);
            for i in 0..frames {
                let _ = write!(
                    self.line,
                    "\\n\tat com.example.{}.Handler{}.invoke(Handler{}.java:{})",
                    r.pick(&["orders", "payments", "inventory", "api"]),
                    i % 13,
                    i % 13,
                    r.below(900) + 10
                );
            }
        }
        (t, &self.line)
    }
}
