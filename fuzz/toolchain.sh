# Sourced by run.sh and ci.sh: installs cargo-fuzz when missing and picks the toolchain.
# cargo-fuzz wants nightly (for the address sanitizer); without one, the targets are built with
# the stable compiler and no sanitizer (RUSTC_BOOTSTRAP lets cargo-fuzz pass its -Z flags):
# coverage guidance, debug assertions and every assertion of the targets still hold.
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  cargo install cargo-fuzz --locked >&2
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  FUZZ_TOOLCHAIN=(+nightly)
  # FUZZ_SANITIZER=none (CI): no AddressSanitizer, a build several minutes shorter; the
  # targets' assertions and coverage guidance are the same.
  FUZZ_BUILD_FLAGS=(-O --sanitizer "${FUZZ_SANITIZER:-address}")
else
  echo "fuzz: no nightly toolchain; building with stable, no sanitizer" >&2
  export RUSTC_BOOTSTRAP=1
  FUZZ_TOOLCHAIN=()
  FUZZ_BUILD_FLAGS=(-O --sanitizer none)
fi
