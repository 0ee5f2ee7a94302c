//! Gzip of a whole bulk body in one call: flate2's `Compress` with the native gzip wrapper
//! of its zlib-rs backend, which computes the CRC while it copies the input into its window
//! (`GzEncoder` runs a second pass over the body for the CRC and copies the output through
//! its own buffer), with the compressor state and output buffer kept per thread, so a batch
//! allocates and zeroes neither. Measured in `benches/bulk.rs` against `GzEncoder`,
//! libdeflate and miniz_oxide.

use flate2::{Compress, Compression, FlushCompress, Status};
use std::cell::RefCell;

/// The level the sink sends at: deflate's fastest, "quick" strategy (see the bench for the
/// ratio at 1 and 6).
pub const LEVEL: u32 = 1;

struct Gz {
    level: u32,
    z: Compress,
    out: Vec<u8>,
}

thread_local! {
    static GZ: RefCell<Option<Gz>> = const { RefCell::new(None) };
}

/// `body` gzipped at `level` (0–9).
pub fn gzip(body: &[u8], level: u32) -> std::io::Result<bytes::Bytes> {
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
