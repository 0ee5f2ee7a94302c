//! Gzip of a whole bulk body in one call, the compressor state and output buffer kept per
//! thread so a batch allocates and zeroes neither.
//!
//! Built with ISA-L (Debian `libisal-dev`; see `build.rs`), the sink uses igzip's level 1:
//! on the end-to-end bench's bodies it compresses about twice as fast as zlib-rs's level 1
//! and to a smaller size (`benches/bulk.rs` prints both, with libdeflate and miniz_oxide).
//! Without it, flate2's `Compress` with the native gzip wrapper of its zlib-rs backend, which
//! computes the CRC while it copies the input into its window (`GzEncoder` runs a second pass
//! for the CRC and copies the output through its own buffer).

use flate2::{Compress, Compression, FlushCompress, Status};
use std::cell::RefCell;

struct Gz {
    level: u32,
    z: Compress,
    out: Vec<u8>,
}

thread_local! {
    static GZ: RefCell<Option<Gz>> = const { RefCell::new(None) };
}

/// The level the zlib-rs path sends at: deflate's fastest, "quick" strategy (see the bench
/// for the ratio at 1 and 6).
pub const LEVEL: u32 = 1;

/// Which compressor [`gzip`] uses in this build: `"isa-l"` or `"zlib-rs"`.
pub const BACKEND: &str = if cfg!(runnel_isal) {
    "isa-l"
} else {
    "zlib-rs"
};

/// `body` gzipped as the sink sends it: ISA-L's level 1 when the build has it, else
/// [`zlib_gzip`] at [`LEVEL`].
pub fn gzip(body: &[u8]) -> std::io::Result<bytes::Bytes> {
    #[cfg(runnel_isal)]
    if let Some(z) = isal::gzip(body) {
        return Ok(z);
    }
    zlib_gzip(body, LEVEL)
}

#[cfg(runnel_isal)]
mod isal {
    use std::cell::RefCell;
    use std::ffi::{c_int, c_void};

    extern "C" {
        fn runnel_isal_stream_size() -> usize;
        fn runnel_isal_level_buf_size() -> usize;
        fn runnel_isal_gzip(
            stream: *mut c_void,
            level_buf: *mut u8,
            level_buf_len: usize,
            input: *const u8,
            in_len: usize,
            out: *mut u8,
            out_cap: usize,
            out_len: *mut usize,
        ) -> c_int;
    }

    /// ISA-L's stream (its size comes from the C side, which asserts at compile time that
    /// u64 words align it) and level buffer.
    struct State {
        stream: Vec<u64>,
        level_buf: Vec<u8>,
        out: Vec<u8>,
    }

    thread_local! {
        static ISAL: RefCell<Option<State>> = const { RefCell::new(None) };
    }

    /// `body` gzipped, or `None` for zlib-rs to do it: when even a bound above the input's size
    /// did not hold the output, when the body is past ISA-L's 32-bit lengths, or when ISA-L
    /// failed (warned once: a body must never wait on a compressor that refuses it).
    pub(super) fn gzip(body: &[u8]) -> Option<bytes::Bytes> {
        if body.len() > (u32::MAX as usize) / 2 {
            return None;
        }
        ISAL.with_borrow_mut(|slot| {
            let st = slot.get_or_insert_with(|| State {
                // SAFETY: the two size queries read constants and have no preconditions.
                stream: vec![0u64; unsafe { runnel_isal_stream_size() }.div_ceil(8)],
                level_buf: vec![0u8; unsafe { runnel_isal_level_buf_size() }],
                out: Vec::new(),
            });
            // A body compresses to an eighth or so; incompressible input needs the second try.
            for cap in [
                body.len() / 3 + (64 << 10),
                body.len() + body.len() / 8 + (64 << 10),
            ] {
                st.out.clear();
                st.out.reserve(cap);
                let mut n = 0usize;
                // SAFETY: `stream` has the size ISA-L's struct needs at an alignment (8) it
                // accepts, `level_buf` the length passed, and `out` has `capacity()` writable
                // bytes; the shim writes at most `out_cap` bytes and only reads `body`.
                let rc = unsafe {
                    runnel_isal_gzip(
                        st.stream.as_mut_ptr().cast(),
                        st.level_buf.as_mut_ptr(),
                        st.level_buf.len(),
                        body.as_ptr(),
                        body.len(),
                        st.out.as_mut_ptr(),
                        st.out.capacity(),
                        &mut n,
                    )
                };
                match rc {
                    0 if n <= st.out.capacity() => {
                        // SAFETY: ISA-L wrote the first `n` bytes, within the capacity.
                        unsafe { st.out.set_len(n) };
                        let z = bytes::Bytes::copy_from_slice(&st.out);
                        if st.out.capacity() > 16 << 20 {
                            st.out = Vec::new();
                        }
                        return Some(z);
                    }
                    1 => continue,
                    rc => {
                        if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            tracing::warn!(
                                code = rc,
                                bytes = body.len(),
                                "ISA-L refused to gzip a bulk body; zlib-rs gzips it (warned once)"
                            );
                        }
                        return None;
                    }
                }
            }
            None
        })
    }

    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
}

/// `body` gzipped at `level` (0–9) with zlib-rs: the sink's gzip when the build has no ISA-L,
/// the fallback for a body ISA-L's output bound does not hold, and the bench's comparison.
pub fn zlib_gzip(body: &[u8], level: u32) -> std::io::Result<bytes::Bytes> {
    GZ.with_borrow_mut(|slot| {
        let gz = match slot {
            Some(gz) if gz.level == level => {
                gz.z.reset();
                gz
            }
            _ => slot.insert(Gz {
                level,
                z: Compress::new_gzip(Compression::new(level), 15),
                out: Vec::new(),
            }),
        };
        // Capacity stays from one body to the next; only what is written is ever touched.
        gz.out.clear();
        gz.out.reserve(body.len() / 8 + 4096);
        let mut input = body;
        loop {
            let (in0, out0) = (gz.z.total_in(), gz.z.total_out());
            let status =
                gz.z.compress_vec(input, &mut gz.out, FlushCompress::Finish)
                    .map_err(|e| std::io::Error::other(format!("gzip: {e}")))?;
            let (took, wrote) = (gz.z.total_in() - in0, gz.z.total_out() - out0);
            input = &input[took as usize..];
            match status {
                Status::StreamEnd => break,
                _ if gz.out.len() == gz.out.capacity() => {
                    gz.out.reserve(gz.out.capacity() / 2 + 4096);
                }
                _ if took == 0 && wrote == 0 => {
                    return Err(std::io::Error::other(
                        "gzip: the compressor made no progress",
                    ));
                }
                _ => {}
            }
        }
        let z = bytes::Bytes::copy_from_slice(&gz.out);
        // A rare huge body does not stay pinned per thread.
        if gz.out.capacity() > 16 << 20 {
            gz.out = Vec::new();
        }
        Ok(z)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    /// Incompressible bytes: the hashes of a counter.
    fn noise(n: usize) -> Vec<u8> {
        (0..n.div_ceil(8) as u64)
            .flat_map(|i| xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()).to_le_bytes())
            .take(n)
            .collect()
    }

    #[test]
    fn the_build_gzips_with_isa_l() {
        assert_eq!(
            BACKEND, "isa-l",
            "runnel-sinks was built without ISA-L, so the sink gzips with zlib-rs at about half \
             the speed: install Debian's libisal-dev (scripts/test.sh does) and rebuild \
             (cargo clean -p runnel-sinks)"
        );
    }

    #[test]
    fn the_sinks_gzip_round_trips_every_shape_of_body_with_the_state_reused() {
        let mut body = Vec::new();
        for i in 0..200_000 {
            body.extend_from_slice(format!("{{\"create\":{{}}}}\n{{\"n\":{i}}}\n").as_bytes());
        }
        // Bodies of every size class, a body the first output bound cannot hold (noise), and
        // the state reused between them in one thread. The header's OS byte tells which
        // compressor wrote a body (ISA-L: 255, zlib: 3), so a silent fallback fails here.
        let os = if BACKEND == "isa-l" { 0xff } else { 0x03 };
        let random = noise(3 << 20);
        for input in [
            &body[..],
            &b""[..],
            &body[..1],
            &random[..],
            &body[..1000],
            &body[..],
        ] {
            let z = gzip(input).unwrap();
            assert_eq!(&z[..2], &[0x1f, 0x8b], "a gzip member");
            assert_eq!(z[9], os, "{} bytes gzipped by {BACKEND}", input.len());
            assert_eq!(gunzip(&z), input, "{} bytes", input.len());
        }
        assert!(gzip(&body).unwrap().len() < body.len() / 5, "it compresses");
    }

    #[test]
    fn bodies_round_trip_through_a_standard_gzip_reader_with_the_state_reused() {
        let mut body = Vec::new();
        for i in 0..20_000 {
            body.extend_from_slice(format!("{{\"create\":{{}}}}\n{{\"n\":{i}}}\n").as_bytes());
        }
        for (level, input) in [
            (1, &body[..]),
            (1, &b""[..]),
            (1, &body[..1000]),
            (6, &body[..]),
            (1, &body[..]),
        ] {
            let z = zlib_gzip(input, level).unwrap();
            assert_eq!(gunzip(&z), input, "level {level}, {} bytes", input.len());
        }
        // Incompressible input larger than its bound estimate still completes.
        let noise = noise(300_000);
        assert_eq!(gunzip(&zlib_gzip(&noise, 1).unwrap()), noise);
    }
}
