//! `runnel logs`: the request from kubectl-style flags, answered from the data directory
//! directly or by an agent over HTTP.

use super::{client, LogsArgs};
use crate::logs::{LogRequest, LogStream, LogsError, Progress, RequestError};
use crate::timefmt::parse_rfc3339;
use runnel_index::Store;
use std::io::Write;
use std::time::Duration;

/// How often `-f --data-dir` looks for records written by the agent process.
const DATA_DIR_FOLLOW_POLL: Duration = Duration::from_millis(100);

fn flag_error(flag: &str, message: String) -> String {
    format!("error: {flag}: {message}")
}

/// Build the request; errors are worded for the command line.
pub fn request_from_args(a: &LogsArgs) -> Result<LogRequest, String> {
    let since_seconds = match &a.since {
        None => None,
        Some(s) => {
            let d = runnel_config::parse_duration(s)
                .map_err(|e| flag_error("--since", e.to_string()))?;
            let secs = (d.as_millis() as u64).div_ceil(1000);
            if secs == 0 {
                return Err(flag_error("--since", "must be greater than 0".into()));
            }
            Some(secs)
        }
    };
    let time = |flag: &str, v: &Option<String>| -> Result<Option<(i64, String)>, String> {
        v.as_ref()
            .map(|t| {
                parse_rfc3339(t)
                    .map(|(ns, _)| (ns, t.clone()))
                    .map_err(|e| flag_error(flag, e.to_string()))
            })
            .transpose()
    };
    if a.since.is_some() && a.since_time.is_some() {
        return Err("error: at most one of --since or --since-time may be used".into());
    }
    let tail_lines = match a.tail {
        n if n < -1 => {
            return Err(flag_error(
                "--tail",
                format!("must be -1 or greater, got {n}"),
            ))
        }
        -1 => None,
        n => Some(n as u64),
    };
    if a.limit_bytes == Some(0) {
        return Err(flag_error("--limit-bytes", "must be greater than 0".into()));
    }
    let req = LogRequest {
        namespace: a.namespace.clone(),
        pod: a.pod.clone(),
        container: a.container.clone(),
        since_seconds,
        since_time: time("--since-time", &a.since_time)?,
        until_time: time("--until-time", &a.until_time)?,
        tail_lines,
        limit_bytes: a.limit_bytes,
        timestamps: a.timestamps,
        previous: a.previous,
        follow: a.follow,
    };
    req.validate()
        .map_err(|RequestError { parameter, message }| format!("error: {parameter}: {message}"))?;
    Ok(req)
}

/// Run `runnel logs`; returns the process exit code.
pub fn run_logs(args: &LogsArgs) -> i32 {
    let req = match request_from_args(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let result = match &args.data_dir {
        Some(dir) => from_data_dir(dir, &req),
        None => {
            let server = args
                .server
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:2020".to_string());
            client::ClientAuth::from_flags(args.token_file.as_ref(), args.cacert.as_ref())
                .and_then(|auth| client::stream_logs(&server, &req, &auth))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

fn from_data_dir(dir: &std::path::Path, req: &LogRequest) -> Result<(), String> {
    // Accept the agent's `data_dir` as well as the index directory inside it.
    let nested = dir.join("index");
    let dir = if nested.is_dir() {
        nested.as_path()
    } else {
        dir
    };
    let store = Store::open_read_only(dir)
        .map_err(|e| format!("error: opening the index at {}: {e}", dir.display()))?;
    let mut stream = LogStream::open(&store, req).map_err(|e| match e {
        LogsError::Resolve(r) if r.is_not_found() => format!("Error from server (NotFound): {r}"),
        LogsError::Resolve(r) => format!("Error from server (BadRequest): {r}"),
        other => format!("error: {other}"),
    })?;
    let stdout = std::io::stdout();
    let mut out = Vec::with_capacity(crate::logs::stream::CHUNK_BYTES);
    loop {
        out.clear();
        let progress = stream
            .next_chunk(&store, &mut out)
            .map_err(|e| format!("error: {e}"))?;
        if !out.is_empty() {
            let mut lock = stdout.lock();
            if lock.write_all(&out).and_then(|_| lock.flush()).is_err() {
                return Ok(()); // reader went away (e.g. `| head`)
            }
        }
        match progress {
            Progress::More => {}
            Progress::Done => return Ok(()),
            Progress::CaughtUp if !req.follow => return Ok(()),
            Progress::CaughtUp => {
                // Another process writes the store: no in-process wake-up reaches us here.
                std::thread::sleep(DATA_DIR_FOLLOW_POLL);
                store
                    .refresh_source(stream.key())
                    .map_err(|e| format!("error: {e}"))?;
            }
        }
    }
}
