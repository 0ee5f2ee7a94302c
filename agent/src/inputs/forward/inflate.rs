//! Bounded decompression of CompressedPackedForward payloads: a bomb is an error after at
//! most `limit + 1` bytes of output, never an allocation of what it claims.

use std::io::Read;

use super::codec::{Compression, DecodeError};

/// Inflates `payload` into `out`, never holding more than `limit + 1` bytes (plus one read).
pub(super) fn inflate(
    payload: &[u8],
    c: Compression,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let bad = |e: std::io::Error| DecodeError::BadCompression {
        detail: format!("{c:?} payload does not decompress: {e}").to_lowercase(),
    };
    match c {
        Compression::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(payload), limit, out)
            .map_err(|e| e.map_io(bad)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(payload).map_err(bad)?;
            // The window is memory the decoder allocates: 16 MiB is past what zstd's levels
            // 1-19 use for chunks this size, and refuses frames that ask for more.
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(bad)?;
            read_bounded(d, limit, out).map_err(|e| e.map_io(bad))
        }
    }
}

const ZSTD_WINDOW_LOG_MAX: u32 = 24;

enum Bounded {
    Io(std::io::Error),
    TooLarge(usize),
}

impl Bounded {
    fn map_io(self, f: impl Fn(std::io::Error) -> DecodeError) -> DecodeError {
        match self {
            Bounded::Io(e) => f(e),
            Bounded::TooLarge(limit) => DecodeError::DecompressedTooLarge { limit },
        }
    }
}

fn read_bounded(mut r: impl Read, limit: usize, out: &mut Vec<u8>) -> Result<(), Bounded> {
    out.clear();
    let mut len = 0usize;
    loop {
        if len == out.len() {
            if len > limit {
                out.clear();
                return Err(Bounded::TooLarge(limit));
            }
            // Grow by doubling from 64 KiB, never past `limit + 1` (one byte over tells).
            let grow = len.max(64 << 10).min(limit.saturating_add(1) - len);
            out.reserve_exact(grow);
            out.resize(len + grow, 0);
        }
        match r.read(&mut out[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                out.clear();
                return Err(Bounded::Io(e));
            }
        }
    }
    out.truncate(len);
    if len > limit {
        out.clear();
        return Err(Bounded::TooLarge(limit));
    }
    Ok(())
}
