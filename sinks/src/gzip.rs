//! Gzip of a whole bulk body in one call, with zlib-rs directly: its native gzip wrapper
//! computes the CRC while it copies the input into its window (flate2's `GzEncoder` runs a
//! second pass over the body for the CRC and copies the output through its own buffer), and
//! the compressor state and output buffer are kept per thread, so a batch allocates and
//! zeroes neither. Measured in `benches/bulk.rs` against flate2 and libdeflate.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use zlib_rs::{DeflateConfig, DeflateFlush, Status};

/// The level the sink sends at: deflate's fastest, "quick" strategy (see the bench for the
/// ratio at 1 and 6).
pub const LEVEL: i32 = 1;

struct Gz {
    level: i32,
    z: zlib_rs::Deflate,
    out: Vec<u8>,
}

thread_local! {
    static GZ: RefCell<Option<Gz>> = const { RefCell::new(None) };
}

/// `body` gzipped at `level` (0–9).
pub fn gzip(body: &[u8], level: i32) -> std::io::Result<bytes::Bytes> {
    GZ.with_borrow_mut(|slot| {
        let gz = match slot {
            Some(gz) if gz.level == level => {
                gz.z.reset();
                gz
            }
            _ => slot.insert(Gz {
                level,
                // window_bits 15 + 16: the gzip wrapper.
                z: zlib_rs::Deflate::new_with_config(DeflateConfig {
                    level,
                    window_bits: 31,
                    ..DeflateConfig::default()
                }),
                out: Vec::new(),
            }),
        };
        let bound = zlib_rs::compress_bound(body.len()) + 64;
        gz.out.clear();
        gz.out.reserve(bound);
        let mut input = body;
        loop {
            let spare: &mut [MaybeUninit<u8>] = gz.out.spare_capacity_mut();
            let (in0, out0) = (gz.z.total_in(), gz.z.total_out());
            let status =
                gz.z.compress_uninit(input, spare, DeflateFlush::Finish)
                    .map_err(|e| std::io::Error::other(format!("gzip: {}", e.as_str())))?;
            let wrote = (gz.z.total_out() - out0) as usize;
            // SAFETY: the compressor initialized the first `wrote` bytes of the spare capacity.
            unsafe { gz.out.set_len(gz.out.len() + wrote) };
            input = &input[(gz.z.total_in() - in0) as usize..];
            match status {
                Status::StreamEnd => break,
                Status::Ok | Status::BufError => gz.out.reserve(bound / 4 + 4096),
            }
        }
        let z = bytes::Bytes::copy_from_slice(&gz.out);
        // A rare huge body does not stay pinned per thread.
        if gz.out.capacity() > 64 << 20 {
            gz.out = Vec::new();
        }
        Ok(z)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

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
            let z = gzip(input, level).unwrap();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&z[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input, "level {level}, {} bytes", input.len());
        }
        // Incompressible input larger than its bound estimate still completes.
        let mut x = 1u64;
        let noise: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let z = gzip(&noise, 1).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, noise);
    }
}
