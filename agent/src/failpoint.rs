//! Debug-build failpoints for the supervision and health tests: a real stall or crash of one
//! pipeline part, triggered from outside by a file, with nothing in release builds.
//!
//! With `RUNNEL_FAILPOINTS=<dir>` set, a part calling [`at`] (`tailer`, `writer`, `metrics`, `sink`: the
//! sink's pipeline loop, through [`install_sink_hook`]):
//! waits while `<dir>/<part>.pause` exists (with `<dir>/<part>.paused` present while it waits),
//! panics when `<dir>/<part>.panic` exists, and is told
//! to return (an unexpected exit) when `<dir>/<part>.exit` exists.

/// What the caller does after [`at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Carry on.
    Continue,
    /// Return from the thread's loop as if it had ended by itself.
    Exit,
}

/// Check the failpoints of `part`; see the module doc. Always `Continue` in release builds.
#[cfg(debug_assertions)]
pub fn at(part: &str) -> Action {
    let Some(dir) = std::env::var_os("RUNNEL_FAILPOINTS") else {
        return Action::Continue;
    };
    let dir = std::path::PathBuf::from(dir);
    let pause = dir.join(format!("{part}.pause"));
    if pause.exists() {
        // Tells the test that the part is parked here (and reads nothing until released).
        let parked = dir.join(format!("{part}.paused"));
        let _ = std::fs::write(&parked, "");
        while pause.exists() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(parked);
    }
    if dir.join(format!("{part}.panic")).exists() {
        panic!("failpoint {part}.panic");
    }
    if dir.join(format!("{part}.exit")).exists() {
        return Action::Exit;
    }
    Action::Continue
}

/// Check the failpoints of `part`; see the module doc. Always `Continue` in release builds.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn at(_part: &str) -> Action {
    Action::Continue
}

/// Let the sink's pipeline loop check the `sink` failpoints (the sinks crate does not know
/// this module; it takes a hook). Nothing in release builds.
pub fn install_sink_hook() {
    #[cfg(debug_assertions)]
    runnel_sinks::set_loop_hook(|| at("sink") == Action::Exit);
}
