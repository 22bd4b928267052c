//! [`Rewind`]: the byte stream under a ConnectedSocketAdapter's TLS, which can be handed back
//! bytes already read from it, so that a STARTTLS server's handshake starts with what the
//! client sent after its command. A connection in plaintext holds its stream bare, and wraps
//! it when TLS starts.

use std::any::Any;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// Whether `stream` says when it is readable: a tokio TCP or Unix stream. The CSA is generic
/// over any byte stream (its public signature stays so); these two, the streams its servers
/// and clients make, are recognised by type, and get an idle connection that holds no read
/// buffer.
pub(super) fn reports_readiness<S: 'static>(stream: &S) -> bool {
    let stream: &dyn Any = stream;
    stream.is::<TcpStream>() || stream.is::<UnixStream>()
}

/// Waits for `stream` to be readable; `None` if it cannot say.
pub(super) fn poll_read_ready<S: 'static>(
    stream: &S,
    cx: &mut Context<'_>,
) -> Option<Poll<io::Result<()>>> {
    let stream: &dyn Any = stream;
    if let Some(s) = stream.downcast_ref::<TcpStream>() {
        Some(s.poll_read_ready(cx))
    } else {
        stream
            .downcast_ref::<UnixStream>()
            .map(|s| s.poll_read_ready(cx))
    }
}

/// A byte stream that first yields some bytes already read from it (STARTTLS pushback).
#[derive(Debug)]
pub(super) struct Rewind<S> {
    /// Boxed: only a STARTTLS server's handshake is handed bytes back.
    prefix: Option<Box<Bytes>>,
    inner: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin + 'static> Rewind<S> {
    /// Waits for the stream to be readable (bytes handed back count as readable); `None` if
    /// the stream cannot say.
    pub(super) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Option<Poll<io::Result<()>>> {
        if self.prefix.is_some() {
            return Some(Poll::Ready(Ok(())));
        }
        poll_read_ready(&self.inner, cx)
    }

    pub(super) fn new(inner: S) -> Self {
        Rewind {
            prefix: None,
            inner,
        }
    }

    pub(super) fn push_front(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        match self.prefix.as_deref_mut() {
            None => self.prefix = Some(Box::new(bytes)),
            Some(prefix) => {
                let mut v = bytes.to_vec();
                v.extend_from_slice(prefix);
                *prefix = v.into();
            }
        }
    }

    /// How many bytes from the peer are ready to read now (in the prefix or the stream),
    /// without waiting. `Ok(None)` means the peer has closed. What is found is read and kept
    /// nowhere: a caller asks only to refuse the stream if anything is there.
    pub(super) fn take_unread(&mut self) -> io::Result<Option<usize>> {
        let mut buf = [0u8; 4096];
        let mut rb = ReadBuf::new(&mut buf);
        // A read that must not wait: poll once with a waker that does nothing.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let ready = match Pin::new(&mut self.inner).poll_read(&mut cx, &mut rb) {
            Poll::Ready(Ok(())) if rb.filled().is_empty() && self.prefix.is_none() => {
                return Ok(None)
            }
            Poll::Ready(Ok(())) => rb.filled().len(),
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => 0,
        };
        Ok(Some(self.prefix.as_ref().map_or(0, |p| p.len()) + ready))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(prefix) = self.prefix.as_deref_mut() {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix[..n]);
            prefix.advance(n);
            if prefix.is_empty() {
                self.prefix = None;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
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
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn pushed_back_bytes_come_first() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Rewind::new(a);
        b.write_all(b"world").await.unwrap();
        r.push_front(Bytes::from_static(b"lo "));
        r.push_front(Bytes::from_static(b"hel"));
        let mut got = [0u8; 11];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test]
    async fn unread_bytes_are_counted_without_waiting() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = Rewind::new(a);
        assert_eq!(r.take_unread().unwrap(), Some(0), "nothing yet");
        b.write_all(b"inject").await.unwrap();
        assert_eq!(r.take_unread().unwrap(), Some(6));
        drop(b);
        assert_eq!(r.take_unread().unwrap(), None, "the peer closed");
    }
}
