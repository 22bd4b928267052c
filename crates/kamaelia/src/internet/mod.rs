//! Kamaelia.Internet: TcpClient, ConnectedSocketAdapter and TcpServer, with TLS switched on
//! mid-connection, and the TCP and TLS building blocks under them; STARTTLS dialogues
//! ([`starttls`]) and proxy tunnels ([`proxy`]: HTTP CONNECT, SOCKS5) as components in front of
//! a TcpClient.
#![warn(missing_debug_implementations)]

mod connect;
mod csa;
#[cfg(test)]
mod layer_tests;
mod messages;
mod protocols;
pub mod proxy;
mod relay;
mod selector;
mod single_server;
pub mod starttls;
mod tcp_client;
mod tcp_server;
mod tls;
mod unix;

pub use connect::{connect, connect_addrs, ConnectError, Family, CONNECTION_ATTEMPT_DELAY};
pub use csa::{ConnectedSocketAdapter, CsaOptions, Limits, OnFinish, TlsRole, DEFAULT_LIMIT_BYTES};
pub use messages::{
    Connected, HowDied, Listening, MakeSsl, PeerHalfClosed, ShutdownCsa, SocketShutdown, SslReady,
    TcpError, Transferred,
};
pub use protocols::{DiscardProtocol, EchoProtocol};
pub use proxy::{Proxy, ProxyClient, ProxyError, ProxyKind, TunnelOpen};
pub use relay::{Relay, RelayClosed, RelayEnding, RelayOpened};
pub use selector::{Selector, SELECTOR_SERVICE};
pub use single_server::SingleServer;
pub use starttls::{
    FtpStartTlsClient, ImapStartTlsClient, ImapStartTlsServer, IrcStartTlsClient,
    LdapStartTlsClient, LmtpStartTlsClient, MysqlStartTlsClient, NntpStartTlsClient,
    Pop3StartTlsClient, Pop3StartTlsServer, PostgresStartTlsClient, SieveStartTlsClient,
    SmtpStartTlsClient, SmtpStartTlsServer, StartTlsError, StartTlsServerLayer, TlsGate,
    XmppStartTlsClient,
};
pub use tcp_client::{TcpClient, DEFAULT_CONNECT_TIMEOUT};
pub use tcp_server::{ConnectionInfo, TcpServer, DEFAULT_PLAINTEXT_TIMEOUT};
pub use tls::{
    accept, certificate_problem, classify, handshake, utc_date_time, CertificateSummary,
    HandshakeFailure, KeyAlgorithm, KeyDescription, NotInCommon, PeerCertificates, PeerRole,
    ServerTls, TlsError, TlsInfo, TlsSettings, Trust, DEFAULT_HANDSHAKE_TIMEOUT, MAX_PEM_BYTES,
    MIN_RSA_BITS,
};
pub use unix::{unix_peer, UnixClient};

/// A message on `control` of a layer between a connection and its user (a STARTTLS dialogue, a
/// proxy tunnel), which lets its watch go once it has passed its final message on: while it
/// has the watch, [`axon::ControlWatch::handle`]; after, errors and notices still reach
/// `signal`, and a further final message has nothing left to end.
async fn handle_control(
    watch: Option<&mut axon::ControlWatch<'_>>,
    signal: &axon::Outbox<axon::Control>,
    c: axon::Control,
) {
    match watch {
        Some(w) => w.handle(c).await,
        None if !c.is_final() => {
            let _ = signal.send(c).await;
        }
        None => {}
    }
}
