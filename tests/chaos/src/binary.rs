//! Finding the `runnel` binary: this crate is not the agent's, so Cargo does not hand it the
//! binary's path; it takes `RUNNEL_BIN`, else the workspace's `target/debug/runnel`.

use std::path::PathBuf;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binary under test, or an error that says how to build it.
pub fn runnel_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("RUNNEL_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("RUNNEL_BIN={} is not a file", p.display()))
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let p = target.join("debug/runnel");
    if p.is_file() {
        Ok(p.canonicalize().unwrap_or(p))
    } else {
        Err(format!(
            "{} is missing: build it first with `cargo build -p runnel-agent` (or set RUNNEL_BIN to a runnel binary)",
            p.display()
        ))
    }
}
