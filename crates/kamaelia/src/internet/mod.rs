//! Kamaelia.Internet: TCP and TLS building blocks and the components built on them.

mod connect;
mod tls;

pub use connect::{connect, connect_addrs, ConnectError, Family, CONNECTION_ATTEMPT_DELAY};
pub use tls::{
    classify, handshake, ServerTls, TlsError, TlsInfo, TlsSettings, Trust,
    DEFAULT_HANDSHAKE_TIMEOUT,
};
