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
}

impl Default for DockerInput {
    fn default() -> Self {
        DockerInput {
            enabled: true,
            root: PathBuf::from("/var/lib/docker/containers"),
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
        }
    }
}

/// The local HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port` to listen on.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:2020".into(),
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
    /// Bulk requests in flight at once.
    pub concurrency: usize,
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
            concurrency: 2,
            auth: Auth::default(),
            tls: Tls::default(),
            dead_letter: DeadLetter::default(),
            retry: Retry::default(),
            template: Template::default(),
            max_in_flight_bytes: 32 * MIB,
            request_timeout: Duration::from_secs(30),
            parse_json: None,
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
