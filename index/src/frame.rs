//! Record frames: the unit written to active segments and packed (uncompressed) into format 1
//! sealed blocks (format 2 blocks hold the same fields as columns, see the `block` module). A frame is `len:u32 | crc32c:u32 | payload[len]`, little-endian, where the CRC covers
//! the payload. Decoding validates every length against the bytes actually present, so no file
//! content can make it panic or allocate more than the input size.

use crate::{FileId, NewRecord, Position, RecordFlags, StoredRecord, Stream, TimeStyle};

/// Bytes before the payload: length and CRC.
pub const FRAME_HEADER: usize = 8;
/// Fixed payload bytes before the position data.
const FIXED: usize = 8 + 8 + 4 + 1 + 1 + 1 + 1 + 1;
/// Most bytes a frame takes beside its message (the longest position is a file's, 32 bytes).
pub const MAX_OVERHEAD: usize = FRAME_HEADER + FIXED + 32;
/// Largest payload accepted when decoding (a message is capped far below this by the tailer).
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Largest message [`crate::Store::append`] accepts: the payload with the longest position still
/// fits [`MAX_PAYLOAD`], so everything written can be read back.
pub const MAX_MESSAGE: usize = MAX_PAYLOAD - FIXED - 32;

/// Bytes of the frame of a record with this position and message length.
pub fn encoded_len(position: &Position, message_len: usize) -> usize {
    let pos = match position {
        Position::None => 0,
        Position::File { .. } => 32,
        Position::Stream { .. } => 16,
    };
    FRAME_HEADER + FIXED + pos + message_len
}

/// Append the frame for `rec` with sequence `seq` to `out`; returns the frame length.
pub fn encode(out: &mut Vec<u8>, seq: u64, rec: &NewRecord<'_>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&rec.time_ns.to_le_bytes());
    out.extend_from_slice(&rec.time_style.offset_secs.to_le_bytes());
    out.push(rec.time_style.frac_digits);
    out.push(u8::from(rec.time_style.zulu));
    out.push(match rec.stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    });
    out.push(rec.flags.0);
    match rec.position {
        Position::None => out.push(0),
        Position::File { file, offset } => {
            out.push(1);
            for v in [file.dev, file.ino, file.fingerprint, offset] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Position::Stream { stream_id, seq } => {
            out.push(2);
            out.extend_from_slice(&stream_id.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
        }
    }
    out.extend_from_slice(rec.message);
    let payload_len = out.len() - start - FRAME_HEADER;
    let crc = crate::crc::crc32c(&out[start + FRAME_HEADER..]);
    out[start..start + 4].copy_from_slice(&(payload_len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.len() - start
}

/// A decoded frame borrowing its message from the input buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    /// Per-source sequence.
    pub seq: u64,
    /// Record time (ns).
    pub time_ns: i64,
    /// How the time was written.
    pub time_style: TimeStyle,
    /// Output stream.
    pub stream: Stream,
    /// Flags.
    pub flags: RecordFlags,
    /// Source position.
    pub position: Position,
    /// Message bytes.
    pub message: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// The record as [`encode`] takes it (the sequence is `self.seq`).
    pub fn as_new(&self) -> NewRecord<'a> {
        NewRecord {
            time_ns: self.time_ns,
            time_style: self.time_style,
            stream: self.stream,
            flags: self.flags,
            message: self.message,
            position: self.position,
        }
    }

    /// Copy into an owned record.
    pub fn to_stored(self) -> StoredRecord {
        StoredRecord {
            seq: self.seq,
            time_ns: self.time_ns,
            time_style: self.time_style,
            stream: self.stream,
            flags: self.flags,
            message: self.message.to_vec(),
            position: self.position,
        }
    }
}

impl StoredRecord {
    /// The record as a view borrowing its message, what readers that take either an owned
    /// record or a view into a block (the sink's encoder) work on.
    pub fn view(&self) -> FrameView<'_> {
        FrameView {
            seq: self.seq,
            time_ns: self.time_ns,
            time_style: self.time_style,
            stream: self.stream,
            flags: self.flags,
            position: self.position,
            message: &self.message,
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared length: a torn write.
    Truncated,
    /// The CRC does not match the payload.
    BadCrc,
    /// The payload is shorter than its fields or has an unknown enum value.
    BadPayload(&'static str),
}

impl FrameError {
    /// Short description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            FrameError::Truncated => "torn frame (fewer bytes than its length)",
            FrameError::BadCrc => "frame CRC mismatch",
            FrameError::BadPayload(what) => what,
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decode the frame at the start of `buf`; returns it and its total length.
pub fn decode(buf: &[u8]) -> Result<(FrameView<'_>, usize), FrameError> {
    decode_with(buf, true)
}

/// [`decode`] without the CRC check, for frames this process just wrote and re-frames without
/// changing them (sealing): every reader of the result still checks each frame's CRC.
pub fn decode_unverified(buf: &[u8]) -> Result<(FrameView<'_>, usize), FrameError> {
    decode_with(buf, false)
}

fn decode_with(buf: &[u8], verify_crc: bool) -> Result<(FrameView<'_>, usize), FrameError> {
    if buf.len() < FRAME_HEADER {
        return Err(FrameError::Truncated);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len > MAX_PAYLOAD {
        return Err(FrameError::BadPayload("frame length exceeds the maximum"));
    }
    if buf.len() - FRAME_HEADER < len {
        return Err(FrameError::Truncated);
    }
    let p = &buf[FRAME_HEADER..FRAME_HEADER + len];
    if verify_crc && crate::crc::crc32c(p) != crc {
        return Err(FrameError::BadCrc);
    }
    if p.len() < FIXED {
        return Err(FrameError::BadPayload(
            "frame payload shorter than its fixed fields",
        ));
    }
    let seq = u64_at(p, 0);
    let time_ns = u64_at(p, 8) as i64;
    let offset_secs = i32::from_le_bytes([p[16], p[17], p[18], p[19]]);
    let time_style = TimeStyle {
        offset_secs,
        frac_digits: p[20],
        zulu: p[21] != 0,
    };
    let stream = match p[22] {
        0 => Stream::Stdout,
        1 => Stream::Stderr,
        _ => return Err(FrameError::BadPayload("unknown stream value")),
    };
    let flags = RecordFlags(p[23]);
    let (position, msg_at) = match p[24] {
        0 => (Position::None, FIXED),
        1 => {
            if p.len() < FIXED + 32 {
                return Err(FrameError::BadPayload(
                    "frame too short for a file position",
                ));
            }
            let file = FileId {
                dev: u64_at(p, FIXED),
                ino: u64_at(p, FIXED + 8),
                fingerprint: u64_at(p, FIXED + 16),
            };
            let offset = u64_at(p, FIXED + 24);
            (Position::File { file, offset }, FIXED + 32)
        }
        2 => {
            if p.len() < FIXED + 16 {
                return Err(FrameError::BadPayload(
                    "frame too short for a stream position",
                ));
            }
            let position = Position::Stream {
                stream_id: u64_at(p, FIXED),
                seq: u64_at(p, FIXED + 8),
            };
            (position, FIXED + 16)
        }
        _ => return Err(FrameError::BadPayload("unknown position kind")),
    };
    let view = FrameView {
        seq,
        time_ns,
        time_style,
        stream,
        flags,
        position,
        message: &p[msg_at..],
    };
    Ok((view, FRAME_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(msg: &[u8], position: Position) -> NewRecord<'_> {
        NewRecord {
            time_ns: -5,
            time_style: TimeStyle {
                offset_secs: -3600,
                frac_digits: 9,
                zulu: false,
            },
            stream: Stream::Stderr,
            flags: RecordFlags(3),
            message: msg,
            position,
        }
    }

    #[test]
    fn frames_round_trip_every_position_kind() {
        let file = FileId {
            dev: 1,
            ino: 2,
            fingerprint: 3,
        };
        let positions = [
            Position::None,
            Position::File { file, offset: 99 },
            Position::Stream {
                stream_id: 7,
                seq: 8,
            },
        ];
        let mut buf = Vec::new();
        for (i, p) in positions.iter().enumerate() {
            encode(&mut buf, i as u64, &rec(b"hello", *p));
        }
        let mut got = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let (f, n) = decode(&buf[at..]).unwrap();
            got.push(f.to_stored());
            at += n;
        }
        assert_eq!(got.len(), 3);
        let lens: usize = positions.iter().map(|p| encoded_len(p, 5)).sum();
        assert_eq!(lens, buf.len());
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.seq, i as u64);
            assert_eq!(g.position, positions[i]);
            assert_eq!(g.message, b"hello");
            assert_eq!(g.time_ns, -5);
            assert_eq!(g.time_style.offset_secs, -3600);
            assert_eq!(g.stream, Stream::Stderr);
        }
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        encode(&mut buf, 0, &rec(b"abc", Position::None));
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut]).is_err());
        }
        for i in 0..buf.len() {
            let mut b = buf.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "flip at {i} undetected");
        }
    }
}
