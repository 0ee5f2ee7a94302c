//! runnel-index: the node's durable, time-indexed store of container log records.
//!
//! (The index helper replaces this header with the segment-format drawing and the durability
//! argument.)

#![deny(missing_docs)]

mod api;
mod error;
mod record;

pub use api::*;
pub use error::Error;
pub use record::*;
