//! The dialogues of LMTP, FTP, IRC, NNTP, ManageSieve (lines), PostgreSQL, MySQL, LDAP
//! (packets) and XMPP (a stream), without sockets: tables of the server's bytes in, what the
//! client sends and its verdict out; each cut byte by byte as well as whole; and the bytes a
//! go-ahead is followed by refused as injection.

use bytes::Bytes;

use super::client::{Framed, Lines, Talk, MAX_REPLY_PACKET};
use super::error::StartTlsError;
use super::ftp::FtpClient;
use super::irc::IrcClient;
use super::ldap::{start_tls_request, LdapClient};
use super::mysql::{ssl_request, MysqlClient};
use super::nntp::NntpClient;
use super::postgres::{PostgresClient, SSL_REQUEST};
use super::sieve::SieveClient;
use super::smtp::{LmtpClient, SmtpClient};
use super::xmpp::{XmppClient, MAX_XMPP_PREAMBLE};
use crate::internet::TlsError;

/// Where a dialogue ended up.
#[derive(Debug, PartialEq, Eq)]
enum V {
    /// Still talking.
    Talking,
    /// Asked to switch.
    Switch,
    /// Failed: the error's kind.
    Fail(&'static str),
}

fn kind(e: &StartTlsError) -> &'static str {
    match e {
        StartTlsError::Unexpected { .. } => "unexpected",
        StartTlsError::NotOffered => "not offered",
        StartTlsError::Refused { .. } => "refused",
        StartTlsError::Bye { .. } => "bye",
        StartTlsError::Malformed { .. } => "malformed",
        StartTlsError::PacketTooLong { .. } => "packet too long",
        StartTlsError::LineTooLong => "line too long",
        StartTlsError::TooManyLines => "too many lines",
        StartTlsError::TooMuchData { .. } => "too much",
        StartTlsError::Tls(TlsError::PlaintextInjection { .. }) => "injection",
        _ => "other",
    }
}

/// Feeds `input` to `d` in one piece and again one byte at a time; both must end up in the
/// same place, and send the same when they do not fail (a read that ends in failure sends
/// nothing: the connection is closed). Returns what the client sent byte by byte (its opening
/// first) and where it ended up.
fn talk<D: Framed + Clone>(d: D, input: &[u8]) -> (Vec<u8>, V) {
    let whole = run(d.clone(), &[input]);
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let cut = run(d, &bytes);
    let what = String::from_utf8_lossy(input);
    assert_eq!(whole.1, cut.1, "whole vs byte by byte: {what:?}");
    if !matches!(cut.1, V::Fail(_)) {
        assert_eq!(whole.0, cut.0, "whole vs byte by byte: {what:?}");
    }
    cut
}

fn run<D: Framed>(d: D, chunks: &[&[u8]]) -> (Vec<u8>, V) {
    let mut t = Talk::new(d);
    let mut sent: Vec<u8> = t.opening().map(|b| b.to_vec()).unwrap_or_default();
    let mut verdict = V::Talking;
    for c in chunks {
        match t.feed(c) {
            Ok(said) => {
                said.send.iter().for_each(|b| sent.extend_from_slice(b));
                if said.switch {
                    verdict = V::Switch;
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                verdict = V::Fail(kind(&e));
                break;
            }
        }
    }
    (sent, verdict)
}

/// Each case: the server's bytes, what the client must have sent, the verdict.
type Cases<'a> = &'a [(&'a [u8], &'a [u8], V)];

fn check<D: Framed + Clone>(name: &str, d: D, cases: Cases) {
    for (input, sent, verdict) in cases {
        let (got_sent, got) = talk(d.clone(), input);
        let what = format!("{name}: {:?}", String::from_utf8_lossy(input));
        assert_eq!(got, *verdict, "{what}");
        assert_eq!(
            String::from_utf8_lossy(&got_sent),
            String::from_utf8_lossy(sent),
            "{what}"
        );
    }
}

#[test]
fn lmtp_says_lhlo_where_smtp_says_ehlo() {
    use V::*;
    check(
        "LMTP",
        Lines::new(LmtpClient(SmtpClient::Greeting)),
        &[
            (
                b"220 lmtp ready\r\n250-lmtp.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n220 go\r\n",
                b"LHLO kamaelia\r\nSTARTTLS\r\n",
                Switch,
            ),
            (
                b"220 hi\r\n250 lmtp.test\r\n",
                b"LHLO kamaelia\r\n",
                Fail("not offered"),
            ),
            (
                b"220 hi\r\n500 what is LHLO\r\n",
                b"LHLO kamaelia\r\n",
                Fail("unexpected"),
            ),
            (
                b"220 hi\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n",
                b"LHLO kamaelia\r\nSTARTTLS\r\n",
                Fail("refused"),
            ),
        ],
    );
}

#[test]
fn ftp_asks_auth_tls_after_the_greeting() {
    use V::*;
    check(
        "FTP",
        Lines::new(FtpClient::Greeting),
        &[
            (
                b"220 ProFTPD ready\r\n234 AUTH TLS successful\r\n",
                b"AUTH TLS\r\n",
                Switch,
            ),
            (
                b"220-Welcome\r\n to the server\r\n220 ready\r\n234-more\r\n234 go\r\n",
                b"AUTH TLS\r\n",
                Switch,
            ),
            (
                b"120 in 5 minutes\r\n220 ready\r\n234 go\r\n",
                b"AUTH TLS\r\n",
                Switch,
            ),
            (
                b"220 hi\r\n534 Policy requires SSL\r\n",
                b"AUTH TLS\r\n",
                Fail("refused"),
            ),
            (
                b"220 hi\r\n502 not implemented\r\n",
                b"AUTH TLS\r\n",
                Fail("refused"),
            ),
            (
                b"220 hi\r\n334 ADAT=x\r\n",
                b"AUTH TLS\r\n",
                Fail("unexpected"),
            ),
            (b"421 too many users\r\n", b"", Fail("unexpected")),
            (b"220 hi\r\n", b"AUTH TLS\r\n", Talking),
        ],
    );
}

#[test]
fn irc_asks_first_and_waits_for_670() {
    use V::*;
    let s = b"STARTTLS\r\n";
    check(
        "IRC",
        Lines::new(IrcClient),
        &[
            (
                b":irc.test 670 * :STARTTLS successful, go ahead\r\n",
                s,
                Switch,
            ),
            (
                b":irc.test NOTICE * :*** Looking up your hostname...\r\nNOTICE AUTH :hi\r\n\
                  :irc.test 670 * :go\r\n",
                s,
                Switch,
            ),
            (b":irc.test 691 * :STARTTLS failure\r\n", s, Fail("refused")),
            (
                b":irc.test 421 * STARTTLS :Unknown command\r\n",
                s,
                Fail("not offered"),
            ),
            (
                b":irc.test 451 * STARTTLS :You have not registered\r\n",
                s,
                Fail("refused"),
            ),
            (b"ERROR :Closing link\r\n", s, Fail("refused")),
            (b"PING :12345\r\n", s, Talking),
        ],
    );
}

#[test]
fn nntp_reads_capabilities_then_asks() {
    use V::*;
    let both = b"CAPABILITIES\r\nSTARTTLS\r\n";
    check(
        "NNTP",
        Lines::new(NntpClient::Greeting),
        &[
            (
                b"200 news.test ready\r\n101 Capability list:\r\nVERSION 2\r\nSTARTTLS\r\n.\r\n\
                  382 Continue with TLS negotiation\r\n",
                both,
                Switch,
            ),
            (
                b"201 no posting\r\n101 caps\r\nVERSION 2\r\nREADER\r\n.\r\n",
                b"CAPABILITIES\r\n",
                Fail("not offered"),
            ),
            // An older server without CAPABILITIES is asked anyway, as s_client does.
            (b"200 hi\r\n500 what?\r\n382 go\r\n", both, Switch),
            (
                b"200 hi\r\n101 caps\r\nSTARTTLS\r\n.\r\n580 Can not initiate TLS\r\n",
                both,
                Fail("refused"),
            ),
            (
                b"200 hi\r\n101 caps\r\nSTARTTLS\r\n.\r\n200 eh\r\n",
                both,
                Fail("unexpected"),
            ),
            (b"502 no permission\r\n", b"", Fail("refused")),
            (b"+OK pop\r\n", b"", Fail("unexpected")),
        ],
    );
}

#[test]
fn sieve_reads_capabilities_up_to_ok_then_asks() {
    use V::*;
    let s = b"STARTTLS\r\n";
    check(
        "Sieve",
        Lines::new(SieveClient::Greeting { offered: false }),
        &[
            (
                b"\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n\"SIEVE\" \"fileinto\"\r\n\
                  \"STARTTLS\"\r\n\"VERSION\" \"1.0\"\r\nOK \"ready\"\r\nOK \"Begin TLS\"\r\n",
                s,
                Switch,
            ),
            (b"\"starttls\"\r\nok\r\nOk (x)\r\n", s, Switch),
            (b"\"SASL\" \"PLAIN\"\r\nOK\r\n", b"", Fail("not offered")),
            (
                b"\"STARTTLS\"\r\nOK\r\nNO \"not now\"\r\n",
                s,
                Fail("refused"),
            ),
            (b"\"STARTTLS\"\r\nOK\r\nBYE \"going\"\r\n", s, Fail("bye")),
            (b"* OK imap\r\n", b"", Fail("unexpected")),
        ],
    );
}

#[test]
fn postgres_sends_sslrequest_and_reads_one_byte() {
    use V::*;
    // Length 8, then 80877103, as the protocol documents it.
    assert_eq!(SSL_REQUEST[..4], 8u32.to_be_bytes());
    assert_eq!(SSL_REQUEST[4..], 80_877_103u32.to_be_bytes());
    let req = &SSL_REQUEST[..];
    check(
        "PostgreSQL",
        PostgresClient,
        &[
            (b"S", req, Switch),
            (b"N", req, Fail("not offered")),
            (
                b"EFATAL unsupported frontend protocol\0",
                req,
                Fail("refused"),
            ),
            (b"H", req, Fail("unexpected")),
            (b"", req, Talking),
            // CVE-2021-23222: bytes after S, before the handshake.
            (b"SE\0\0\0\x10injected", req, Fail("injection")),
        ],
    );
}

/// A MySQL server's handshake packet (protocol 10) with these lower capability flags.
pub(super) fn mysql_greeting(caps: u16) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"8.0.36\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"scramble");
    p.push(0);
    p.extend_from_slice(&caps.to_le_bytes());
    p.push(0xff);
    p.extend_from_slice(&[2, 0]);
    p.extend_from_slice(&[0xff, 0xdf]);
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"rest of scram\0");
    p.extend_from_slice(b"caching_sha2_password\0");
    let mut packet = (p.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&p);
    packet
}

#[test]
fn mysql_answers_a_handshake_that_offers_ssl_with_an_sslrequest() {
    use V::*;
    let ssl = mysql_greeting(0xffff);
    let no_ssl = mysql_greeting(!0x0800);
    let mut error = vec![0xff, 0x6a, 0x04];
    error.extend_from_slice(b"#HY000Host '10.0.0.1' is not allowed to connect");
    let mut error_packet = vec![error.len() as u8, 0, 0, 0];
    error_packet.extend_from_slice(&error);
    let mut v9 = mysql_greeting(0xffff);
    v9[4] = 9;
    let mut injected = ssl.clone();
    injected.extend_from_slice(b"\x01\0\0\x02x");
    let mut cut = mysql_greeting(0xffff);
    cut[0] = 12; // A packet that ends inside the scramble.
    cut.truncate(16);
    let request = ssl_request(1);
    check(
        "MySQL",
        MysqlClient,
        &[
            (&ssl, &request, Switch),
            (&no_ssl, b"", Fail("not offered")),
            (&error_packet, b"", Fail("refused")),
            (&v9, b"", Fail("malformed")),
            (&cut, b"", Fail("malformed")),
            (&injected, &request, Fail("injection")),
            (&ssl[..20], b"", Talking),
            (&[0x00, 0x00, 0x01, 0x00], b"", Fail("packet too long")),
        ],
    );
    // The request: 32 bytes of payload, sequence 1, CLIENT_SSL and CLIENT_PROTOCOL_41 set.
    assert_eq!(request.len(), 36);
    assert_eq!(request[..4], [32, 0, 0, 1]);
    let caps = u32::from_le_bytes([request[4], request[5], request[6], request[7]]);
    assert_eq!(caps & 0x0800, 0x0800);
    assert_eq!(caps & 0x0200, 0x0200);
    let err = run(MysqlClient, &[&error_packet]);
    assert_eq!(err.1, Fail("refused"));
}

/// An LDAPMessage with this ID holding an ExtendedResponse with this result code and
/// diagnostic message (short-form lengths).
pub(super) fn ldap_response(id: u8, code: u8, diagnostic: &[u8]) -> Vec<u8> {
    let mut op = vec![0x0a, 1, code, 0x04, 0, 0x04, diagnostic.len() as u8];
    op.extend_from_slice(diagnostic);
    let mut content = vec![0x02, 1, id, 0x78, op.len() as u8];
    content.extend_from_slice(&op);
    let mut m = vec![0x30, content.len() as u8];
    m.extend_from_slice(&content);
    m
}

#[test]
fn ldap_sends_the_starttls_extended_request_and_reads_its_response() {
    use V::*;
    // SEQUENCE { INTEGER 1, [APPLICATION 23] { [0] "1.3.6.1.4.1.1466.20037" } }.
    let mut want = vec![0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18, 0x80, 0x16];
    want.extend_from_slice(b"1.3.6.1.4.1.1466.20037");
    assert_eq!(start_tls_request(), want);
    let ok = ldap_response(1, 0, b"");
    // The same with a long-form length and the responseName the server may add.
    let mut long = ok.clone();
    long[1] += 2 + 22;
    long[6] += 2 + 22;
    long.extend_from_slice(&[0x8a, 22]);
    long.extend_from_slice(b"1.3.6.1.4.1.1466.20037");
    let len = long[1];
    long.splice(1..2, [0x81, len]);
    let mut injected = ok.clone();
    injected.extend_from_slice(&ldap_response(1, 0, b"again"));
    check(
        "LDAP",
        LdapClient,
        &[
            (&ok, &want, Switch),
            (&long, &want, Switch),
            (
                &ldap_response(1, 2, b"unsupported extended operation"),
                &want,
                Fail("refused"),
            ),
            (
                &ldap_response(0, 52, b"server shutting down"),
                &want,
                Fail("refused"),
            ),
            (&ldap_response(7, 0, b""), &want, Fail("malformed")),
            (&[0x04, 0x00], &want, Fail("malformed")),
            (&[0x30, 0x80, 0, 0], &want, Fail("malformed")),
            (&[0x30, 0x03, 0x02, 0x01, 0x01], &want, Fail("malformed")),
            (
                &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff],
                &want,
                Fail("packet too long"),
            ),
            (&injected, &want, Fail("injection")),
            (&ok[..ok.len() - 1], &want, Talking),
        ],
    );
}

#[test]
fn xmpp_opens_a_stream_to_the_domain_and_waits_for_proceed() {
    use V::*;
    let header = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
                   xmlns='jabber:client' to='example.test' version='1.0'>";
    let both = [
        &header[..],
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    ]
    .concat();
    let open = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                 xmlns:stream='http://etherx.jabber.org/streams' id='x' from='example.test' \
                 version='1.0'>";
    let features = b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>\
                     <required/></starttls><mechanisms/></stream:features>";
    let proceed = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    let ok = [&open[..], features, proceed].concat();
    let double = [
        &open[..],
        b"<stream:features><starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>\
          </stream:features><proceed xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"></proceed>",
    ]
    .concat();
    let none = [
        &open[..],
        b"<stream:features><mechanisms/></stream:features>",
    ]
    .concat();
    let failure = [
        &open[..],
        features,
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    ]
    .concat();
    let error = [&open[..], b"<stream:error><host-unknown/></stream:error>"].concat();
    let injected = [&ok[..], b"<message>unprotected</message>"].concat();
    check(
        "XMPP",
        XmppClient::new("example.test", false),
        &[
            (&ok, &both, Switch),
            (&double, &both, Switch),
            (&none, header, Fail("not offered")),
            (&failure, &both, Fail("refused")),
            (&error, header, Fail("refused")),
            (&injected, &both, Fail("injection")),
            (&[&open[..], features].concat(), &both, Talking),
        ],
    );
    // xmpp-server: jabber:server; the domain is escaped for XML.
    let (sent, _) = run(XmppClient::new("a'b<c", true), &[]);
    let sent = String::from_utf8(sent).unwrap();
    assert!(
        sent.contains("xmlns='jabber:server' to='a&apos;b&lt;c'"),
        "{sent}"
    );
}

#[test]
fn xmpp_holds_little_and_stops_at_its_cap() {
    let mut t = Talk::new(XmppClient::new("example.test", false));
    let chunk = b"<presence>chatter that is not a mark</presence>".repeat(100);
    let mut result = Ok(Default::default());
    let mut fed = 0;
    while fed <= MAX_XMPP_PREAMBLE + chunk.len() {
        result = t.feed(&chunk);
        if result.is_err() {
            break;
        }
        assert!(t.held() < 64, "held {}", t.held());
        fed += chunk.len();
    }
    assert!(matches!(result, Err(StartTlsError::TooMuchData { .. })));
}

#[test]
fn binary_packets_are_capped_before_they_are_read() {
    // A MySQL packet announcing 16 MiB - 1 and an LDAP message announcing 4 GiB fail at once,
    // on their header, without waiting for (or holding) the body.
    let mut t = Talk::new(MysqlClient);
    assert!(matches!(
        t.feed(&[0xff, 0xff, 0xff, 0x00, 10]),
        Err(StartTlsError::PacketTooLong { length: 0xff_ffff })
    ));
    let mut t = Talk::new(LdapClient);
    let e = t.feed(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
    assert!(e.to_string().contains(&MAX_REPLY_PACKET.to_string()), "{e}");
    // One byte under the cap is waited for, and held.
    let mut t = Talk::new(MysqlClient);
    let len = (MAX_REPLY_PACKET as u32).to_le_bytes();
    t.feed(&[len[0], len[1], len[2], 0]).unwrap();
    t.feed(&vec![10; 1000]).unwrap();
    assert_eq!(t.held(), 1004);
}

#[test]
fn errors_say_what_the_server_said() {
    let (_, v) = run(LdapClient, &[&ldap_response(1, 53, b"no TLS here")]);
    assert_eq!(v, V::Fail("refused"));
    let mut t = Talk::new(LdapClient);
    let e = t.feed(&ldap_response(1, 53, b"no TLS here")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("53 (unwillingToPerform)") && text.contains("no TLS here"),
        "{text}"
    );
    let mut t = Talk::new(Lines::new(FtpClient::Greeting));
    let e = t
        .feed(b"220 hi\r\n534 Policy requires SSL\r\n")
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("refused AUTH TLS: \"534 Policy requires SSL\""),
        "{e}"
    );
    let mut t = Talk::new(PostgresClient);
    assert_eq!(
        t.feed(b"N").unwrap_err().to_string(),
        "STARTTLS failed: the server does not offer it"
    );
    let _ = Bytes::new();
}
