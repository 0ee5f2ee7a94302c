//! `kubectl logs` semantics over the index, shared by the HTTP API and `runnel logs --data-dir`:
//! which source a request names ([`resolve`]), and how its records are printed ([`render`]).

pub mod render;
pub mod request;
pub mod resolve;
pub mod stream;

pub use render::{query_for, Renderer};
pub use request::{LogRequest, RequestError};
pub use resolve::{resolve, ResolveError};
pub use stream::{LogStream, LogsError, Progress};
