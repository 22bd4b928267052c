//! Kamaelia.Internet: TcpClient, ConnectedSocketAdapter and TcpServer, with TLS switched on
//! mid-connection, and the TCP and TLS building blocks under them; STARTTLS dialogues
//! ([`starttls`]) and proxy tunnels ([`proxy`]: HTTP CONNECT, SOCKS5) as components in front of
//! a TcpClient.
#![warn(missing_debug_implementations)]

mod connect;
mod csa;
mod messages;
mod protocols;
pub mod proxy;
mod selector;
pub mod starttls;
mod tcp_client;
mod tcp_server;
mod tls;

pub use connect::{connect, connect_addrs, ConnectError, Family, CONNECTION_ATTEMPT_DELAY};
pub use csa::{ConnectedSocketAdapter, CsaOptions, Limits, OnFinish, TlsRole, DEFAULT_LIMIT_BYTES};
pub use messages::{
    Connected, HowDied, Listening, MakeSsl, PeerHalfClosed, ShutdownCsa, SocketShutdown, SslReady,
    TcpError, Transferred,
};
pub use protocols::{DiscardProtocol, EchoProtocol};
pub use proxy::{Proxy, ProxyClient, ProxyError, ProxyKind, TunnelOpen};
pub use selector::{Selector, SELECTOR_SERVICE};
pub use starttls::{
    ImapStartTlsClient, ImapStartTlsServer, Pop3StartTlsClient, Pop3StartTlsServer,
    SmtpStartTlsClient, SmtpStartTlsServer, StartTlsError, TlsGate,
};
pub use tcp_client::{TcpClient, DEFAULT_CONNECT_TIMEOUT};
pub use tcp_server::{ConnectionInfo, TcpServer, DEFAULT_PLAINTEXT_TIMEOUT};
pub use tls::{
    accept, classify, handshake, HandshakeFailure, ServerTls, TlsError, TlsInfo, TlsSettings,
    Trust, DEFAULT_HANDSHAKE_TIMEOUT, MAX_PEM_BYTES,
};
