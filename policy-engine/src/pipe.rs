//! A policy's WASI stdout and stderr: the first bytes are kept, the rest are accepted and
//! dropped.
//!
//! wasmtime-wasi's `MemoryOutputPipe` refuses writes once it is full (a closed stream, then a
//! trap). A guest's standard library takes that as a broken stdout: Rust's `println!` panics,
//! so a policy that prints a little too much would fail its evaluation and be quarantined.
//! Here every write succeeds, only the first `capacity` bytes are kept, and the dropped bytes
//! are counted so that the report can say the output was cut.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a guest may write per `write` call ("check-write"). Anything is accepted, so this
/// only sets the size of the guest's chunks; std's own writes are 4 KiB at most.
const WRITE_PERMIT: usize = 64 << 10;

/// A bounded capture of one output stream. Clones share the same buffer.
#[derive(Debug, Clone)]
pub struct CappedPipe {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug)]
struct Captured {
    kept: Vec<u8>,
    capacity: usize,
    dropped: u64,
}

/// What a pipe captured: the bytes kept and how many were dropped past the capacity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    pub kept: Vec<u8>,
    pub dropped: u64,
}

impl CappedPipe {
    pub fn new(capacity: usize) -> Self {
        CappedPipe {
            inner: Arc::new(Mutex::new(Captured {
                kept: Vec::new(),
                capacity,
                dropped: 0,
            })),
        }
    }

    /// Keeps what fits of `bytes` and counts the rest.
    pub fn push(&self, bytes: &[u8]) {
        // A poisoned lock only means another writer panicked mid-push: the buffer is still a
        // valid prefix of the output.
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let room = c.capacity.saturating_sub(c.kept.len());
        let keep = bytes.len().min(room);
        c.kept.extend_from_slice(&bytes[..keep]);
        c.dropped = c
            .dropped
            .saturating_add(u64::try_from(bytes.len() - keep).unwrap_or(u64::MAX));
    }

    /// Takes the captured output, leaving the pipe empty.
    pub fn take(&self) -> Captures {
        let mut c = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Captures {
            kept: std::mem::take(&mut c.kept),
            dropped: std::mem::replace(&mut c.dropped, 0),
        }
    }
}

impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    /// Always ready: writes never wait.
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let mut pipe = CappedPipe::new(5);
        assert!(OutputStream::write(&mut pipe, Bytes::from_static(b"abc")).is_ok());
        assert!(OutputStream::write(&mut pipe, Bytes::from_static(b"defg")).is_ok());
        assert_eq!(
            pipe.check_write().ok(),
            Some(WRITE_PERMIT),
            "still writable"
        );
        assert!(OutputStream::write(&mut pipe, Bytes::from_static(b"hij")).is_ok());
        assert_eq!(
            pipe.take(),
            Captures {
                kept: b"abcde".to_vec(),
                dropped: 5
            }
        );
        assert_eq!(pipe.take(), Captures::default(), "taken");
    }
}
