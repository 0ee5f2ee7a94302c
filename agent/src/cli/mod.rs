//! The `runnel` command line: `agent`, `logs`, `check-config`.

mod agent;
mod client;
mod logs;

pub use agent::run_agent;
pub use logs::run_logs;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Runnel: node-level log and metrics agent for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "runnel", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: tail container logs into the index, serve HTTP, ship to sinks.
    Agent(AgentArgs),
    /// Print a pod's or container's logs, with the flags of `kubectl logs`.
    Logs(Box<LogsArgs>),
    /// Validate a config file and print the effective config, or every error with its line.
    CheckConfig {
        /// The YAML file.
        file: PathBuf,
    },
}

/// `runnel agent` flags.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Config file (YAML). Without it the embedded defaults are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Ingest everything present to end of file, flush, ship what is configured, and exit 0.
    #[arg(long)]
    pub oneshot: bool,
    /// Also run a generator that writes Docker and CRI logs into a temporary node layout.
    #[arg(long)]
    pub demo: bool,
}

/// `runnel logs` flags: those of `kubectl logs`, plus `--until-time`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Namespace (default: `default`; plain Docker containers need none).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Pod name (or `pod/NAME`), or a plain Docker container's name or id.
    pub pod: String,
    /// Container name within the pod.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Only lines newer than a relative duration like 5s, 2m, or 3h.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only lines at or after this RFC 3339 time.
    #[arg(long = "since-time", value_name = "TIME")]
    pub since_time: Option<String>,
    /// Only lines before this RFC 3339 time.
    #[arg(long = "until-time", value_name = "TIME")]
    pub until_time: Option<String>,
    /// Lines of recent log to display; -1 shows all.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Maximum bytes of logs to return.
    #[arg(long = "limit-bytes", value_name = "N")]
    pub limit_bytes: Option<u64>,
    /// Include timestamps on each line, as written in the log file.
    #[arg(long)]
    pub timestamps: bool,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Agent HTTP address (default http://127.0.0.1:2020).
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    pub server: Option<String>,
    /// File holding a bearer token for the agent (default: the RUNNEL_TOKEN variable).
    #[arg(long = "token-file", value_name = "FILE", conflicts_with = "data_dir")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the agent's certificate, for an https:// --server.
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    pub cacert: Option<PathBuf>,
    /// Read the index directly from this data directory instead of asking an agent.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}
