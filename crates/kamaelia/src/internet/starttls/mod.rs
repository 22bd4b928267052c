//! STARTTLS: the plaintext dialogues that lead to a TLS switch mid-connection, as components.
//!
//! One component per protocol and side, each wired to a connection's `makessl`/`sslready`:
//!
//! | protocol | client (speaks to a server, then sends `makessl`) | server (a TcpServer protocol) |
//! |---|---|---|
//! | SMTP (RFC 3207) | [`SmtpStartTlsClient`] | [`SmtpStartTlsServer`] |
//! | IMAP (RFC 3501 §6.2.1) | [`ImapStartTlsClient`] | [`ImapStartTlsServer`] |
//! | POP3 (RFC 2595 §4) | [`Pop3StartTlsClient`] | [`Pop3StartTlsServer`] |
//!
//! and [`TlsGate`], the client side of TLS from the first byte: it holds what the user types
//! until the handshake is done, so nothing leaves in plaintext.
//!
//! Each protocol's dialogue is a plain state machine over lines (an enum state per protocol),
//! fed by a line splitter that is linear in the bytes received and caps what it holds; the
//! components only move bytes and messages. The client side refuses any byte the server sends
//! after its go-ahead and before TLS ([`TlsError::PlaintextInjection`](super::TlsError)), and
//! the server side tells its connection how many bytes it consumed
//! ([`MakeSsl::with_consumed`](super::MakeSsl::with_consumed)) and drops the handshake bytes the
//! connection replayed ([`HandshakeReplay`]).

mod client;
mod error;
mod imap;
mod pop3;
mod replay;
mod server;
mod smtp;

pub use client::{TlsGate, DEFAULT_DIALOGUE_TIMEOUT, MAX_REPLY_LINE, MAX_REPLY_LINES};
pub use error::{Client, DialogueError, StartTlsError};
pub use imap::{ImapStartTlsClient, ImapStartTlsServer};
pub use pop3::{Pop3StartTlsClient, Pop3StartTlsServer};
pub use replay::HandshakeReplay;
pub use server::{MAX_COMMAND_LINE, MAX_HELD};
pub use smtp::{SmtpStartTlsClient, SmtpStartTlsServer};

#[cfg(test)]
mod tests;
