//! XMPP STARTTLS (RFC 6120 §5.4): the stream header, the features naming `<starttls/>`, the
//! request, and `<proceed/>`.

use std::time::Duration;

use axon::Component;
use bytes::Bytes;

use super::client::{Frame, Framed, Step};
use super::error::{printable, StartTlsError};

/// The most bytes an XMPP server may send before its answer (features, then `<proceed/>`).
pub const MAX_XMPP_PREAMBLE: usize = 64 * 1024;

/// The client side of XMPP STARTTLS (RFC 6120): a stream header to the domain, the server's
/// features naming `<starttls/>`, the request, `<proceed/>`, then TLS. As a client
/// (`jabber:client`) or as a server talking to a server (`jabber:server`,
/// [`server_to_server`](Self::server_to_server)). Turn it into a
/// [`Component`](axon::Component) with `.into()`.
///
/// Wired like [`SmtpStartTlsClient`](super::SmtpStartTlsClient) (same boxes, same example with
/// `XmppStartTlsClient::new("example.com")` and port 5222, or 5269 between servers).
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use axon::Component;
/// use kamaelia::internet::XmppStartTlsClient;
///
/// // Wired between the user's side and a TcpClient as SmtpStartTlsClient's example shows.
/// let c: Component = XmppStartTlsClient::new("example.com")
///     .timeout(Duration::from_secs(10))
///     .into();
/// assert!(c.boxref("makessl").is_ok() && c.boxref("touser").is_ok());
/// ```
///
/// # How it works
///
/// As [`SmtpStartTlsClient`](super::SmtpStartTlsClient), with a dialogue over a stream of XML
/// rather than lines, as `openssl s_client -starttls xmpp` speaks it: when the connection is
/// up it sends `<stream:stream … to='DOMAIN' version='1.0'>` (the domain escaped for XML),
/// then looks in what the server sends for `<starttls
/// xmlns='urn:ietf:params:xml:ns:xmpp-tls'` (either quote), answers with `<starttls
/// xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`, and looks for `<proceed`: the go-ahead ends at
/// the end of that element, and any byte after it before TLS is refused as injection.
/// `</stream:features>` without `<starttls` fails with [`StartTlsError::NotOffered`];
/// `<failure`, `<stream:error` or `</stream:stream>` with [`StartTlsError::Refused`]. What it
/// has looked at is dropped as it goes (it holds at most a partial marker), and the server may
/// send at most [`MAX_XMPP_PREAMBLE`] bytes in all ([`StartTlsError::TooMuchData`]).
///
#[doc = include_str!("client_boxes.md")]
#[derive(Debug, Clone)]
pub struct XmppStartTlsClient {
    domain: String,
    server: bool,
    timeout: Duration,
}

impl XmppStartTlsClient {
    /// A client that opens its stream `to` this domain, with
    /// [`DEFAULT_DIALOGUE_TIMEOUT`](super::DEFAULT_DIALOGUE_TIMEOUT).
    pub fn new(domain: impl Into<String>) -> Self {
        XmppStartTlsClient {
            domain: domain.into(),
            server: false,
            timeout: super::DEFAULT_DIALOGUE_TIMEOUT,
        }
    }

    /// Speak as a server to a server (`jabber:server`, s_client's `xmpp-server`) rather than
    /// as a client.
    #[must_use]
    pub fn server_to_server(mut self, yes: bool) -> Self {
        self.server = yes;
        self
    }

    /// How long the server has for the whole dialogue, counted from `Connected`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl From<XmppStartTlsClient> for Component {
    fn from(c: XmppStartTlsClient) -> Component {
        super::client::component(
            "XmppStartTlsClient",
            Some(Box::new(XmppClient::new(&c.domain, c.server))),
            c.timeout,
        )
    }
}

/// The request for TLS.
const STARTTLS: &[u8] = b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";

/// What the dialogue looks for, and what each means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Offer,
    EndOfFeatures,
    Proceed,
    Failure,
    StreamError,
    EndOfStream,
}

const MARKS: [(&[u8], Mark); 7] = [
    (
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'",
        Mark::Offer,
    ),
    (
        b"<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"",
        Mark::Offer,
    ),
    (b"</stream:features>", Mark::EndOfFeatures),
    (b"<proceed", Mark::Proceed),
    (b"<failure", Mark::Failure),
    (b"<stream:error", Mark::StreamError),
    (b"</stream:stream>", Mark::EndOfStream),
];

/// The longest `<proceed>` element taken (a real one is about 50 bytes).
const MAX_PROCEED: usize = 1024;

/// The longest mark: a partial one of up to this less one byte is kept between reads.
const LONGEST: usize = 50;

/// An XMPP client's dialogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XmppClient {
    header: Bytes,
    /// The request has been sent: waiting for `<proceed`.
    asked: bool,
    /// Bytes dropped so far.
    dropped: usize,
}

/// `s` with XML's five special characters escaped.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

impl XmppClient {
    pub(crate) fn new(domain: &str, server: bool) -> Self {
        let header = format!(
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns='jabber:{}' to='{}' version='1.0'>",
            if server { "server" } else { "client" },
            xml_escape(domain)
        );
        XmppClient {
            header: Bytes::from(header),
            asked: false,
            dropped: 0,
        }
    }

    /// The first mark in `b`: where it starts, its length and what it means.
    fn first_mark(b: &[u8]) -> Option<(usize, usize, Mark)> {
        (0..b.len()).find_map(|i| {
            (b[i] == b'<')
                .then(|| MARKS.iter().find(|(m, _)| b[i..].starts_with(m)))
                .flatten()
                .map(|(m, what)| (i, m.len(), *what))
        })
    }

    /// Drops `n` looked-at bytes, within the cap on the whole preamble.
    fn skip(&mut self, n: usize) -> Frame {
        self.dropped += n;
        Frame::Skip(n)
    }

    /// The end of the element that starts at `b`'s start (`<proceed…/>` or
    /// `<proceed…>…</proceed>`), if it is all there.
    fn element_end(b: &[u8]) -> Option<usize> {
        let close = b.iter().position(|&c| c == b'>')?;
        if close > 0 && b[close - 1] == b'/' {
            return Some(close + 1);
        }
        let end_tag = b"</proceed>";
        b.windows(end_tag.len())
            .position(|w| w == end_tag)
            .map(|i| i + end_tag.len())
    }
}

impl Framed for XmppClient {
    fn opening(&mut self) -> Option<Bytes> {
        Some(self.header.clone())
    }

    fn on_bytes(&mut self, unread: &[u8]) -> Frame {
        if self.dropped + unread.len() > MAX_XMPP_PREAMBLE {
            let limit = MAX_XMPP_PREAMBLE;
            return Frame::Took(0, Step::Fail(StartTlsError::TooMuchData { limit }));
        }
        let Some((at, len, mark)) = Self::first_mark(unread) else {
            // Keep what could be the start of a mark cut by the read.
            let keep = unread.len().min(LONGEST - 1);
            return match unread.len() - keep {
                0 => Frame::More,
                n => self.skip(n),
            };
        };
        if at > 0 {
            return self.skip(at);
        }
        let refused = |step, b: &[u8]| {
            let end = b.iter().position(|&c| c == b'>').map_or(b.len(), |i| i + 1);
            Step::Fail(StartTlsError::Refused {
                step,
                reply: printable(&b[..end]),
            })
        };
        let step = if self.asked { "STARTTLS" } else { "the stream" };
        match mark {
            Mark::Offer if !self.asked => {
                self.asked = true;
                Frame::Took(len, Step::Send(Bytes::from_static(STARTTLS)))
            }
            Mark::EndOfFeatures if !self.asked => {
                Frame::Took(len, Step::Fail(StartTlsError::NotOffered))
            }
            Mark::Proceed if self.asked => match Self::element_end(unread) {
                Some(end) => Frame::Took(end, Step::Switch),
                None if unread.len() > MAX_PROCEED => Frame::Took(
                    0,
                    Step::Fail(StartTlsError::Malformed {
                        step: "STARTTLS",
                        what: format!("<proceed> runs past {MAX_PROCEED} bytes"),
                    }),
                ),
                None => Frame::More,
            },
            Mark::Failure | Mark::StreamError | Mark::EndOfStream => {
                Frame::Took(len, refused(step, unread))
            }
            // A mark that does not belong here (a second offer, `<proceed` before asking):
            // looked at, not acted on.
            _ => self.skip(len),
        }
    }
}
