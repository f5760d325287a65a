//! A connection's stream, watched: how many bytes it has read, and how
//! many it had read when the server last wrote. That tells a kept-alive
//! connection that went quiet after its answer (every Prometheus scrape,
//! every closed tab) from a client that stopped half way through a request
//! head: hyper's header read timeout fires for both and reports both as
//! the same timeout error, and counting the first as a header timeout
//! made the warning and `outagewatch_http_timeouts_total{kind="headers"}`
//! say nothing useful.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What one connection has read and written (shared with its task).
#[derive(Debug, Default)]
pub(super) struct Traffic {
    read: AtomicU64,
    /// `read` as it stood at the server's last write.
    read_at_last_write: AtomicU64,
    wrote: AtomicBool,
}

impl Traffic {
    /// Whether the connection has been answered and has sent nothing
    /// since: waiting for a next request, not half way through one.
    ///
    /// Bytes that arrived before the answer was written count as the
    /// answered request's, so a next head begun in the same packet
    /// (pipelining, which browsers and Prometheus never do) looks idle;
    /// hyper keeps such bytes in its own buffer, out of sight.
    pub(super) fn idle(&self) -> bool {
        self.wrote.load(Relaxed) && self.read.load(Relaxed) == self.read_at_last_write.load(Relaxed)
    }

    fn wrote(&self, bytes: usize) {
        if bytes > 0 {
            self.read_at_last_write
                .store(self.read.load(Relaxed), Relaxed);
            self.wrote.store(true, Relaxed);
        }
    }
}

/// `inner`, counting into `traffic`.
#[derive(Debug)]
pub(super) struct Watched<S> {
    pub(super) inner: S,
    pub(super) traffic: Arc<Traffic>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let n = buf.filled().len().saturating_sub(before);
            this.traffic.read.fetch_add(n as u64, Relaxed);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            this.traffic.wrote(n);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            this.traffic.wrote(n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
