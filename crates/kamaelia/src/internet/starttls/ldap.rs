//! LDAP StartTLS (RFC 4511 §4.14): an ExtendedRequest out, an ExtendedResponse back, in BER.

use std::time::Duration;

use bytes::Bytes;

use super::client::{client_component, Frame, Framed, Step, MAX_REPLY_PACKET};
use super::error::{printable, StartTlsError};

/// The client side of LDAP StartTLS (RFC 4511): the ExtendedRequest for
/// `1.3.6.1.4.1.1466.20037` as soon as connected, an ExtendedResponse with result code 0, then
/// TLS. Turn it into a [`Component`](axon::Component) with `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `LdapStartTlsClient::new()` and port 389).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::LdapStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = LdapStartTlsClient::new().timeout(Duration::from_secs(10)).into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with a binary dialogue of one BER
/// message each way. When the connection is up it sends the LDAPMessage with message ID 1 and
/// an ExtendedRequest (`[APPLICATION 23]`) naming StartTLS. It reads one LDAPMessage (a
/// definite-length SEQUENCE of at most [`MAX_REPLY_PACKET`](super::MAX_REPLY_PACKET) bytes, or
/// [`StartTlsError::PacketTooLong`]) that must hold message ID 1 and an ExtendedResponse
/// (`[APPLICATION 24]`): result code 0 is the go-ahead, any other fails with
/// [`StartTlsError::Refused`] naming the code and the server's diagnostic message. A Notice of
/// Disconnection (message ID 0) fails with [`StartTlsError::Refused`] too; anything that is not
/// such a message, with [`StartTlsError::Malformed`].
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct LdapStartTlsClient {
    timeout: Duration,
}

client_component!(LdapStartTlsClient, LdapClient);

/// The StartTLS extended operation's OID.
const STARTTLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// An LDAP client's dialogue: one message out, one back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LdapClient;

/// The request: SEQUENCE { INTEGER 1, [APPLICATION 23] { [0] OID } }.
pub(crate) fn start_tls_request() -> Bytes {
    let name_len = STARTTLS_OID.len() as u8; // 22: short-form lengths throughout.
    let op_len = 2 + name_len;
    let mut m = vec![
        0x30,
        3 + 2 + op_len,
        0x02,
        0x01,
        0x01,
        0x77,
        op_len,
        0x80,
        name_len,
    ];
    m.extend_from_slice(STARTTLS_OID);
    Bytes::from(m)
}

/// A BER element's header at the start of `b`: its tag, the header's length and the
/// content's. `Ok(None)`: not all of the header is there yet.
fn header(b: &[u8]) -> Result<Option<(u8, usize, u64)>, String> {
    let (Some(&tag), Some(&first)) = (b.first(), b.get(1)) else {
        return Ok(None);
    };
    if first < 0x80 {
        return Ok(Some((tag, 2, u64::from(first))));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 {
        return Err("an indefinite length (not allowed in LDAP)".into());
    }
    if n > 8 {
        return Err(format!("a length of {n} bytes"));
    }
    let Some(digits) = b.get(2..2 + n) else {
        return Ok(None);
    };
    let length = digits.iter().fold(0u64, |l, &d| l << 8 | u64::from(d));
    Ok(Some((tag, 2 + n, length)))
}

/// The element at the start of `b`, whole: its tag, its content and what follows it.
fn element(b: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (tag, at, length) = header(b)?.ok_or("an element cut short")?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| l.checked_add(at))
        .filter(|&end| end <= b.len())
        .ok_or("an element longer than its message")?;
    Ok((tag, &b[at..end], &b[end..]))
}

/// A small unsigned INTEGER or ENUMERATED's value.
fn number(content: &[u8]) -> Result<u64, String> {
    if content.is_empty() || content.len() > 8 {
        return Err("a number of the wrong size".into());
    }
    Ok(content.iter().fold(0u64, |n, &d| n << 8 | u64::from(d)))
}

/// The names of the result codes a StartTLS request is likely to meet (RFC 4511 appendix A).
fn result_name(code: u64) -> &'static str {
    match code {
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        8 => "strongerAuthRequired",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "see RFC 4511",
    }
}

/// What the LDAPMessage `content` (inside its SEQUENCE) says.
pub(crate) fn response(content: &[u8]) -> Result<(), StartTlsError> {
    let malformed = |what: String| StartTlsError::Malformed {
        step: "StartTLS",
        what,
    };
    let (tag, id, rest) = element(content).map_err(malformed)?;
    if tag != 0x02 {
        return Err(malformed("the message does not start with its ID".into()));
    }
    let id = number(id).map_err(malformed)?;
    let (tag, op, _controls) = element(rest).map_err(malformed)?;
    if tag != 0x78 {
        return Err(malformed(format!(
            "the answer is not an ExtendedResponse (tag {tag:#04x})"
        )));
    }
    let (tag, code, rest) = element(op).map_err(malformed)?;
    if tag != 0x0a {
        return Err(malformed("the ExtendedResponse has no result code".into()));
    }
    let code = number(code).map_err(malformed)?;
    // matchedDN, then diagnosticMessage.
    let diagnostic = element(rest)
        .and_then(|(_, _, rest)| element(rest))
        .map(|(_, text, _)| printable(text))
        .unwrap_or_default();
    match (id, code) {
        (1, 0) => Ok(()),
        (0, _) => Err(StartTlsError::Refused {
            step: "the connection",
            reply: format!("notice of disconnection, result code {code}: {diagnostic}"),
        }),
        (1, _) => Err(StartTlsError::Refused {
            step: "StartTLS",
            reply: format!("result code {code} ({}): {diagnostic}", result_name(code)),
        }),
        (id, _) => Err(malformed(format!("message ID {id}, not 1"))),
    }
}

impl Framed for LdapClient {
    fn opening(&mut self) -> Option<Bytes> {
        Some(start_tls_request())
    }

    fn on_bytes(&mut self, unread: &[u8]) -> Frame {
        let fail = |e| Frame::Took(0, Step::Fail(e));
        let (tag, at, length) = match header(unread) {
            Ok(Some(h)) => h,
            Ok(None) => return Frame::More,
            Err(what) => {
                return fail(StartTlsError::Malformed {
                    step: "StartTLS",
                    what,
                })
            }
        };
        if tag != 0x30 {
            return fail(StartTlsError::Malformed {
                step: "StartTLS",
                what: format!("not an LDAPMessage (tag {tag:#04x})"),
            });
        }
        let total = u64::try_from(at).unwrap_or(u64::MAX).saturating_add(length);
        if total > MAX_REPLY_PACKET as u64 {
            return fail(StartTlsError::PacketTooLong { length: total });
        }
        // At most MAX_REPLY_PACKET, checked above.
        let total = total as usize;
        let Some(content) = unread.get(at..total) else {
            return Frame::More;
        };
        let step = match response(content) {
            Ok(()) => Step::Switch,
            Err(e) => Step::Fail(e),
        };
        Frame::Took(total, step)
    }
}
