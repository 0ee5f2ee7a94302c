//! A zero-copy MessagePack reader, a resumable frame scanner and a tiny writer.
//!
//! Values borrow the input buffer ([`Value::Str`] is a slice of it); arrays and maps are
//! lazy views ([`ArrayRef`], [`MapRef`]) over bytes that were already checked to be complete,
//! well-formed and no deeper than [`MAX_DEPTH`], so iterating them cannot fail and never
//! allocates. Checking is one iterative pass ([`skip`]) with no recursion, so hostile input
//! cannot overflow the stack; every length is checked against the buffer before it is used,
//! so no byte sequence makes this module panic.
//!
//! Format reference: the MessagePack specification (msgpack/msgpack `spec.md`).

use std::fmt;

/// Deepest nesting of arrays and maps accepted. Fluent Bit records nest a few levels
/// (record → kubernetes → labels); the forward envelope adds three.
pub const MAX_DEPTH: usize = 64;

/// Why bytes are not (yet) one MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The value is cut short: more bytes are needed.
    Incomplete,
    /// Byte `0xc1`, which MessagePack never uses, at this offset.
    InvalidByte { offset: usize },
    /// Arrays/maps nested deeper than [`MAX_DEPTH`] at this offset.
    TooDeep { offset: usize },
    /// The value's declared or actual size passes the frame limit.
    TooLarge { limit: usize },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Incomplete => write!(f, "msgpack value is truncated"),
            ReadError::InvalidByte { offset } => {
                write!(f, "byte 0xc1 (never used in msgpack) at offset {offset}")
            }
            ReadError::TooDeep { offset } => {
                write!(
                    f,
                    "arrays/maps nested deeper than {MAX_DEPTH} at offset {offset}"
                )
            }
            ReadError::TooLarge { limit } => write!(f, "msgpack value longer than {limit} bytes"),
        }
    }
}

/// One decoded value, borrowing the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// `nil`.
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// Any integer that fits an `i64` (all signed, and unsigned up to `i64::MAX`).
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// `float 32`.
    F32(f32),
    /// `float 64`.
    F64(f64),
    /// `str` bytes, not checked to be UTF-8 (clients send whatever their files held).
    Str(&'a [u8]),
    /// `bin` bytes.
    Bin(&'a [u8]),
    /// `array`: a lazy view.
    Array(ArrayRef<'a>),
    /// `map`: a lazy view.
    Map(MapRef<'a>),
    /// `ext`/`fixext`: type and data.
    Ext(i8, &'a [u8]),
}

impl<'a> Value<'a> {
    /// The msgpack family name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "int",
            Value::F32(_) | Value::F64(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(..) => "ext",
        }
    }

    /// The bytes of a `str` or a `bin` (Fluent clients use either for text).
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::Str(b) | Value::Bin(b) => Some(b),
            _ => None,
        }
    }
}

/// A lazy array: `len` elements encoded in `body` (checked complete and well-formed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayRef<'a> {
    len: u32,
    body: &'a [u8],
}

impl<'a> ArrayRef<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the array has no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in order.
    pub fn iter(&self) -> ValueIter<'a> {
        ValueIter {
            rest: self.body,
            left: self.len as u64,
        }
    }

    /// The element at `i` (walks the preceding ones).
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        self.iter().nth(i)
    }
}

/// A lazy map: `len` key/value pairs encoded in `body` (checked complete and well-formed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapRef<'a> {
    len: u32,
    body: &'a [u8],
}

impl<'a> MapRef<'a> {
    /// Number of key/value pairs.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when the map has no pair.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pairs in wire order.
    pub fn iter(&self) -> MapIter<'a> {
        MapIter {
            inner: ValueIter {
                rest: self.body,
                left: self.len as u64 * 2,
            },
        }
    }

    /// The value of the first pair whose key is a `str` or `bin` equal to `key`.
    pub fn get(&self, key: &[u8]) -> Option<Value<'a>> {
        self.iter()
            .find(|(k, _)| k.as_bytes() == Some(key))
            .map(|(_, v)| v)
    }
}

/// Iterator over values known to be well-formed (array elements, map keys and values).
#[derive(Debug, Clone)]
pub struct ValueIter<'a> {
    rest: &'a [u8],
    left: u64,
}

impl<'a> Iterator for ValueIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.left == 0 {
            return None;
        }
        match read(self.rest) {
            Ok((v, used)) => {
                self.left -= 1;
                self.rest = self.rest.get(used..).unwrap_or_default();
                Some(v)
            }
            Err(_) => {
                // Unreachable: the bytes were checked by `skip` when the view was made.
                debug_assert!(false, "pre-validated msgpack failed to decode");
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// Iterator over the key/value pairs of a [`MapRef`].
#[derive(Debug, Clone)]
pub struct MapIter<'a> {
    inner: ValueIter<'a>,
}

impl<'a> Iterator for MapIter<'a> {
    type Item = (Value<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let k = self.inner.next()?;
        let v = self.inner.next()?;
        Some((k, v))
    }
}

/// What the first bytes of a value say about it.
enum Head {
    /// A value with no nested elements: header + payload take `total` bytes.
    Scalar { total: u64 },
    /// An array or map: `hdr` header bytes, then `items` values (2 per map pair).
    Container {
        hdr: usize,
        items: u64,
        is_map: bool,
    },
}

fn be(buf: &[u8], at: usize, n: usize) -> Result<u64, ReadError> {
    let bytes = buf.get(at..at + n).ok_or(ReadError::Incomplete)?;
    Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// Decodes the header at `buf[0]` without looking at the payload.
fn head(buf: &[u8], offset: usize) -> Result<Head, ReadError> {
    let b = *buf.first().ok_or(ReadError::Incomplete)?;
    let scalar = |total: u64| Ok(Head::Scalar { total });
    match b {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => scalar(1),
        0x80..=0x8f => Ok(Head::Container {
            hdr: 1,
            items: u64::from(b & 0x0f) * 2,
            is_map: true,
        }),
        0x90..=0x9f => Ok(Head::Container {
            hdr: 1,
            items: u64::from(b & 0x0f),
            is_map: false,
        }),
        0xa0..=0xbf => scalar(1 + u64::from(b & 0x1f)),
        0xc1 => Err(ReadError::InvalidByte { offset }),
        // bin 8/16/32
        0xc4 => scalar(2 + be(buf, 1, 1)?),
        0xc5 => scalar(3 + be(buf, 1, 2)?),
        0xc6 => scalar(5 + be(buf, 1, 4)?),
        // ext 8/16/32: length, type byte, data
        0xc7 => scalar(3 + be(buf, 1, 1)?),
        0xc8 => scalar(4 + be(buf, 1, 2)?),
        0xc9 => scalar(6 + be(buf, 1, 4)?),
        0xca => scalar(5),
        0xcb => scalar(9),
        0xcc | 0xd0 => scalar(2),
        0xcd | 0xd1 => scalar(3),
        0xce | 0xd2 => scalar(5),
        0xcf | 0xd3 => scalar(9),
        // fixext 1/2/4/8/16: type byte + data
        0xd4 => scalar(3),
        0xd5 => scalar(4),
        0xd6 => scalar(6),
        0xd7 => scalar(10),
        0xd8 => scalar(18),
        // str 8/16/32
        0xd9 => scalar(2 + be(buf, 1, 1)?),
        0xda => scalar(3 + be(buf, 1, 2)?),
        0xdb => scalar(5 + be(buf, 1, 4)?),
        0xdc => Ok(Head::Container {
            hdr: 3,
            items: be(buf, 1, 2)?,
            is_map: false,
        }),
        0xdd => Ok(Head::Container {
            hdr: 5,
            items: be(buf, 1, 4)?,
            is_map: false,
        }),
        0xde => Ok(Head::Container {
            hdr: 3,
            items: be(buf, 1, 2)? * 2,
            is_map: true,
        }),
        0xdf => Ok(Head::Container {
            hdr: 5,
            items: be(buf, 1, 4)? * 2,
            is_map: true,
        }),
    }
}

/// A resumable scanner for the length of the first complete value in a growing buffer.
///
/// A stream connection appends to its buffer and calls [`Scanner::scan`] after each read; the
/// scanner resumes where it stopped, so a 16 MiB frame arriving in 64 KiB reads is walked
/// once, not 256 times. Large `str`/`bin` payloads (PackedForward) are jumped over, not read.
/// Call [`Scanner::reset`] after consuming a frame.
#[derive(Debug, Clone)]
pub struct Scanner {
    limit: usize,
    /// Offset of the next value header (may lie past the buffer while a payload arrives).
    pos: usize,
    /// Values still to read at each open nesting level; the bottom entry is the frame itself.
    /// A fixed array so that checking a value allocates nothing.
    stack: [u64; MAX_DEPTH + 1],
    depth: usize,
}

impl Scanner {
    /// A scanner refusing any value longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Scanner {
            limit,
            pos: 0,
            stack: [1; MAX_DEPTH + 1],
            depth: 1,
        }
    }

    /// Forgets progress, for the next frame (which starts at offset 0 of the next buffer).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.stack[0] = 1;
        self.depth = 1;
    }

    /// `Ok(Some(n))`: `buf[..n]` is one complete value. `Ok(None)`: need more bytes.
    /// `buf` must start with the same bytes as on the previous call (it only grows).
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ReadError> {
        loop {
            while self.depth > 0 && self.stack[self.depth - 1] == 0 {
                self.depth -= 1;
            }
            if self.depth == 0 {
                // Complete; further calls give the same answer until `reset`.
                return Ok(Some(self.pos));
            }
            let rest = match buf.get(self.pos..) {
                Some(r) if !r.is_empty() => r,
                _ => return self.incomplete(buf),
            };
            let h = match head(rest, self.pos) {
                Ok(h) => h,
                Err(ReadError::Incomplete) => return self.incomplete(buf),
                Err(e) => return Err(e),
            };
            self.stack[self.depth - 1] -= 1;
            match h {
                Head::Scalar { total } => {
                    self.pos = self.advance(total)?;
                }
                Head::Container { hdr, items, .. } => {
                    self.pos = self.advance(hdr as u64)?;
                    // Every value takes at least one byte: a count past the limit is known
                    // to be too large before its elements arrive.
                    if (self.pos as u64).saturating_add(items) > self.limit as u64 {
                        return Err(ReadError::TooLarge { limit: self.limit });
                    }
                    if items > 0 {
                        if self.depth > MAX_DEPTH {
                            return Err(ReadError::TooDeep { offset: self.pos });
                        }
                        self.stack[self.depth] = items;
                        self.depth += 1;
                    }
                }
            }
        }
    }

    fn advance(&self, by: u64) -> Result<usize, ReadError> {
        let end = (self.pos as u64).saturating_add(by);
        if end > self.limit as u64 {
            return Err(ReadError::TooLarge { limit: self.limit });
        }
        // `end <= limit`, a usize.
        Ok(end as usize)
    }

    fn incomplete(&self, buf: &[u8]) -> Result<Option<usize>, ReadError> {
        if buf.len() > self.limit {
            Err(ReadError::TooLarge { limit: self.limit })
        } else {
            Ok(None)
        }
    }
}

/// Length of the first complete value in `buf`, checked to be well-formed and no deeper than
/// [`MAX_DEPTH`]; `Err(Incomplete)` if `buf` ends inside it.
pub fn skip(buf: &[u8]) -> Result<usize, ReadError> {
    let mut s = Scanner::new(buf.len());
    match s.scan(buf) {
        Ok(Some(n)) => Ok(n),
        Ok(None) | Err(ReadError::TooLarge { .. }) => Err(ReadError::Incomplete),
        Err(e) => Err(e),
    }
}

/// Reads the first value of `buf`: the value and the number of bytes it took. Arrays and maps
/// are checked whole (complete, well-formed, not too deep) and returned as lazy views.
pub fn read(buf: &[u8]) -> Result<(Value<'_>, usize), ReadError> {
    let b = *buf.first().ok_or(ReadError::Incomplete)?;
    let take = |at: usize, n: u64| -> Result<(&[u8], usize), ReadError> {
        let n = usize::try_from(n).map_err(|_| ReadError::Incomplete)?;
        let end = at.checked_add(n).ok_or(ReadError::Incomplete)?;
        let bytes = buf.get(at..end).ok_or(ReadError::Incomplete)?;
        Ok((bytes, end))
    };
    let v = match b {
        0x00..=0x7f => (Value::Int(i64::from(b)), 1),
        0xe0..=0xff => (Value::Int(i64::from(b as i8)), 1),
        0xc0 => (Value::Nil, 1),
        0xc2 => (Value::Bool(false), 1),
        0xc3 => (Value::Bool(true), 1),
        0xa0..=0xbf => {
            let (s, end) = take(1, u64::from(b & 0x1f))?;
            (Value::Str(s), end)
        }
        0xd9 => str_or_bin(take(2, be(buf, 1, 1)?)?, true),
        0xda => str_or_bin(take(3, be(buf, 1, 2)?)?, true),
        0xdb => str_or_bin(take(5, be(buf, 1, 4)?)?, true),
        0xc4 => str_or_bin(take(2, be(buf, 1, 1)?)?, false),
        0xc5 => str_or_bin(take(3, be(buf, 1, 2)?)?, false),
        0xc6 => str_or_bin(take(5, be(buf, 1, 4)?)?, false),
        0xcc => (Value::Int(be(buf, 1, 1)? as i64), 2),
        0xcd => (Value::Int(be(buf, 1, 2)? as i64), 3),
        0xce => (Value::Int(be(buf, 1, 4)? as i64), 5),
        0xcf => {
            let u = be(buf, 1, 8)?;
            let v = i64::try_from(u).map_or(Value::UInt(u), Value::Int);
            (v, 9)
        }
        0xd0 => (Value::Int(i64::from(be(buf, 1, 1)? as u8 as i8)), 2),
        0xd1 => (Value::Int(i64::from(be(buf, 1, 2)? as u16 as i16)), 3),
        0xd2 => (Value::Int(i64::from(be(buf, 1, 4)? as u32 as i32)), 5),
        0xd3 => (Value::Int(be(buf, 1, 8)? as i64), 9),
        0xca => (Value::F32(f32::from_bits(be(buf, 1, 4)? as u32)), 5),
        0xcb => (Value::F64(f64::from_bits(be(buf, 1, 8)?)), 9),
        0xd4..=0xd8 => {
            let n = 1u64 << (b - 0xd4);
            let ty = be(buf, 1, 1)? as u8 as i8;
            let (d, end) = take(2, n)?;
            (Value::Ext(ty, d), end)
        }
        0xc7..=0xc9 => {
            let w = 1usize << (b - 0xc7);
            let n = be(buf, 1, w)?;
            let ty = be(buf, 1 + w, 1)? as u8 as i8;
            let (d, end) = take(2 + w, n)?;
            (Value::Ext(ty, d), end)
        }
        0xc1 => return Err(ReadError::InvalidByte { offset: 0 }),
        // Arrays and maps: 0x80..=0x9f, 0xdc..=0xdf.
        _ => {
            let total = skip(buf)?;
            let (hdr, len, is_map) = match head(buf, 0)? {
                Head::Container { hdr, items, is_map } => {
                    (hdr, if is_map { items / 2 } else { items }, is_map)
                }
                Head::Scalar { .. } => return Err(ReadError::InvalidByte { offset: 0 }),
            };
            // `len` came from a 4-byte field at most.
            let len = len as u32;
            let body = buf.get(hdr..total).ok_or(ReadError::Incomplete)?;
            let v = if is_map {
                Value::Map(MapRef { len, body })
            } else {
                Value::Array(ArrayRef { len, body })
            };
            (v, total)
        }
    };
    Ok(v)
}

fn str_or_bin((bytes, end): (&[u8], usize), is_str: bool) -> (Value<'_>, usize) {
    if is_str {
        (Value::Str(bytes), end)
    } else {
        (Value::Bin(bytes), end)
    }
}

/// Reads `buf` as exactly one value: trailing bytes are an error (`Ok(Err(offset))`).
pub fn read_exact(buf: &[u8]) -> Result<Result<Value<'_>, usize>, ReadError> {
    let (v, used) = read(buf)?;
    Ok(if used == buf.len() { Ok(v) } else { Err(used) })
}

/// Appends MessagePack encodings to a byte vector: the few shapes the server sends
/// (acks, HELO, PONG) plus what tests need.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn array(&mut self, len: u32) {
        self.len_prefixed(len, 0x90, 0xdc, 0xdd);
    }

    pub(crate) fn map(&mut self, len: u32) {
        self.len_prefixed(len, 0x80, 0xde, 0xdf);
    }

    fn len_prefixed(&mut self, len: u32, fix: u8, w16: u8, w32: u8) {
        if len < 16 {
            self.0.push(fix | len as u8);
        } else if len <= u32::from(u16::MAX) {
            self.0.push(w16);
            self.0.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.0.push(w32);
            self.0.extend_from_slice(&len.to_be_bytes());
        }
    }

    /// A `str`. Lengths past `u32::MAX` cannot be encoded and are cut (never happens here:
    /// the server only writes short names and digests).
    pub(crate) fn str(&mut self, s: &[u8]) {
        let s = &s[..s.len().min(u32::MAX as usize)];
        let n = s.len();
        if n < 32 {
            self.0.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.0.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.0.push(0xda);
            self.0.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.0.push(0xdb);
            self.0.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.0.extend_from_slice(s);
    }

    /// A `bin` (cut at `u32::MAX` bytes like [`Writer::str`]).
    pub(crate) fn bin(&mut self, b: &[u8]) {
        let b = &b[..b.len().min(u32::MAX as usize)];
        let n = b.len();
        if n <= 0xff {
            self.0.extend_from_slice(&[0xc4, n as u8]);
        } else if n <= 0xffff {
            self.0.push(0xc5);
            self.0.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            self.0.push(0xc6);
            self.0.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.0.extend_from_slice(b);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.0.push(if v { 0xc3 } else { 0xc2 });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scalar_family_decodes_from_spec_bytes() {
        let cases: &[(&[u8], Value)] = &[
            (&[0xc0], Value::Nil),
            (&[0xc2], Value::Bool(false)),
            (&[0xc3], Value::Bool(true)),
            (&[0x7f], Value::Int(127)),
            (&[0xff], Value::Int(-1)),
            (&[0xe0], Value::Int(-32)),
            (&[0xcc, 0xff], Value::Int(255)),
            (&[0xcd, 0x01, 0x00], Value::Int(256)),
            (&[0xce, 0xff, 0xff, 0xff, 0xff], Value::Int(u32::MAX as i64)),
            (
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Value::UInt(u64::MAX),
            ),
            (&[0xd0, 0x80], Value::Int(-128)),
            (&[0xd1, 0x80, 0x00], Value::Int(-32768)),
            (&[0xd2, 0x80, 0, 0, 0], Value::Int(i32::MIN as i64)),
            (&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0], Value::Int(i64::MIN)),
            (&[0xca, 0x3f, 0x80, 0, 0], Value::F32(1.0)),
            (&[0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0], Value::F64(1.0)),
            (&[0xa2, b'h', b'i'], Value::Str(b"hi")),
            (&[0xd9, 2, b'h', b'i'], Value::Str(b"hi")),
            (&[0xda, 0, 2, b'h', b'i'], Value::Str(b"hi")),
            (&[0xdb, 0, 0, 0, 2, b'h', b'i'], Value::Str(b"hi")),
            (&[0xc4, 1, 9], Value::Bin(&[9])),
            (&[0xc5, 0, 1, 9], Value::Bin(&[9])),
            (&[0xc6, 0, 0, 0, 1, 9], Value::Bin(&[9])),
            (&[0xd4, 5, 1], Value::Ext(5, &[1])),
            (&[0xd5, 5, 1, 2], Value::Ext(5, &[1, 2])),
            (&[0xd6, 5, 1, 2, 3, 4], Value::Ext(5, &[1, 2, 3, 4])),
            (
                &[0xd7, 0, 1, 2, 3, 4, 5, 6, 7, 8],
                Value::Ext(0, &[1, 2, 3, 4, 5, 6, 7, 8]),
            ),
            (&[0xc7, 1, 0xff, 7], Value::Ext(-1, &[7])),
            (&[0xc8, 0, 1, 3, 7], Value::Ext(3, &[7])),
            (&[0xc9, 0, 0, 0, 1, 3, 7], Value::Ext(3, &[7])),
        ];
        for (bytes, want) in cases {
            let (got, used) = read(bytes).unwrap();
            assert_eq!(&got, want, "{bytes:x?}");
            assert_eq!(used, bytes.len(), "{bytes:x?}");
            assert_eq!(skip(bytes), Ok(bytes.len()), "{bytes:x?}");
        }
        let fixext16 = [&[0xd8u8, 2][..], &[7u8; 16][..]].concat();
        assert_eq!(read(&fixext16).unwrap().0, Value::Ext(2, &[7; 16]));
    }

    #[test]
    fn containers_of_every_width_iterate_in_order() {
        // [1, {"a": [2]}] with fixarray, then the same with array16/32 and map16/32.
        let fix = [0x92, 0x01, 0x81, 0xa1, b'a', 0x91, 0x02];
        let wide = [
            0xdc, 0, 2, 0x01, 0xde, 0, 1, 0xa1, b'a', 0xdd, 0, 0, 0, 1, 0x02,
        ];
        let wide32 = [
            0xdd, 0, 0, 0, 2, 0x01, 0xdf, 0, 0, 0, 1, 0xa1, b'a', 0x91, 0x02,
        ];
        for bytes in [&fix[..], &wide[..], &wide32[..]] {
            let (v, used) = read(bytes).unwrap();
            assert_eq!(used, bytes.len());
            let Value::Array(a) = v else {
                panic!("not an array")
            };
            let items: Vec<_> = a.iter().collect();
            assert_eq!(items.len(), 2);
            assert_eq!(items[0], Value::Int(1));
            let Value::Map(m) = items[1] else {
                panic!("not a map")
            };
            let Some(Value::Array(inner)) = m.get(b"a") else {
                panic!("no a")
            };
            assert_eq!(inner.iter().collect::<Vec<_>>(), vec![Value::Int(2)]);
        }
    }

    #[test]
    fn truncated_values_are_incomplete_at_every_cut() {
        let full = [
            0x92, 0xd9, 3, b'a', b'b', b'c', 0x81, 0xa1, b'k', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        for cut in 0..full.len() {
            assert_eq!(skip(&full[..cut]), Err(ReadError::Incomplete), "cut {cut}");
            assert!(read(&full[..cut]).is_err(), "cut {cut}");
        }
        assert_eq!(skip(&full), Ok(full.len()));
    }

    #[test]
    fn reserved_byte_and_deep_nesting_are_refused() {
        assert_eq!(
            skip(&[0x91, 0xc1]),
            Err(ReadError::InvalidByte { offset: 1 })
        );
        let deep = vec![0x91u8; MAX_DEPTH + 2];
        assert!(matches!(skip(&deep), Err(ReadError::TooDeep { .. })));
        let mut ok = vec![0x91u8; MAX_DEPTH];
        ok.push(0xc0);
        assert_eq!(skip(&ok), Ok(ok.len()));
    }

    #[test]
    fn scanner_resumes_across_reads_and_jumps_payloads() {
        // fixarray [bin32 of 100 bytes, 1]
        let mut frame = vec![0x92, 0xc6, 0, 0, 0, 100];
        frame.extend_from_slice(&[0xaa; 100]);
        frame.push(0x01);
        let mut s = Scanner::new(1000);
        for end in 0..frame.len() {
            assert_eq!(s.scan(&frame[..end]), Ok(None), "end {end}");
        }
        assert_eq!(s.scan(&frame), Ok(Some(frame.len())));
        // Extra bytes after the frame do not change the answer.
        let mut s = Scanner::new(1000);
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert_eq!(s.scan(&two), Ok(Some(frame.len())));
    }

    #[test]
    fn scanner_refuses_declared_sizes_past_the_limit_before_they_arrive() {
        let mut s = Scanner::new(1000);
        assert_eq!(
            s.scan(&[0xc6, 0, 0, 0x10, 0]),
            Err(ReadError::TooLarge { limit: 1000 })
        );
        let mut s = Scanner::new(1000);
        assert_eq!(
            s.scan(&[0xdd, 0, 0, 0x10, 0]),
            Err(ReadError::TooLarge { limit: 1000 })
        );
        // Incomplete and already past the limit.
        let mut s = Scanner::new(10);
        let mut many = vec![0x9f];
        many.extend_from_slice(&[0x01; 11]);
        assert_eq!(s.scan(&many), Err(ReadError::TooLarge { limit: 10 }));
    }

    #[test]
    fn writer_output_reads_back() {
        let mut out = Vec::new();
        let mut w = Writer(&mut out);
        w.array(3);
        w.str(&[b'x'; 40]);
        w.bin(&[1; 300]);
        w.map(1);
        w.str(b"k");
        w.bool(true);
        let Value::Array(a) = read_exact(&out).unwrap().unwrap() else {
            panic!()
        };
        let items: Vec<_> = a.iter().collect();
        assert_eq!(items[0], Value::Str(&[b'x'; 40]));
        assert_eq!(items[1], Value::Bin(&[1; 300]));
        let Value::Map(m) = items[2] else { panic!() };
        assert_eq!(m.get(b"k"), Some(Value::Bool(true)));
    }
}
