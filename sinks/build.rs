//! Builds the ISA-L gzip shim (`src/isal_gzip.c`) when the machine has ISA-L's igzip
//! (Debian `libisal-dev`), and sets `cfg(runnel_isal)`; without it the sink gzips with zlib-rs
//! (see `src/gzip.rs`). `scripts/test.sh`, `.ci/run` and the image install it, and a test
//! fails when the build fell back, so what is tested and shipped is the ISA-L build.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(runnel_isal)");
    println!("cargo:rerun-if-changed=src/isal_gzip.c");
    // Watched only while it is there: cargo rebuilds a crate on every build while a watched
    // path is missing. A library installed after a build without it needs
    // `cargo clean -p runnel-sinks` (the scripts install it before the first build).
    const HEADER: &str = "/usr/include/isa-l/igzip_lib.h";
    if std::path::Path::new(HEADER).exists() {
        println!("cargo:rerun-if-changed={HEADER}");
    }
    let mut build = cc::Build::new();
    build
        .file("src/isal_gzip.c")
        .warnings(true)
        .extra_warnings(true);
    // A missing header is the fallback, not a build failure; the compiler's message is kept
    // for `cargo build -vv`.
    match build.try_compile("runnel_isal_gzip") {
        Ok(()) => {
            println!("cargo:rustc-link-lib=dylib=isal");
            println!("cargo:rustc-cfg=runnel_isal");
        }
        Err(e) => {
            println!(
                "cargo:warning=ISA-L (libisal-dev) not found: the sink gzips with zlib-rs ({e})"
            );
        }
    }
}
