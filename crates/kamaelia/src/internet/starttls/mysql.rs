//! MySQL's TLS (the client/server protocol's SSLRequest): the server's handshake packet, the
//! client's SSLRequest packet, then TLS at once.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, Frame, Framed, Step, MAX_REPLY_PACKET};
use super::error::{printable, StartTlsError};

/// The client side of MySQL's TLS: the server's handshake packet (protocol version 10) must
/// offer `CLIENT_SSL`; the client answers with an SSLRequest packet and starts TLS at once.
/// Turn it into a [`Component`](axon::Component) with `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `MysqlStartTlsClient::new()` and port 3306).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::MysqlStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = MysqlStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with a binary dialogue over MySQL
/// packets (3-byte length, 1-byte sequence number, payload; at most
/// [`MAX_REPLY_PACKET`](super::MAX_REPLY_PACKET) bytes, or [`StartTlsError::PacketTooLong`]).
/// The first packet is the server's handshake: an error packet (`0xff`: "host is not
/// allowed", "too many connections") fails with [`StartTlsError::Refused`]; a protocol
/// version other than 10 or a packet cut short with [`StartTlsError::Malformed`]; capability
/// flags without `CLIENT_SSL` with [`StartTlsError::NotOffered`]. Otherwise it sends the
/// 32-byte SSLRequest (capabilities `CLIENT_SSL`, `CLIENT_PROTOCOL_41`,
/// `CLIENT_SECURE_CONNECTION`, the next sequence number) and switches at once: MySQL has no
/// go-ahead, so any byte the server sends after its handshake packet and before TLS is
/// refused as injection.
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct MysqlStartTlsClient {
    timeout: Duration,
}

client_component!(MysqlStartTlsClient, MysqlClient);

/// `CLIENT_SSL`, in the lower capability flags.
const CLIENT_SSL: u16 = 0x0800;
/// The capabilities the SSLRequest announces: LONG_PASSWORD, PROTOCOL_41, SSL, TRANSACTIONS,
/// SECURE_CONNECTION, PLUGIN_AUTH.
const OUR_CAPABILITIES: u32 = 0x0000_0001 | 0x0200 | 0x0800 | 0x2000 | 0x8000 | 0x0008_0000;

/// A MySQL client's dialogue: one packet in, one out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MysqlClient;

/// The SSLRequest packet, with sequence number `seq`.
pub(crate) fn ssl_request(seq: u8) -> Bytes {
    let mut p = Vec::with_capacity(36);
    p.extend_from_slice(&[32, 0, 0, seq]);
    p.extend_from_slice(&OUR_CAPABILITIES.to_le_bytes());
    // The largest packet the client would take (16 MiB), and utf8mb4_general_ci.
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[0; 23]);
    Bytes::from(p)
}

/// What the server's handshake packet says: `Ok` to go on, or why not.
pub(crate) fn handshake(payload: &[u8]) -> Result<(), StartTlsError> {
    let malformed = |what: &str| StartTlsError::Malformed {
        step: "the handshake",
        what: what.to_string(),
    };
    match payload.first() {
        None => return Err(malformed("an empty packet")),
        Some(0xff) => {
            let code = payload.get(1..3).map(|c| u16::from_le_bytes([c[0], c[1]]));
            let mut text = payload.get(3..).unwrap_or_default();
            if text.first() == Some(&b'#') {
                text = text.get(6..).unwrap_or_default();
            }
            return Err(StartTlsError::Refused {
                step: "the connection",
                reply: format!("error {}: {}", code.unwrap_or(0), printable(text)),
            });
        }
        Some(10) => {}
        Some(v) => {
            return Err(malformed(&format!(
                "protocol version {v}; only version 10 is spoken"
            )))
        }
    }
    // The server's version, up to its NUL; then the connection id (4), the first part of the
    // scramble (8), a filler (0) and the lower capability flags (2).
    let nul = payload[1..]
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| malformed("the server version has no end"))?;
    let at = 1 + nul + 1 + 4 + 8;
    let (Some(&filler), Some(caps)) = (payload.get(at), payload.get(at + 1..at + 3)) else {
        return Err(malformed("the packet is cut short"));
    };
    if filler != 0 {
        return Err(malformed("the filler after the scramble is not 0"));
    }
    if u16::from_le_bytes([caps[0], caps[1]]) & CLIENT_SSL == 0 {
        return Err(StartTlsError::NotOffered);
    }
    Ok(())
}

impl Framed for MysqlClient {
    fn on_bytes(&mut self, unread: &[u8]) -> Frame {
        let Some(header) = unread.get(..4) else {
            return Frame::More;
        };
        let length =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        if length > MAX_REPLY_PACKET {
            let length = length as u64;
            return Frame::Took(0, Step::Fail(StartTlsError::PacketTooLong { length }));
        }
        let Some(payload) = unread.get(4..4 + length) else {
            return Frame::More;
        };
        let step = match handshake(payload) {
            Ok(()) => Step::SendThenSwitch(ssl_request(header[3].wrapping_add(1))),
            Err(e) => Step::Fail(e),
        };
        Frame::Took(4 + length, step)
    }
}
