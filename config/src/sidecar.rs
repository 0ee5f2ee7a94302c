//! The sidecar inputs: the Fluent forward receiver and HTTP ingest. Sidecars (Fluent Bit or
//! Fluentd in the pod, apps with a Fluent logger, scripts) push records to the node agent;
//! each (namespace, pod, container) stream is one source in the index.

use crate::units::{duration, size};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// The Fluent forward protocol receiver (Forward Protocol Specification v1 and v1.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardInput {
    /// Whether the receiver listens.
    pub enabled: bool,
    /// TCP address; the UDP heartbeat is answered on the same port.
    pub listen: String,
    /// Also listen on this Unix socket.
    pub unix_path: Option<PathBuf>,
    /// Permissions of the Unix socket, octal text.
    pub unix_mode: String,
    /// TLS for the TCP listener (same keys as `http.tls`); with it, plain TCP is refused.
    pub tls: crate::HttpTls,
    /// A file holding the shared key: enables the HELO/PING/PONG handshake.
    pub shared_key_file: Option<PathBuf>,
    /// The hostname this server gives in PONG (empty: `node_name`, else the host name).
    pub self_hostname: String,
    /// Optional `username: password` lines (YAML map) clients must also present.
    pub users_file: Option<PathBuf>,
    /// How a tag names the source: `{namespace}`, `{pod}`, `{container}` between literal text.
    pub tag_pattern: String,
    /// Namespace of records whose tag and record name none.
    pub default_namespace: String,
    /// Record key holding the message (then `message`); a record with neither is stored whole
    /// as compact JSON.
    pub message_key: String,
    /// Connections at once; more are refused (counted).
    pub max_connections: usize,
    /// Largest request (one msgpack object) read from a connection: memory per connection.
    #[serde(with = "size")]
    pub max_frame_bytes: u64,
    /// Largest decompressed size of one CompressedPackedForward request.
    #[serde(with = "size")]
    pub max_decompressed_bytes: u64,
    /// A connection silent this long is closed.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Chunks remembered per source so a resent chunk (its ack was lost) is stored once.
    pub chunk_window: usize,
    /// Chunks older than this are forgotten (a resend after that is stored again).
    #[serde(with = "duration")]
    pub chunk_window_age: Duration,
}

impl Default for ForwardInput {
    fn default() -> Self {
        ForwardInput {
            enabled: false,
            listen: "0.0.0.0:24224".into(),
            unix_path: None,
            unix_mode: "0660".into(),
            tls: crate::HttpTls::default(),
            shared_key_file: None,
            self_hostname: String::new(),
            users_file: None,
            tag_pattern: "kube.{namespace}.{pod}.{container}".into(),
            default_namespace: "default".into(),
            message_key: "log".into(),
            max_connections: 1024,
            max_frame_bytes: 16 * MIB,
            max_decompressed_bytes: 64 * MIB,
            idle_timeout: Duration::from_secs(300),
            chunk_window: 4096,
            chunk_window_age: Duration::from_secs(3600),
        }
    }
}

/// `POST /v1/ingest` on the agent's HTTP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpIngest {
    /// Whether the endpoint accepts records.
    pub enabled: bool,
    /// Largest request body (after gzip decoding); larger gets 413.
    #[serde(with = "size")]
    pub max_body_bytes: u64,
    /// How long a request waits for room in the ingest queue before a 503.
    #[serde(with = "duration")]
    pub queue_timeout: Duration,
}

impl Default for HttpIngest {
    fn default() -> Self {
        HttpIngest {
            enabled: true,
            max_body_bytes: 16 * MIB,
            queue_timeout: Duration::from_secs(10),
        }
    }
}
