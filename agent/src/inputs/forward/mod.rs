//! The Fluent forward protocol (Forward Protocol Specification v1 and v1.5), as pure functions
//! over byte buffers: [`codec`] frames and decodes requests and encodes acks, [`handshake`]
//! speaks HELO/PING/PONG. No sockets here: the server drives these.
//!
//! A connection's loop, in short: append reads to a buffer, ask a [`codec::Framer`] for the
//! first frame's length, [`codec::decode`] that frame, store its entries, then answer
//! [`codec::encode_ack`] if the request carried a `chunk`:
//!
//! ```
//! use runnel_agent::inputs::forward::codec::{decode, encode_ack, Framer, Limits, Request};
//!
//! // ["app", 1700000000, {"log": "hi"}, {"chunk": "c1"}], then a nil heartbeat.
//! let stream = b"\x94\xa3app\xce\x65\x53\xf1\x00\x81\xa3log\xa2hi\x81\xa5chunk\xa2c1\xc0";
//! let limits = Limits::default();
//! let mut framer = Framer::new(limits.max_frame_bytes);
//! let mut scratch = Vec::new();
//! let n = framer.next_len(stream).unwrap().expect("a whole frame");
//! let Request::Events(events) = decode(&stream[..n], &limits, &mut scratch).unwrap() else {
//!     panic!("not events");
//! };
//! let entry = events.iter().next().unwrap();
//! assert_eq!(entry.time_ns, 1_700_000_000_000_000_000);
//! assert_eq!(entry.record.get_str(b"log"), Some(&b"hi"[..]));
//! let ack = encode_ack(events.options().chunk.unwrap());
//! assert_eq!(ack, b"\x81\xa3ack\xa2c1");
//! framer.reset();
//! assert_eq!(framer.next_len(&stream[n..]).unwrap(), Some(1));
//! ```

pub mod codec;
pub mod handshake;
mod inflate;
mod json;
mod msgpack;
pub mod running;
pub mod server;
pub mod stats;
pub mod tag;
