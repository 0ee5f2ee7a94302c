//! Forward protocol requests: framing on a stream, decoding one frame, acks, UDP heartbeats.
//!
//! The carrier modes (Forward Protocol Specification v1, and the v1.5 entry metadata):
//!
//! ```text
//! nil                                        TCP heartbeat
//! [tag, time, record(, option)]              Message
//! [tag, [[time, record], ...](, option)]     Forward
//! [tag, bin|str "entry entry ..."(, option)] PackedForward (entries concatenated)
//!   ... with option {"compressed": "gzip"|"zstd"}  CompressedPackedForward
//! entry = [time, record] | [[time, {metadata}], record]        (v1.5)
//! time  = EventTime (ext 0: be32 seconds, be32 nanoseconds) | int seconds | float seconds
//! ```
//!
//! [`decode`] checks a whole request before returning it: every entry's shape, time and record
//! type, and the entry count. A request with any bad entry is an error as a whole, so the
//! server stores nothing of it. Iterating the returned [`Events`] then decodes entries again
//! lazily from the borrowed bytes (no allocation per entry); it cannot fail, and may be done
//! any number of times.

use std::fmt;

use super::inflate::inflate;
use super::json;
use super::msgpack::{read, read_exact, Scanner, Writer};
pub use super::msgpack::{ArrayRef, MapIter, MapRef, ReadError, Value, MAX_DEPTH};

/// Bounds on what one request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (one top-level msgpack object) accepted on a connection; the
    /// connection's read buffer never needs to hold more.
    pub max_frame_bytes: usize,
    /// Largest decompressed payload of a CompressedPackedForward request.
    pub max_decompressed_bytes: usize,
    /// Most entries in one request.
    pub max_entries: usize,
}

impl Default for Limits {
    /// The issue's defaults: 16 MiB frames, 64 MiB decompressed; one million entries.
    fn default() -> Self {
        Limits {
            max_frame_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_entries: 1_000_000,
        }
    }
}

/// Why a frame was refused. [`DecodeError::reason`] is a stable metric label.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// The frame is, or declares itself, longer than the frame limit.
    FrameTooLarge {
        /// `max_frame_bytes`.
        limit: usize,
    },
    /// The compressed payload inflates past `max_decompressed_bytes`.
    DecompressedTooLarge {
        /// `max_decompressed_bytes`.
        limit: usize,
    },
    /// Not MessagePack (a reserved byte, nesting too deep, a truncated entry, trailing bytes).
    Undecodable {
        /// Where in the request (e.g. "frame", "packed entries").
        context: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Well-formed MessagePack of the wrong shape for the forward protocol.
    WrongType {
        /// The field, e.g. "tag", "entry time", "record".
        field: &'static str,
        /// What the protocol wants there.
        expected: &'static str,
        /// What came (a msgpack type name, or a short description).
        found: String,
    },
    /// An unknown `compressed` option, or a payload that does not decompress.
    BadCompression {
        /// The decompressor's message or the unknown option value.
        detail: String,
    },
    /// More entries than `max_entries`.
    TooManyEntries {
        /// `max_entries`.
        limit: usize,
    },
}

impl DecodeError {
    /// A short stable label for `runnel_forward_rejected_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::FrameTooLarge { .. } => "frame_too_large",
            DecodeError::DecompressedTooLarge { .. } => "decompressed_too_large",
            DecodeError::Undecodable { .. } => "undecodable",
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::BadCompression { .. } => "bad_compression",
            DecodeError::TooManyEntries { .. } => "too_many_entries",
        }
    }

    fn undecodable(context: &'static str, e: impl fmt::Display) -> Self {
        DecodeError::Undecodable {
            context,
            detail: e.to_string(),
        }
    }

    fn wrong(field: &'static str, expected: &'static str, found: &Value<'_>) -> Self {
        DecodeError::WrongType {
            field,
            expected,
            found: found.type_name().to_string(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::FrameTooLarge { limit } => write!(
                f,
                "forward request larger than max_frame_bytes ({limit} bytes); raise the limit or \
                 lower the client's chunk size"
            ),
            DecodeError::DecompressedTooLarge { limit } => write!(
                f,
                "compressed forward request inflates past max_decompressed_bytes ({limit} bytes)"
            ),
            DecodeError::Undecodable { context, detail } => {
                write!(f, "not a msgpack forward request ({context}): {detail}")
            }
            DecodeError::WrongType {
                field,
                expected,
                found,
            } => write!(
                f,
                "forward request field {field}: expected {expected}, found {found}"
            ),
            DecodeError::BadCompression { detail } => {
                write!(f, "compressed forward request: {detail}")
            }
            DecodeError::TooManyEntries { limit } => {
                write!(f, "forward request has more than {limit} entries")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

fn frame_error(e: ReadError) -> DecodeError {
    match e {
        ReadError::TooLarge { limit } => DecodeError::FrameTooLarge { limit },
        e => DecodeError::undecodable("frame", e),
    }
}

/// Length of the first complete top-level msgpack object in `buf` (`None`: need more bytes).
///
/// Cheap: walks headers and jumps over payloads without building values. An object longer
/// than `max_frame_bytes` is an error as soon as that is known (a declared length past the
/// limit, or `buf` already longer than the limit while the object is incomplete). A stream
/// server should prefer [`Framer`], which resumes instead of rescanning from the start.
pub fn frame_len(buf: &[u8], max_frame_bytes: usize) -> Result<Option<usize>, DecodeError> {
    Framer::new(max_frame_bytes).next_len(buf)
}

/// [`frame_len`] that remembers its progress across reads into a growing buffer, so a large
/// frame arriving in many reads is walked once.
#[derive(Debug, Clone)]
pub struct Framer {
    scanner: Scanner,
}

impl Framer {
    /// A framer refusing frames longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Framer {
            scanner: Scanner::new(max_frame_bytes),
        }
    }

    /// As [`frame_len`]. `buf` must begin with the bytes given to the previous call (it only
    /// grows) until a frame is found; then consume the frame and call [`Framer::reset`].
    pub fn next_len(&mut self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        self.scanner.scan(buf).map_err(frame_error)
    }

    /// Starts over for the next frame.
    pub fn reset(&mut self) {
        self.scanner.reset();
    }
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub enum Request<'a> {
    /// A `nil` object: a client checking the connection; it needs no answer.
    Heartbeat,
    /// Events to store.
    Events(Events<'a>),
}

/// The compression of a CompressedPackedForward payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// One or more concatenated gzip members.
    Gzip,
    /// One or more concatenated zstd frames.
    Zstd,
}

/// Which carrier mode a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `[tag, time, record(, option)]`.
    Message,
    /// `[tag, [entry, ...](, option)]`.
    Forward,
    /// `[tag, bin|str(, option)]`.
    PackedForward,
    /// PackedForward with `compressed` set.
    CompressedPackedForward(Compression),
}

/// The request's option map (unknown keys are ignored).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Options<'a> {
    /// `chunk`: the client wants `{"ack": chunk}` once the events are stored.
    pub chunk: Option<&'a [u8]>,
    /// `size`: the number of entries the client says it sent (informational).
    pub size: Option<u64>,
    /// `compressed`.
    pub compressed: Option<Compression>,
    /// `fluent_signal` (v1.5): 0 logs, 1 metrics, 2 traces. `None` means logs.
    pub fluent_signal: Option<i64>,
}

/// A checked request's events: tag, options and entries.
#[derive(Debug, Clone)]
pub struct Events<'a> {
    tag: &'a [u8],
    mode: Mode,
    options: Options<'a>,
    count: usize,
    body: Body<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Body<'a> {
    One(Entry<'a>),
    List(ArrayRef<'a>),
    Packed(&'a [u8], Checked),
}

/// Whether a PackedForward payload's entries were checked by the decode, and the entry limit
/// to check them against when they were not.
#[derive(Debug, Clone, Copy)]
struct Checked {
    entries: bool,
    max_entries: usize,
}

impl<'a> Events<'a> {
    /// The tag (str or bin bytes, not checked to be UTF-8).
    pub fn tag(&self) -> &'a [u8] {
        self.tag
    }

    /// The carrier mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The options.
    pub fn options(&self) -> &Options<'a> {
        &self.options
    }

    /// Number of entries (counted while checking).
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the request carried no entry.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries in order; decoded lazily, cannot fail (all were checked by [`decode`]).
    /// Events from [`decode_streamed`] are read with [`Events::checked_entries`]: here their
    /// unchecked PackedForward entries end at the first bad one.
    pub fn iter(&self) -> EntryIter<'a> {
        let inner = match self.body {
            Body::One(e) => Inner::One(Some(e)),
            Body::List(a) => Inner::List(a.iter()),
            Body::Packed(b, _) => Inner::Packed(b),
        };
        EntryIter {
            inner,
            left: self.count,
        }
    }

    /// The entries in order, each checked as it is read when [`decode_streamed`] left that to
    /// the reader: a bad entry, or one past the entry limit, is an `Err` (as [`decode`] would
    /// have refused the request), and nothing follows it. The caller must not keep anything of
    /// a request whose entries end in an error.
    pub fn checked_entries(&self) -> CheckedEntries<'a> {
        match self.body {
            Body::Packed(rest, c) if !c.entries => CheckedEntries::Packed {
                rest,
                read: 0,
                max_entries: c.max_entries,
            },
            _ => CheckedEntries::Checked(self.iter()),
        }
    }
}

/// Iterator of [`Events::checked_entries`].
#[derive(Debug, Clone)]
pub enum CheckedEntries<'a> {
    /// Entries the decode checked already.
    Checked(EntryIter<'a>),
    /// PackedForward entries checked as they are read.
    Packed {
        /// The entries not read yet.
        rest: &'a [u8],
        /// Entries read so far.
        read: usize,
        /// Most entries allowed.
        max_entries: usize,
    },
}

impl<'a> Iterator for CheckedEntries<'a> {
    type Item = Result<Entry<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            CheckedEntries::Checked(it) => it.next().map(Ok),
            CheckedEntries::Packed {
                rest,
                read,
                max_entries,
            } => {
                if rest.is_empty() {
                    return None;
                }
                // The same checks, in the same order, as `check_packed`.
                let got = if *read == *max_entries {
                    Err(DecodeError::TooManyEntries {
                        limit: *max_entries,
                    })
                } else {
                    super::msgpack::read(rest)
                        .map_err(|e| DecodeError::undecodable("packed entries", e))
                        .and_then(|(v, used)| {
                            *rest = rest.get(used..).unwrap_or_default();
                            parse_entry(v)
                        })
                };
                match got {
                    Ok(e) => {
                        *read += 1;
                        Some(Ok(e))
                    }
                    Err(e) => {
                        *rest = &[];
                        Some(Err(e))
                    }
                }
            }
        }
    }
}

/// Iterator over a request's entries.
#[derive(Debug, Clone)]
pub struct EntryIter<'a> {
    inner: Inner<'a>,
    left: usize,
}

#[derive(Debug, Clone)]
enum Inner<'a> {
    One(Option<Entry<'a>>),
    List(super::msgpack::ValueIter<'a>),
    Packed(&'a [u8]),
}

impl<'a> Iterator for EntryIter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        let got = match &mut self.inner {
            Inner::One(e) => e.take(),
            Inner::List(it) => it.next().and_then(|v| parse_entry(v).ok()),
            Inner::Packed(rest) => match read(rest) {
                Ok((v, used)) => {
                    *rest = rest.get(used..).unwrap_or_default();
                    parse_entry(v).ok()
                }
                Err(_) => None,
            },
        };
        match got {
            Some(e) => {
                self.left = self.left.saturating_sub(1);
                Some(e)
            }
            None => {
                // Only at the end: every entry was checked by `decode`.
                debug_assert_eq!(self.left, 0, "a checked entry failed to decode");
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for EntryIter<'_> {}

/// One event: its time and record, and the v1.5 metadata map when sent.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Nanoseconds since the Unix epoch. 0 means the client sent time 0: Fluentd's in_forward
    /// stores such events at the time of arrival, and so should the server.
    pub time_ns: i64,
    /// The v1.5 `[time, {metadata}]` map, if the entry used that form with a map.
    pub metadata: Option<Record<'a>>,
    /// The record.
    pub record: Record<'a>,
}

/// A record (a msgpack map) with accessors by key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<'a>(MapRef<'a>);

impl<'a> Record<'a> {
    /// The value of `key` (the first pair whose str/bin key equals it).
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.0.get(key)
    }

    /// The bytes of `key`'s value when it is a `str` or `bin`.
    pub fn get_str(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.get(key).and_then(|v| v.as_bytes())
    }

    /// `key`'s value when it is a map, e.g. Fluent Bit's `kubernetes` map
    /// (`namespace_name`, `pod_name`, `container_name`).
    pub fn get_map(&self, key: &[u8]) -> Option<Record<'a>> {
        match self.get(key)? {
            Value::Map(m) => Some(Record(m)),
            _ => None,
        }
    }

    /// The key/value pairs in wire order.
    pub fn iter(&self) -> MapIter<'a> {
        self.0.iter()
    }

    /// Number of key/value pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the record has no field.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The record as one compact JSON object, appended to `out`: keys in wire order; str
    /// and bin as strings (invalid UTF-8 replaced by U+FFFD); non-string keys as the string
    /// of their JSON; NaN and infinities as `null`; EventTime and msgpack timestamp exts as
    /// a number of seconds with nanosecond decimals; other exts as
    /// `{"ext_type": N, "hex": "..."}`.
    pub fn write_compact_json(&self, out: &mut Vec<u8>) {
        json::write_map(self.0, out);
    }
}

/// The answer to a request with a `chunk` option: the msgpack map `{"ack": chunk}`.
pub fn encode_ack(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 8);
    let mut w = Writer(&mut out);
    w.map(1);
    w.str(b"ack");
    w.str(chunk);
    out
}

/// The reply to a UDP heartbeat datagram. Fluentd's in_forward answers every datagram on
/// its UDP port with the single byte 0x00, whatever it held (and the spec says a heartbeat
/// SHOULD be 0x00 both ways); out_forward's `heartbeat_type udp` waits for any reply.
pub fn udp_heartbeat_reply(_datagram: &[u8]) -> &'static [u8] {
    b"\0"
}

/// Decodes and checks one frame (as delimited by [`frame_len`]).
///
/// A CompressedPackedForward payload is inflated into `scratch` (cleared first; reuse one per
/// connection), bounded by `limits.max_decompressed_bytes`; the returned events borrow
/// `frame` and `scratch`.
pub fn decode<'a>(
    frame: &'a [u8],
    limits: &Limits,
    scratch: &'a mut Vec<u8>,
) -> Result<Request<'a>, DecodeError> {
    decode_with(frame, limits, scratch, true)
}

/// [`decode`] for a caller that reads the entries once, with [`Events::checked_entries`]: the
/// entries of a PackedForward payload are checked as they are read rather than in a pass of
/// their own before (the payload is walked once, not twice), so [`Events::len`] is not known
/// for them (it is 0) and a bad entry is reported by the iterator. Everything else is checked
/// here, as [`decode`] checks it.
pub fn decode_streamed<'a>(
    frame: &'a [u8],
    limits: &Limits,
    scratch: &'a mut Vec<u8>,
) -> Result<Request<'a>, DecodeError> {
    decode_with(frame, limits, scratch, false)
}

fn decode_with<'a>(
    frame: &'a [u8],
    limits: &Limits,
    scratch: &'a mut Vec<u8>,
    check_entries: bool,
) -> Result<Request<'a>, DecodeError> {
    if frame.len() > limits.max_frame_bytes {
        return Err(DecodeError::FrameTooLarge {
            limit: limits.max_frame_bytes,
        });
    }
    let top = match read_exact(frame) {
        Ok(Ok(v)) => v,
        Ok(Err(at)) => {
            return Err(DecodeError::undecodable(
                "frame",
                format!("{} bytes after the request's end", frame.len() - at),
            ))
        }
        Err(e) => return Err(DecodeError::undecodable("frame", e)),
    };
    let arr = match top {
        Value::Nil => return Ok(Request::Heartbeat),
        Value::Array(a) => a,
        other => return Err(DecodeError::wrong("request", "array or nil", &other)),
    };
    let mut items = arr.iter();
    let (Some(tag), Some(second)) = (items.next(), items.next()) else {
        return Err(arity(arr.len()));
    };
    let tag = tag
        .as_bytes()
        .ok_or_else(|| DecodeError::wrong("tag", "str", &tag))?;
    let (mode, options, count, body) = match second {
        Value::Str(packed) | Value::Bin(packed) => {
            let options = options(items.next(), arr.len() <= 3)?;
            let (mode, bytes) = match options.compressed {
                None => (Mode::PackedForward, packed),
                Some(c) => {
                    inflate(packed, c, limits.max_decompressed_bytes, scratch)?;
                    let bytes: &'a Vec<u8> = scratch;
                    (Mode::CompressedPackedForward(c), bytes.as_slice())
                }
            };
            let count = if check_entries {
                check_packed(bytes, limits.max_entries)?
            } else {
                0
            };
            let checked = Checked {
                entries: check_entries,
                max_entries: limits.max_entries,
            };
            (mode, options, count, Body::Packed(bytes, checked))
        }
        Value::Array(list) => {
            let options = options(items.next(), arr.len() <= 3)?;
            uncompressed(&options)?;
            if list.len() > limits.max_entries {
                return Err(DecodeError::TooManyEntries {
                    limit: limits.max_entries,
                });
            }
            for e in list.iter() {
                parse_entry(e)?;
            }
            (Mode::Forward, options, list.len(), Body::List(list))
        }
        time => {
            let record = items.next().ok_or_else(|| arity(arr.len()))?;
            let options = options(items.next(), arr.len() <= 4)?;
            uncompressed(&options)?;
            if limits.max_entries == 0 {
                return Err(DecodeError::TooManyEntries { limit: 0 });
            }
            let entry = Entry {
                time_ns: parse_time(time, "message time")?,
                metadata: None,
                record: as_record(record, "message record")?,
            };
            (Mode::Message, options, 1, Body::One(entry))
        }
    };
    Ok(Request::Events(Events {
        tag,
        mode,
        options,
        count,
        body,
    }))
}

fn arity(len: usize) -> DecodeError {
    DecodeError::WrongType {
        field: "request",
        expected: "an array of 2 to 4 elements (Message, Forward or PackedForward)",
        found: format!("an array of {len}"),
    }
}

fn uncompressed(options: &Options<'_>) -> Result<(), DecodeError> {
    match options.compressed {
        None => Ok(()),
        Some(_) => Err(DecodeError::WrongType {
            field: "option compressed",
            expected: "a PackedForward payload (bin or str) to decompress",
            found: "Message or Forward mode".to_string(),
        }),
    }
}

/// Parses the option map; `fits` is false when elements follow it (wrong arity).
fn options<'a>(v: Option<Value<'a>>, fits: bool) -> Result<Options<'a>, DecodeError> {
    if !fits {
        return Err(DecodeError::WrongType {
            field: "request",
            expected: "no element after the option map",
            found: "extra elements".to_string(),
        });
    }
    let map = match v {
        None | Some(Value::Nil) => return Ok(Options::default()),
        Some(Value::Map(m)) => m,
        Some(other) => return Err(DecodeError::wrong("option", "map", &other)),
    };
    let mut o = Options::default();
    for (k, v) in map.iter() {
        match k.as_bytes() {
            Some(b"chunk") => {
                o.chunk = Some(
                    v.as_bytes()
                        .ok_or_else(|| DecodeError::wrong("option chunk", "str", &v))?,
                )
            }
            Some(b"size") => match v {
                Value::Int(n) if n >= 0 => o.size = Some(n as u64),
                Value::UInt(n) => o.size = Some(n),
                _ => return Err(DecodeError::wrong("option size", "unsigned int", &v)),
            },
            Some(b"compressed") => {
                let name = v
                    .as_bytes()
                    .ok_or_else(|| DecodeError::wrong("option compressed", "str", &v))?;
                o.compressed = match name {
                    b"gzip" => Some(Compression::Gzip),
                    b"zstd" => Some(Compression::Zstd),
                    // Fluentd's out_forward names the uncompressed form "text".
                    b"text" => None,
                    other => {
                        return Err(DecodeError::BadCompression {
                            detail: format!(
                                "unknown compressed option {:?} (gzip, zstd or text)",
                                String::from_utf8_lossy(other)
                            ),
                        })
                    }
                };
            }
            Some(b"fluent_signal") => match v {
                Value::Int(n) => o.fluent_signal = Some(n),
                _ => return Err(DecodeError::wrong("option fluent_signal", "int", &v)),
            },
            _ => {}
        }
    }
    Ok(o)
}

/// Counts and checks the concatenated entries of a PackedForward payload.
fn check_packed(mut rest: &[u8], max_entries: usize) -> Result<usize, DecodeError> {
    let mut count = 0usize;
    while !rest.is_empty() {
        if count == max_entries {
            return Err(DecodeError::TooManyEntries { limit: max_entries });
        }
        let (v, used) = read(rest).map_err(|e| DecodeError::undecodable("packed entries", e))?;
        parse_entry(v)?;
        rest = rest.get(used..).unwrap_or_default();
        count += 1;
    }
    Ok(count)
}

/// `[time, record]` or the v1.5 `[[time, metadata], record]`.
fn parse_entry(v: Value<'_>) -> Result<Entry<'_>, DecodeError> {
    let Value::Array(a) = v else {
        return Err(DecodeError::wrong("entry", "array [time, record]", &v));
    };
    let mut it = a.iter();
    let (Some(t), Some(r), None) = (it.next(), it.next(), it.next()) else {
        return Err(DecodeError::WrongType {
            field: "entry",
            expected: "array [time, record]",
            found: format!("an array of {}", a.len()),
        });
    };
    let (time_ns, metadata) = match t {
        Value::Array(pair) => {
            let mut p = pair.iter();
            let (Some(t), Some(m), None) = (p.next(), p.next(), p.next()) else {
                return Err(DecodeError::WrongType {
                    field: "entry time",
                    expected: "time or [time, metadata map]",
                    found: format!("an array of {}", pair.len()),
                });
            };
            let metadata = match m {
                Value::Nil => None,
                m => Some(as_record(m, "entry metadata")?),
            };
            (parse_time(t, "entry time")?, metadata)
        }
        t => (parse_time(t, "entry time")?, None),
    };
    Ok(Entry {
        time_ns,
        metadata,
        record: as_record(r, "record")?,
    })
}

fn as_record<'a>(v: Value<'a>, field: &'static str) -> Result<Record<'a>, DecodeError> {
    match v {
        Value::Map(m) => Ok(Record(m)),
        other => Err(DecodeError::wrong(field, "map", &other)),
    }
}

const NS: i64 = 1_000_000_000;

/// EventTime (ext 0, 8 bytes), the msgpack timestamp ext (-1), or int/float seconds.
fn parse_time(v: Value<'_>, field: &'static str) -> Result<i64, DecodeError> {
    let bad = |why: &str| DecodeError::WrongType {
        field,
        expected: "EventTime, int or float seconds since the epoch",
        found: why.to_string(),
    };
    let be32 = |d: &[u8], at: usize| -> i64 {
        d.get(at..at + 4).map_or(0, |b| {
            i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        })
    };
    let sec_ns = |s: i64, ns: i64| {
        if ns >= NS {
            return Err(bad("nanoseconds past 999999999"));
        }
        s.checked_mul(NS)
            .and_then(|t| t.checked_add(ns))
            .ok_or_else(|| bad("a time out of range"))
    };
    match v {
        Value::Int(s) => sec_ns(s, 0),
        Value::UInt(_) => Err(bad("a time out of range")),
        Value::F32(f) => float_ns(f64::from(f)).ok_or_else(|| bad("a float out of range")),
        Value::F64(f) => float_ns(f).ok_or_else(|| bad("a float out of range")),
        Value::Ext(0, d) if d.len() == 8 => sec_ns(be32(d, 0), be32(d, 4)),
        Value::Ext(-1, d) if d.len() == 4 => sec_ns(be32(d, 0), 0),
        Value::Ext(-1, d) if d.len() == 8 => {
            let x = (be32(d, 0) << 32) | be32(d, 4);
            sec_ns(x & 0x3_ffff_ffff, x >> 34)
        }
        Value::Ext(-1, d) if d.len() == 12 => {
            let s = d
                .get(4..12)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, i64::from_be_bytes);
            sec_ns(s, be32(d, 0))
        }
        Value::Ext(t, d) => Err(bad(&format!("ext type {t} of {} bytes", d.len()))),
        other => Err(bad(other.type_name())),
    }
}

fn float_ns(f: f64) -> Option<i64> {
    let ns = (f * 1e9).round();
    // `as` saturates; the range check keeps only exact conversions.
    (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64)
}
