//! Entry points for the benchmarks that compare sealed-segment formats in one run: seal a run of
//! records in a chosen format and read a segment back the way queries do. Not part of the
//! store's API (hidden from the docs); the store itself always writes [`Format::CURRENT`].

use crate::frame;
use crate::sealed::SealedSegment;
use crate::segment_writer::{BuildError, SegmentBuilder};
use crate::{Error, NewRecord};
use std::path::Path;

pub use crate::sealed::Format;

/// Append the frame of `rec` (sequence `seq`) to `out`, as the active segment holds it.
pub fn encode_frame(out: &mut Vec<u8>, seq: u64, rec: &NewRecord<'_>) {
    frame::encode(out, seq, rec);
}

/// Seal `chunks` (each of whole frames, contiguous sequences, as the active segment's chunk
/// index cuts them) into the bytes of a sealed segment of `format`.
pub fn seal<'a>(
    format: Format,
    chunks: impl IntoIterator<Item = &'a [u8]>,
    block_target: usize,
    level: i32,
) -> Result<Vec<u8>, String> {
    let describe = |e: BuildError| match e {
        BuildError::Frames(what) => what,
        BuildError::Io(e) => e.to_string(),
    };
    let mut b =
        SegmentBuilder::with_format(Vec::new(), block_target, level, format).map_err(describe)?;
    for c in chunks {
        b.push_frames(c).map_err(describe)?;
    }
    b.finish().map_err(describe)
}

/// Open the sealed segment at `path` and read every record of every block into owned records,
/// as a query does; returns (records, message bytes).
pub fn read_all(path: &Path) -> Result<(u64, u64), Error> {
    let seg = SealedSegment::open(path)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    for (i, m) in seg.blocks()?.iter().enumerate() {
        let block = seg.block(i)?;
        for r in block.records(m.first_seq) {
            let r = r.map_err(|e| Error::Corrupt {
                path: path.to_path_buf(),
                offset: e.at as u64,
                what: e.what.to_string(),
            })?;
            let r = r.to_stored();
            n += 1;
            bytes += r.message.len() as u64;
        }
    }
    Ok((n, bytes))
}
