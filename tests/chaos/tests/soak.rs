//! The chaos soak (see `tests/chaos/README.md`): `CHAOS_SECONDS` of kills, rotations, sink
//! faults, a full disk and inotify overflows against the real `runnel` binary, then every line
//! accounted for. Prints the summary table; fails with every problem found.

#[test]
fn soak_loses_duplicates_and_corrupts_nothing_and_counts_every_drop() {
    let settings = runnel_chaos::settings::Settings::from_env().unwrap_or_else(|e| panic!("{e}"));
    let summary = runnel_chaos::run::run(&settings)
        .unwrap_or_else(|e| panic!("chaos soak could not run (seed {}): {e}", settings.seed));
    println!("{}", summary.table());
    assert!(
        summary.failures.is_empty(),
        "chaos soak failed (replay with CHAOS_SEED={}):\n{}",
        settings.seed,
        summary.failures.join("\n")
    );
}
