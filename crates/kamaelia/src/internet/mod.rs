//! Kamaelia.Internet: TcpClient, ConnectedSocketAdapter and TcpServer, with TLS switched on
//! mid-connection, and the TCP and TLS building blocks under them.
#![warn(missing_debug_implementations)]

/// A box's name and description, as a component declares it and its rustdoc table shows it.
type BoxDoc = (&'static str, &'static str);

/// Declares a component's boxes once, as data: a struct with one (name, description) pair per
/// box and the constant `BOXES` holding them. The builder declares the boxes from `BOXES`, and
/// a test checks the rustdoc tables against what the builder declared.
macro_rules! box_table {
    ($(#[$meta:meta])* $ty:ident { $($field:ident: $name:expr => $desc:expr,)* }) => {
        $(#[$meta])*
        struct $ty {
            $($field: BoxDoc,)*
        }

        const BOXES: $ty = $ty {
            $($field: ($name, $desc),)*
        };
    };
}

mod connect;
mod csa;
mod messages;
mod protocols;
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

#[cfg(test)]
mod tests {
    use super::*;
    use axon::Component;

    /// Every internet component declares exactly the boxes its rustdoc tables list, with the
    /// descriptions they show (the declarations come from one table per component).
    #[test]
    fn every_component_declares_the_boxes_its_docs_list() {
        let (pipe, _other_end) = tokio::io::duplex(64);
        let csa =
            ConnectedSocketAdapter::new(pipe, ([127, 0, 0, 1], 1).into(), None, OnFinish::Close);
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let components: [(Component, &str); 5] = [
            (csa, include_str!("csa/mod.rs")),
            (
                TcpClient::new("localhost", 1).into(),
                include_str!("tcp_client.rs"),
            ),
            (server.into(), include_str!("tcp_server.rs")),
            (EchoProtocol::new(), include_str!("protocols.rs")),
            (DiscardProtocol::new(), include_str!("protocols.rs")),
        ];
        for (c, source) in &components {
            crate::util::assert_box_docs(c, source);
            // And no row for a box that is not declared.
            let declared: Vec<String> = c.boxes().map(|b| b.name.to_string()).collect();
            for row in source.lines().filter_map(|l| l.strip_prefix("/// | `")) {
                let name = row.split('`').next().unwrap_or_default();
                assert!(
                    declared.iter().any(|d| d == name),
                    "{name} is documented, not declared"
                );
            }
        }
    }
}
