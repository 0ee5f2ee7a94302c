//! The pushed inputs, peers of the file tailers ([`crate::tail`]): the Fluent forward receiver
//! and HTTP ingest. Each turns bytes from a socket into records of one sidecar stream and hands
//! them to the one ingest writer ([`crate::ingest`]), answering the client only once they are
//! durable.

pub mod forward;
pub mod http_ingest;
pub mod sidecar;
