//! The configuration structs with their production (DaemonSet) defaults.
//!
//! Every struct is `#[serde(default, deny_unknown_fields)]`: a key left out takes the default
//! below, an unknown key is an error. Sizes are `u64` bytes and durations
//! [`std::time::Duration`]; both are read from human text (`32MiB`, `10s`) and printed back that
//! way by [`crate::Config::to_yaml`].

use crate::units::{duration, size};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The largest `inputs.max_line_bytes` accepted: a message must fit one index record frame
/// (`runnel_index::MAX_MESSAGE`, 64 MiB less the record's fixed fields; this crate cannot name
/// the index, so a test in the agent checks that this limit is below it).
pub const MAX_LINE_BYTES_LIMIT: u64 = 64 * MIB - 4 * KIB;

/// The whole agent configuration (one YAML file, usually mounted from a ConfigMap).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the index (segment store) and the sinks' cursors live.
    pub data_dir: PathBuf,
    /// This node's name (from the downward API via `${NODE_NAME}`); empty = unknown.
    pub node_name: String,
    /// Which container logs are read and how.
    pub inputs: Inputs,
    /// Segment store limits: retention, segment and block sizes, compression.
    pub index: IndexConfig,
    /// The local HTTP endpoint (queries, follow, metrics, health).
    pub http: HttpConfig,
    /// The per-container cgroup/process collector.
    pub metrics: MetricsConfig,
    /// Where records are shipped.
    pub sinks: Sinks,
    /// The agent's own logging.
    pub log: LogConfig,
    /// What `/healthz` calls stuck.
    pub health: HealthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/runnel"),
            node_name: String::new(),
            inputs: Inputs::default(),
            index: IndexConfig::default(),
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            sinks: Sinks::default(),
            log: LogConfig::default(),
            health: HealthConfig::default(),
        }
    }
}

/// Log inputs: the Docker and CRI file tailers and the limits they share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Inputs {
    /// Docker `json-file` logs.
    pub docker: DockerInput,
    /// CRI (containerd, CRI-O) logs.
    pub cri: CriInput,
    /// The Fluent forward receiver for sidecars.
    pub forward: crate::ForwardInput,
    /// `POST /v1/ingest` for scripts and small apps.
    pub http_ingest: crate::HttpIngest,
    /// Only containers matching these globs are read (an empty list matches everything).
    pub include: Filters,
    /// Containers matching these globs are skipped (applied after `include`).
    pub exclude: Filters,
    /// Longer lines (after merging partials) are cut to this size and flagged truncated: a line
    /// is emitted as soon as it reaches it, and the rest of it is skipped (and counted).
    #[serde(with = "size")]
    pub max_line_bytes: u64,
    /// Memory for lines not yet ended (partial fragments, a progress bar that never writes its
    /// `\n`), all files of the node together: past it the oldest such line is emitted, flagged
    /// truncated, so many containers doing this cannot push the agent past its memory limit.
    #[serde(with = "size")]
    pub max_pending_bytes: u64,
    /// Size of each file read.
    #[serde(with = "size")]
    pub read_buffer_bytes: u64,
    /// Periodic directory rescan, the backstop for missed inotify events.
    #[serde(with = "duration")]
    pub rescan_interval: Duration,
    /// Rotated files kept open per source while they are drained.
    pub max_open_rotated_per_source: usize,
    /// Bytes of parsed records queued towards the index before inputs are slowed down.
    #[serde(with = "size")]
    pub queue_max_bytes: u64,
    /// Bytes at the head of a file hashed into its identity (inode reuse detection).
    #[serde(with = "size")]
    pub fingerprint_bytes: u64,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            docker: DockerInput::default(),
            cri: CriInput::default(),
            forward: crate::ForwardInput::default(),
            http_ingest: crate::HttpIngest::default(),
            include: Filters::default(),
            exclude: Filters::default(),
            max_line_bytes: MIB,
            max_pending_bytes: 8 * MIB,
            read_buffer_bytes: 64 * KIB,
            rescan_interval: Duration::from_secs(10),
            max_open_rotated_per_source: 4,
            queue_max_bytes: 16 * MIB,
            fingerprint_bytes: 1024,
        }
    }
}

/// The Docker `json-file` input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerInput {
    /// Whether Docker logs are read.
    pub enabled: bool,
    /// Docker's containers directory (`<id>/<id>-json.log`, `config.v2.json`).
    pub root: PathBuf,
    /// The Docker Engine API (`unix:///var/run/docker.sock`), off when null. On a plain Docker
    /// host (no kubelet) it makes the engine the source of truth for what runs: containers and
    /// their log paths come from its list and events, so a new container is read as it starts
    /// even when its log is outside `root`. The socket is root-equivalent: leave it off where
    /// the files suffice (the DaemonSet does not mount it).
    pub api: Option<String>,
}

impl Default for DockerInput {
    fn default() -> Self {
        DockerInput {
            enabled: true,
            root: PathBuf::from("/var/lib/docker/containers"),
            api: None,
        }
    }
}

/// The CRI log-file input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CriInput {
    /// Whether CRI logs are read.
    pub enabled: bool,
    /// The kubelet's pod log directory (`<ns>_<pod>_<uid>/<container>/<restart>.log`).
    pub root: PathBuf,
}

impl Default for CriInput {
    fn default() -> Self {
        CriInput {
            enabled: true,
            root: PathBuf::from("/var/log/pods"),
        }
    }
}

/// Glob lists matched against a container's namespace, pod and container names.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filters {
    /// Namespace globs.
    pub namespaces: Vec<String>,
    /// Pod name globs.
    pub pods: Vec<String>,
    /// Container name globs.
    pub containers: Vec<String>,
}

/// Limits of the segment store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Disk budget for the whole node; the oldest sealed segments go first.
    #[serde(with = "size")]
    pub max_disk_bytes: u64,
    /// Records older than this are dropped.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// An active segment is sealed at this size.
    #[serde(with = "size")]
    pub segment_max_bytes: u64,
    /// An active segment is sealed at this age.
    #[serde(with = "duration")]
    pub segment_max_age: Duration,
    /// Raw size of one compressed block in a sealed segment.
    #[serde(with = "size")]
    pub block_bytes: u64,
    /// zstd level for sealed blocks (1..=22; negative = faster levels).
    pub zstd_level: i32,
    /// Sealed segments kept memory-mapped at once; the least recently read is unmapped when
    /// another is needed, so thousands of segments stay far below `vm.max_map_count`.
    pub max_open_maps: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            max_disk_bytes: 10 * GIB,
            max_age: Duration::from_secs(7 * 86_400),
            segment_max_bytes: 32 * MIB,
            segment_max_age: Duration::from_secs(600),
            block_bytes: 128 * KIB,
            zstd_level: 1,
            max_open_maps: 1024,
        }
    }
}

/// The local HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub listen: String,
    /// Who may call which endpoint: anonymous callers and bearer tokens.
    pub auth: HttpAuth,
    /// Serve HTTPS instead of HTTP (plain HTTP on the port is then refused).
    pub tls: HttpTls,
    /// Caps that keep a hostile or broken client from holding the server's memory.
    pub limits: HttpLimits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:2020".into(),
            auth: HttpAuth::default(),
            tls: HttpTls::default(),
            limits: HttpLimits::default(),
        }
    }
}

/// Access control of the HTTP API. `/healthz` and `/readyz` are always open.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpAuth {
    /// Who may call without a token.
    pub anonymous: Anonymous,
    /// YAML file of tokens (`tokens: [{ name, token_sha256, namespaces, rights }]`), usually
    /// mounted from a Secret; re-read when it changes.
    pub tokens_file: Option<PathBuf>,
}

/// Who may call the API without a token; such a caller gets every right on every namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anonymous {
    /// Only connections from a loopback address (inside the pod, or `kubectl exec`).
    #[default]
    Loopback,
    /// Nobody: every call but the health probes needs a token.
    None,
    /// Everybody who can reach the port (a trusted network only).
    All,
}

/// HTTPS for the API; certificate and key are re-read when they change (cert-manager rotation).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpTls {
    /// Server certificate chain (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1), with `cert_file`.
    pub key_file: Option<PathBuf>,
    /// When set, clients must present a certificate signed by one of these CAs (PEM).
    pub client_ca_file: Option<PathBuf>,
}

impl HttpTls {
    /// True when HTTPS is configured.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some() || self.key_file.is_some()
    }
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Open connections at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Concurrent `follow=true` streams; more get a 429.
    pub max_follows: usize,
    /// Time a client has to send a request's headers (and, with TLS, to finish the
    /// handshake); a slower connection is closed.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// Longest request target (path and query); longer ones get a 414.
    #[serde(with = "size")]
    pub max_uri_bytes: u64,
    /// Largest request head (request line and headers); larger ones get a 431.
    #[serde(with = "size")]
    pub max_header_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 4096,
            max_follows: 1024,
            header_timeout: Duration::from_secs(10),
            max_uri_bytes: 8 * KIB,
            max_header_bytes: 16 * KIB,
        }
    }
}

/// The per-container cgroup and process collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether the collector runs.
    pub enabled: bool,
    /// The cgroup filesystem root (the host's, mounted into the pod).
    pub cgroup_root: PathBuf,
    /// The proc filesystem root (the host's, mounted into the pod).
    pub proc_root: PathBuf,
    /// Time between snapshots.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Whether sockets per container are counted.
    pub sockets: bool,
    /// CPU time allowed for socket counting (one `readlink` per descriptor) per snapshot.
    /// Containers not reached keep their last count, are counted first next time, and the cut
    /// is reported in `runnel_metrics_socket_pass_cut_short_total`.
    #[serde(with = "duration")]
    pub socket_budget: Duration,
    /// Whether TCP sockets are broken down by state (costlier).
    pub tcp_states: bool,
    /// Window over which growth (leaks of threads, fds, sockets) is measured.
    #[serde(with = "duration")]
    pub growth_window: Duration,
    /// Container runtimes' state directories, holding `<id>/config.json` (containerd) or
    /// `<id>/userdata/config.json` (CRI-O), whose annotations name a container's pod and image.
    pub runtime_state_dirs: Vec<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            interval: Duration::from_secs(15),
            sockets: true,
            socket_budget: Duration::from_millis(5),
            tcp_states: false,
            growth_window: Duration::from_secs(3600),
            runtime_state_dirs: vec![
                PathBuf::from("/run/containerd/io.containerd.runtime.v2.task/k8s.io"),
                PathBuf::from("/run/containers/storage/overlay-containers"),
            ],
        }
    }
}

/// All sinks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sinks {
    /// The Elasticsearch / OpenSearch bulk sink.
    pub elasticsearch: ElasticsearchConfig,
}

/// The Elasticsearch / OpenSearch bulk sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Whether records are shipped.
    pub enabled: bool,
    /// `http(s)://host:port` base URLs, used in turn.
    pub endpoints: Vec<String>,
    /// Target index name; strftime `%Y %m %d` are replaced from each record's time (UTC).
    pub index: String,
    /// Plain index or data stream (`data_stream` writes with `create`).
    pub mode: EsMode,
    /// How document `_id`s are chosen.
    pub id: IdMode,
    /// When a bulk request is sent.
    pub batch: Batch,
    /// Request body compression.
    pub compression: Compression,
    /// Bulk requests in flight at once: adaptive between `min` and `max` (a map), or a fixed
    /// number (`concurrency: 4`).
    pub concurrency: Concurrency,
    /// Credentials (read from files, never written in the config).
    pub auth: Auth,
    /// TLS settings for `https` endpoints.
    pub tls: Tls,
    /// Where documents Elasticsearch rejects for good are kept.
    pub dead_letter: DeadLetter,
    /// Backoff between retries.
    pub retry: Retry,
    /// Index template installation.
    pub template: Template,
    /// Bytes of encoded batches in memory at once.
    #[serde(with = "size")]
    pub max_in_flight_bytes: u64,
    /// Timeout of one HTTP request.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// If set, a message that is a JSON object is also parsed into this field.
    pub parse_json: Option<String>,
    /// How `--oneshot` waits for the cluster to acknowledge everything.
    pub drain: Drain,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            enabled: false,
            endpoints: vec!["http://127.0.0.1:9200".into()],
            index: "logs-runnel-%Y.%m.%d".into(),
            mode: EsMode::Index,
            id: IdMode::Deterministic,
            batch: Batch::default(),
            compression: Compression::Gzip,
            concurrency: Concurrency::default(),
            auth: Auth::default(),
            tls: Tls::default(),
            dead_letter: DeadLetter::default(),
            retry: Retry::default(),
            template: Template::default(),
            max_in_flight_bytes: 32 * MIB,
            request_timeout: Duration::from_secs(30),
            parse_json: None,
            drain: Drain::default(),
        }
    }
}

/// Bulk requests in flight at once. Adaptive (the default): starts at `min`, grows by one per
/// round trip while latency stays flat and more is wanted, shrinks by `decrease_ratio` on
/// 429/503/timeouts or a latency rise (AIMD). A retried batch keeps its slot, so requests in
/// flight never exceed the limit. Written as a plain number it is fixed at that number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, remote = "Self")]
pub struct Concurrency {
    /// Whether the limit adapts; false = always `max`.
    pub adaptive: bool,
    /// Lowest limit (and the starting one).
    pub min: usize,
    /// Highest limit.
    pub max: usize,
    /// Factor applied to the limit on back-pressure or a latency rise (0 < r < 1).
    pub decrease_ratio: f64,
    /// A round trip's mean latency this fraction above the long-run mean is a rise.
    pub latency_threshold: f64,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            adaptive: true,
            min: 1,
            max: 8,
            decrease_ratio: 0.9,
            latency_threshold: 0.5,
        }
    }
}

impl Concurrency {
    /// A fixed limit of `n` requests.
    pub fn fixed(n: usize) -> Concurrency {
        Concurrency {
            adaptive: false,
            min: n,
            max: n,
            ..Concurrency::default()
        }
    }
}

impl<'de> Deserialize<'de> for Concurrency {
    /// A number (fixed, as before adaptive concurrency existed) or the map of settings, whose
    /// unknown keys are errors naming them.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Concurrency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of requests or a map {adaptive, min, max, decrease_ratio, latency_threshold}")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Concurrency, E> {
                usize::try_from(n)
                    .map(Concurrency::fixed)
                    .map_err(|_| E::custom("concurrency is too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Concurrency, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom("concurrency must not be negative"))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> Result<Concurrency, A::Error> {
                Concurrency::deserialize(serde::de::value::MapAccessDeserializer::new(m))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Concurrency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Concurrency::serialize(self, s)
    }
}

/// `--oneshot` drain: it waits as long as documents keep being acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Drain {
    /// Give up after this long without any document acknowledged (or dead-lettered).
    #[serde(with = "duration")]
    pub no_progress_timeout: Duration,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            no_progress_timeout: Duration::from_secs(300),
        }
    }
}

/// Plain index or data stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EsMode {
    /// `create` actions (deterministic `_id`s make a re-send a 409, not a second document) into
    /// a (date-patterned) index.
    Index,
    /// `create` actions into a data stream.
    DataStream,
}

/// How document ids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdMode {
    /// Derived from the source and sequence: retries are idempotent (a 409 is success).
    Deterministic,
    /// Chosen by Elasticsearch: faster, but a retry may duplicate.
    Auto,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip bodies (`Content-Encoding: gzip`).
    Gzip,
    /// Plain bodies.
    None,
}

/// When a bulk request is sent: whichever limit is reached first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Batch {
    /// Encoded body size.
    #[serde(with = "size")]
    pub max_bytes: u64,
    /// Documents per request.
    pub max_docs: usize,
    /// Longest wait for a batch to fill.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            max_bytes: 5 * MIB,
            max_docs: 5000,
            timeout: Duration::from_secs(1),
        }
    }
}

/// Credentials; secrets are only ever named by file path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// Basic-auth user (with `password_file`).
    pub user: Option<String>,
    /// File holding the basic-auth password.
    pub password_file: Option<PathBuf>,
    /// File holding an API key (`Authorization: ApiKey …`).
    pub api_key_file: Option<PathBuf>,
    /// File holding a bearer token (`Authorization: Bearer …`).
    pub bearer_token_file: Option<PathBuf>,
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tls {
    /// Extra CA certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM), with `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Whether server certificates are verified.
    pub verify: bool,
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            ca_file: None,
            cert_file: None,
            key_file: None,
            verify: true,
        }
    }
}

/// Where permanently rejected documents go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadLetter {
    /// NDJSON file; unset = `<data_dir>/sinks/elasticsearch/dead_letter.ndjson` is the sink's choice.
    pub path: Option<PathBuf>,
    /// When the file reaches this size it is rotated to `<path>.1` (replacing the previous
    /// `.1`), so dead letters use at most twice this on disk.
    #[serde(with = "size")]
    pub max_bytes: u64,
}

impl Default for DeadLetter {
    fn default() -> Self {
        DeadLetter {
            path: None,
            max_bytes: 100 * MIB,
        }
    }
}

/// Exponential backoff between retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retry {
    /// First wait.
    #[serde(with = "duration")]
    pub initial: Duration,
    /// Longest wait.
    #[serde(with = "duration")]
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Index template installation at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Template {
    /// Whether the template is installed (put) at start.
    pub install: bool,
    /// Template name.
    pub name: String,
}

impl Default for Template {
    fn default() -> Self {
        Template {
            install: true,
            name: "runnel".into(),
        }
    }
}

/// The agent's own log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace`, or a tracing filter directive.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Json,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object a line (production).
    Json,
    /// Human-readable text.
    Text,
}

/// Liveness: `/healthz` fails when a part of the pipeline stops moving, so the kubelet restarts
/// the agent (restart is exact: the index and the cursors say where to resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// An input with unread bytes that made no progress, or a writer with waiting records that
    /// completed no sync, for this long is unhealthy.
    #[serde(with = "duration")]
    pub stall_timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            stall_timeout: Duration::from_secs(60),
        }
    }
}
