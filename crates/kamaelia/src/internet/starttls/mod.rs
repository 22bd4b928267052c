//! STARTTLS: the plaintext dialogues that lead to a TLS switch mid-connection, as components.
//!
//! One component per protocol and side, each wired to a connection's `makessl`/`sslready`:
//!
//! | protocol | client (speaks to a server, then sends `makessl`) | server (a TcpServer protocol) |
//! |---|---|---|
//! | SMTP (RFC 3207) | [`SmtpStartTlsClient`] | [`SmtpStartTlsServer`] |
//! | IMAP (RFC 3501 §6.2.1) | [`ImapStartTlsClient`] | [`ImapStartTlsServer`] |
//! | POP3 (RFC 2595 §4) | [`Pop3StartTlsClient`] | [`Pop3StartTlsServer`] |
//! | LMTP (RFC 2033) | [`LmtpStartTlsClient`] | |
//! | FTP (RFC 4217) | [`FtpStartTlsClient`] | |
//! | XMPP (RFC 6120 §5) | [`XmppStartTlsClient`] | |
//! | IRC (IRCv3 `tls`) | [`IrcStartTlsClient`] | |
//! | PostgreSQL (SSLRequest) | [`PostgresStartTlsClient`] | |
//! | MySQL (SSLRequest) | [`MysqlStartTlsClient`] | |
//! | NNTP (RFC 4642) | [`NntpStartTlsClient`] | |
//! | ManageSieve (RFC 5804) | [`SieveStartTlsClient`] | |
//! | LDAP (RFC 4511 §4.14) | [`LdapStartTlsClient`] | |
//!
//! [`StartTlsServerLayer`] speaks the server side of SMTP, IMAP or POP3 between one accepted
//! connection and a user (`kamaelia listen --starttls`), with the client components' boxes;
//! and [`TlsGate`], the client side of TLS from the first byte: it holds what the user types
//! until the handshake is done, so nothing leaves in plaintext.
//!
//! Each protocol's dialogue is a plain state machine (an enum state per protocol) over lines,
//! fed by a line splitter that is linear in the bytes received and caps what it holds, or, for
//! the binary protocols, over packets (PostgreSQL's one byte, MySQL's length-prefixed packets,
//! LDAP's BER messages, each capped at [`MAX_REPLY_PACKET`]) or markers in a stream (XMPP); the
//! components only move bytes and messages. The client side refuses any byte the server sends
//! after its go-ahead and before TLS ([`TlsError::PlaintextInjection`](super::TlsError)), and
//! the server side tells its connection how many bytes it consumed
//! ([`MakeSsl::with_consumed`](super::MakeSsl::with_consumed)) and drops the handshake bytes the
//! connection replayed ([`HandshakeReplay`]).

mod client;
mod error;
mod ftp;
mod imap;
mod irc;
mod ldap;
mod mysql;
mod nntp;
mod pop3;
mod postgres;
mod replay;
mod server;
mod server_layer;
mod sieve;
mod smtp;
mod xmpp;

pub use client::{
    TlsGate, DEFAULT_DIALOGUE_TIMEOUT, MAX_REPLY_LINE, MAX_REPLY_LINES, MAX_REPLY_PACKET,
};
pub use error::{Client, DialogueError, StartTlsError};
pub use ftp::FtpStartTlsClient;
pub use imap::{ImapStartTlsClient, ImapStartTlsServer};
pub use irc::IrcStartTlsClient;
pub use ldap::LdapStartTlsClient;
pub use mysql::MysqlStartTlsClient;
pub use nntp::NntpStartTlsClient;
pub use pop3::{Pop3StartTlsClient, Pop3StartTlsServer};
pub use postgres::PostgresStartTlsClient;
pub use replay::HandshakeReplay;
pub use server::{MAX_COMMAND_LINE, MAX_HELD};
pub use server_layer::StartTlsServerLayer;
pub use sieve::SieveStartTlsClient;
pub use smtp::{LmtpStartTlsClient, SmtpStartTlsClient, SmtpStartTlsServer};
pub use xmpp::{XmppStartTlsClient, MAX_XMPP_PREAMBLE};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_framed;
