//! Proxies: a tunnel through an HTTP CONNECT or SOCKS5 proxy, as a component placed between
//! the application and a [`TcpClient`](super::TcpClient) connected to the proxy, before TLS.
//!
//! [`Proxy`] says which proxy (parsed from `http://[user:pass@]host[:port]` or
//! `socks5://…`); [`ProxyClient`] speaks its handshake and then passes bytes through, and
//! [`ProxyClient::around`] wraps it and a TcpClient into one component with the TcpClient's
//! boxes, so that a program wires a proxied connection as it wires a direct one.
//!
//! The handshakes are plain state machines over the proxy's bytes (no sockets), with their
//! reply capped ([`MAX_REPLY_LINE`], [`MAX_REPLY_BYTES`]; SOCKS5 replies are fixed-size).

mod client;
mod dialogue;
mod error;
mod spec;

pub use client::{ProxyClient, TunnelOpen, DEFAULT_TUNNEL_TIMEOUT};
pub use dialogue::{MAX_REPLY_BYTES, MAX_REPLY_LINE};
pub use error::{ProxyError, ProxyUrlError, SocksReply};
pub use spec::{Credentials, Proxy, ProxyKind, DEFAULT_HTTP_PROXY_PORT, DEFAULT_SOCKS_PORT};
