//! Inputs that turn bytes pushed by other programs into records.

pub mod forward;
