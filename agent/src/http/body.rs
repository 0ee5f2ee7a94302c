//! Response bodies: a fixed buffer, or a bounded channel of chunks for streamed (chunked)
//! responses, so a slow client holds at most `capacity` chunks of memory.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The body type every handler returns.
pub enum ResponseBody {
    /// A complete body.
    Full(Full<Bytes>),
    /// Chunks as they are produced; the stream ends when the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

impl ResponseBody {
    /// A complete body from bytes.
    pub fn full(b: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Full(Full::new(b.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(f) => Pin::new(f).poll_frame(cx),
            ResponseBody::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(f) => f.is_end_stream(),
            ResponseBody::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(f) => f.size_hint(),
            ResponseBody::Stream(_) => SizeHint::default(),
        }
    }
}
