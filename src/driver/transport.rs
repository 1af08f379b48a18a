//! The byte stream under a socket: the TCP stream itself when hyper hands it
//! back, the TLS stream over it (`wshub::serve(..).tls(..)`), or hyper's
//! upgraded connection (behind `axum::serve`, another server's TLS, ...).
//! One type for all keeps one copy of the driver.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(feature = "tls")]
use tokio_rustls::server::TlsStream;

#[cfg(unix)]
use crate::event_loop::{self, Loop, LoopStream};

pub(crate) enum Transport {
    Tcp(TcpStream),
    /// Boxed: a TLS session is large, and an enum is as large as its
    /// largest variant.
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream<TcpStream>>),
    /// A client's `wss://` connection (boxed, as `Tls`).
    #[cfg(all(feature = "tls", feature = "client"))]
    ClientTls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Boxed: the rarer case, and the larger type.
    Upgraded(Box<TokioIo<Upgraded>>),
    /// A TCP stream moved to a socket loop (see [`crate::event_loop`]).
    #[cfg(unix)]
    Looped(LoopStream),
}

/// A transport, the bytes hyper read past the request, and the peer's
/// address when the stream shows it.
pub(crate) struct Unwrapped {
    pub(crate) transport: Transport,
    pub(crate) prefix: Bytes,
    pub(crate) peer: Option<SocketAddr>,
}

impl Transport {
    /// Takes the stream back from hyper's `Upgraded` when wshub's own server
    /// made it (TCP, or TLS over TCP), so the driver writes straight to it
    /// and knows the peer's address; otherwise keeps the `Upgraded`.
    pub(crate) fn from_upgraded(upgraded: Upgraded) -> Unwrapped {
        let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => {
                let tcp = parts.io.into_inner();
                // Frames are batched here: Nagle would only delay them.
                let _ = tcp.set_nodelay(true);
                let peer = tcp.peer_addr().ok();
                return Unwrapped {
                    transport: Self::Tcp(tcp),
                    prefix: parts.read_buf,
                    peer,
                };
            }
            Err(upgraded) => upgraded,
        };
        #[cfg(feature = "tls")]
        let upgraded = match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
            Ok(parts) => {
                let tls = parts.io.into_inner();
                let tcp = tls.get_ref().0;
                let _ = tcp.set_nodelay(true);
                let peer = tcp.peer_addr().ok();
                return Unwrapped {
                    transport: Self::Tls(Box::new(tls)),
                    prefix: parts.read_buf,
                    peer,
                };
            }
            Err(upgraded) => upgraded,
        };
        Unwrapped {
            transport: Self::Upgraded(Box::new(TokioIo::new(upgraded))),
            prefix: Bytes::new(),
            peer: None,
        }
    }
}

impl Transport {
    /// Moves a plain TCP stream to a socket loop of the current runtime
    /// (`group`'s, see `Upgrade::colocate`); leaves other streams as they
    /// are.
    #[cfg(unix)]
    pub(crate) fn into_loop(self, group: Option<u64>) -> io::Result<Self> {
        match self {
            Self::Tcp(tcp) => Ok(Self::Looped(event_loop::adopt(tcp, group)?)),
            other => Ok(other),
        }
    }

    /// The loop that runs this stream's socket, if it is on one.
    #[cfg(unix)]
    pub(crate) fn home(&self) -> Option<Loop> {
        match self {
            Self::Looped(stream) => Some(stream.home()),
            _ => None,
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
            #[cfg(all(feature = "tls", feature = "client"))]
            Self::ClientTls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_read(cx, buf),
            #[cfg(unix)]
            Self::Looped(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
            #[cfg(all(feature = "tls", feature = "client"))]
            Self::ClientTls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_write(cx, buf),
            #[cfg(unix)]
            Self::Looped(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            // rustls seals the slices into records as they are: encryption
            // is the only copy.
            #[cfg(feature = "tls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
            #[cfg(all(feature = "tls", feature = "client"))]
            Self::ClientTls(tls) => Pin::new(&mut **tls).poll_write_vectored(cx, bufs),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_write_vectored(cx, bufs),
            #[cfg(unix)]
            Self::Looped(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(tcp) => tcp.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::Tls(tls) => tls.is_write_vectored(),
            #[cfg(all(feature = "tls", feature = "client"))]
            Self::ClientTls(tls) => tls.is_write_vectored(),
            Self::Upgraded(io) => io.is_write_vectored(),
            #[cfg(unix)]
            Self::Looped(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            #[cfg(feature = "tls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
            #[cfg(all(feature = "tls", feature = "client"))]
            Self::ClientTls(tls) => Pin::new(&mut **tls).poll_flush(cx),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_flush(cx),
            #[cfg(unix)]
            Self::Looped(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            // Sends TLS close_notify, then shuts down the TCP write side.
            #[cfg(feature = "tls")]
            Self::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
            #[cfg(all(feature = "tls", feature = "client"))]
            Self::ClientTls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
            Self::Upgraded(io) => Pin::new(&mut **io).poll_shutdown(cx),
            #[cfg(unix)]
            Self::Looped(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}
