//! The config loader (`config/src/*.rs`: interpolation, YAML schema, units, validation).
//!
//! Asserts, for any text:
//! - loading never panics, and every error line names the file it came from;
//! - round trip: when `load(x)` succeeds, `load(to_yaml(load(x)))` succeeds with the same
//!   config (what `runnel check-config` prints is a config that loads as itself), and printing
//!   it again gives the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runnel_config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_yaml_str(text, "fuzz.yaml") {
        Ok(cfg) => {
            let printed = cfg.to_yaml();
            let again = Config::from_yaml_str(&printed, "printed.yaml").unwrap_or_else(|e| {
                panic!("the printed config does not load: {e}\n--- printed:\n{printed}")
            });
            assert_eq!(
                again, cfg,
                "round trip changed the config\n--- printed:\n{printed}"
            );
            assert_eq!(again.to_yaml(), printed, "printing is not stable");
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error without a problem");
            for p in &e.problems {
                assert!(
                    p.starts_with("fuzz.yaml"),
                    "problem does not name the file: {p}"
                );
            }
        }
    }
});
