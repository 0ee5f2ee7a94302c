//! The Fluent forward protocol (Forward Protocol Specification v1 and v1.5), as pure functions
//! over byte buffers: [`codec`] frames and decodes requests and encodes acks, [`handshake`]
//! speaks HELO/PING/PONG. No sockets here: the server drives these.

pub mod codec;
pub mod handshake;
mod json;
mod msgpack;
pub mod server;
pub mod stats;
pub mod tag;
