//! The byte stream under a ConnectedSocketAdapter: plain TCP or TLS on either side.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that first yields some bytes already read from it (STARTTLS pushback).
pub(crate) struct Rewind {
    prefix: Bytes,
    pub(crate) inner: TcpStream,
}

impl Rewind {
    pub(crate) fn new(inner: TcpStream) -> Self {
        Rewind {
            prefix: Bytes::new(),
            inner,
        }
    }

    pub(crate) fn push_front(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if self.prefix.is_empty() {
            self.prefix = bytes;
        } else {
            let mut v = bytes.to_vec();
            v.extend_from_slice(&self.prefix);
            self.prefix = v.into();
        }
    }

    /// How many bytes from the peer are waiting unread (in the prefix or the kernel), without
    /// consuming any. `Ok(None)` means the peer has closed.
    pub(crate) fn pending(&self) -> io::Result<Option<usize>> {
        let mut buf = [0u8; 4096];
        let mut rb = ReadBuf::new(&mut buf);
        // A peek that must not wait: poll once with a waker that does nothing.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let kernel = match self.inner.poll_peek(&mut cx, &mut rb) {
            Poll::Ready(Ok(0)) if self.prefix.is_empty() => return Ok(None),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => 0,
        };
        Ok(Some(self.prefix.len() + kernel))
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
