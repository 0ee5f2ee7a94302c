//! runnel-config: the agent's YAML configuration — schema with every default, `${VAR}` /
//! `${VAR:-default}` interpolation, human sizes and durations, and errors that name the file,
//! line and key so an operator can fix a ConfigMap without a debugger.
//!
//! ```
//! let cfg = runnel_config::Config::from_yaml_str("index: { max_disk_bytes: 2GiB }\n", "inline").unwrap();
//! assert_eq!(cfg.index.max_disk_bytes, 2 << 30);
//! assert_eq!(cfg.http.listen, "0.0.0.0:2020");
//! ```

#![deny(missing_docs)]

mod diff;
mod interpolate;
mod schema;
mod sidecar;
mod units;
mod validate;
mod watch;

pub use diff::{Diff, NOT_LIVE};
pub use schema::*;
pub use sidecar::{ForwardInput, HttpIngest};
pub use units::{format_duration, format_size, parse_duration, parse_size};
pub use watch::{Candidate, ConfigWatcher, Snapshot, WatchError};

use std::path::Path;

/// A config that cannot be used; `Display` prints one `origin:line:col: message` per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// Each problem, already prefixed with the file and (where known) line and column.
    pub problems: Vec<String>,
}

impl ConfigError {
    /// Every problem on one line (`; ` between them), for a single log line.
    pub fn one_line(&self) -> String {
        self.problems.join("; ")
    }
}

impl Config {
    /// Read, interpolate, parse and validate a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!("{origin}: cannot read: {e}")],
        })?;
        Config::from_yaml_str(&text, &origin)
    }

    /// Parse and validate YAML text; `origin` names it in errors.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let one = |m: String| ConfigError {
            problems: vec![format!("{origin}:{m}")],
        };
        let text = interpolate::interpolate(text, |n| std::env::var(n).ok()).map_err(one)?;
        let cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| {
                let msg = e.to_string();
                match e.location() {
                    Some(l) => one(format!(
                        "{}:{}: {}",
                        l.line(),
                        l.column(),
                        strip_location(&msg)
                    )),
                    None => one(format!(" {msg}")),
                }
            })?
        };
        let problems = validate::validate(&cfg);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError {
                problems: problems
                    .into_iter()
                    .map(|p| {
                        let key = if p.key.is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", p.key)
                        };
                        match validate::line_of(&text, &p.key) {
                            Some(line) => format!("{origin}:{line}: {key}{}", p.message),
                            None => format!("{origin}: {key}{}", p.message),
                        }
                    })
                    .collect(),
            })
        }
    }

    /// The effective config as YAML (sizes and durations human-readable) that loads back as
    /// this config: a `$` in a value is written `$$`, so interpolation does not read it again.
    pub fn to_yaml(&self) -> String {
        match serde_yaml::to_string(self) {
            Ok(text) => interpolate::escape(&text),
            Err(e) => format!("# cannot print config: {e}\n"),
        }
    }
}

fn strip_location(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

/// `runnel check-config`: the effective config, or every error.
pub fn check(path: &Path) -> Result<String, ConfigError> {
    Config::load(path).map(|c| c.to_yaml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let e = Config::from_yaml_str(
            "http:\n  listen: \"127.0.0.1:1\"\nindex:\n  max_disk_byte: 1GiB\n",
            "cm.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("cm.yaml:4:"), "{e}");
        assert!(e.contains("max_disk_byte"), "{e}");
    }

    #[test]
    fn bad_values_are_reported() {
        let e = Config::from_yaml_str("index: { max_disk_bytes: lots }\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"lots\" is not a size"), "{e}");
        let e = Config::from_yaml_str(
            "http: { listen: nowhere }\nsinks: { elasticsearch: { endpoints: [\"ftp://x\"] } }\n",
            "c",
        )
        .unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        let e = Config::from_yaml_str("inputs: { rescan_interval: [1] }\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c:1:"), "{e}");
    }

    #[test]
    fn docker_api_must_be_a_unix_socket_url() {
        let ok = Config::from_yaml_str(
            "inputs: { docker: { api: \"unix:///var/run/docker.sock\" } }\n",
            "c",
        )
        .unwrap();
        assert_eq!(
            ok.inputs.docker.api.as_deref(),
            Some("unix:///var/run/docker.sock")
        );
        assert_eq!(Config::default().inputs.docker.api, None);
        for bad in [
            "tcp://127.0.0.1:2375",
            "/var/run/docker.sock",
            "unix://relative.sock",
        ] {
            let e = Config::from_yaml_str(
                &format!("inputs: {{ docker: {{ api: \"{bad}\" }} }}\n"),
                "c",
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("inputs.docker.api"), "{bad}: {e}");
        }
    }

    #[test]
    fn printed_config_with_dollars_loads_as_itself() {
        // Found by fuzz/config_load: a value holding "${A}" (written "$${A}") was printed raw,
        // and loading the print looked up the variable A.
        let cfg = Config::from_yaml_str("node_name: \"$${A} $$$$ $5\"\ndata_dir: /tmp/$$x\n", "c")
            .unwrap();
        assert_eq!(cfg.node_name, "${A} $$ $5");
        let printed = cfg.to_yaml();
        assert_eq!(Config::from_yaml_str(&printed, "printed").unwrap(), cfg);
    }

    #[test]
    fn round_trip_and_example_equal_defaults() {
        let d = Config::default();
        assert_eq!(Config::from_yaml_str(&d.to_yaml(), "rt").unwrap(), d);
        let example = include_str!("../examples/runnel.yaml");
        std::env::remove_var("NODE_NAME");
        assert_eq!(Config::from_yaml_str(example, "example").unwrap(), d);
    }
}
