//! `runnel agent`: read the config, set up logging, and hand over to [`crate::runtime`].

use super::AgentArgs;
use crate::runtime::{self, logging::LogLevel, Launch};
use runnel_config::{Config, Snapshot};

/// Run the agent; returns the process exit code.
pub fn run_agent(args: &AgentArgs) -> i32 {
    let (mut cfg, file) = match &args.config {
        Some(path) => match Snapshot::read(path).and_then(|s| s.parse(path).map(|c| (c, s))) {
            Ok((c, snap)) => (c, Some((path.clone(), snap.sha256))),
            Err(e) => {
                eprintln!("runnel: invalid config:\n{e}");
                return 2;
            }
        },
        None => (Config::default(), None),
    };
    let log = LogLevel::init(&cfg);
    let demo_dir = if args.demo {
        match tempfile::Builder::new().prefix("runnel-demo-").tempdir() {
            Ok(d) => {
                runtime::demo_layout(&mut cfg, d.path());
                Some(d)
            }
            Err(e) => {
                eprintln!("runnel: cannot create the demo directory: {e}");
                return 1;
            }
        }
    } else {
        None
    };
    let launch = Launch {
        cfg,
        file,
        oneshot: args.oneshot,
        demo_root: demo_dir.as_ref().map(|d| d.path().to_path_buf()),
        log,
    };
    match runtime::run(launch) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("runnel: {e}");
            1
        }
    }
}
