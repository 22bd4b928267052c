//! The handshakes as tables of cases: what is sent, what each reply leads to, cut anywhere.

use super::*;

/// A user name and password, in tables.
type Creds = Option<(&'static str, &'static str)>;

fn http(creds: Option<(&str, &str)>) -> Dialogue {
    let mut p = Proxy::new(ProxyKind::HttpConnect, "proxy", 3128);
    if let Some((u, w)) = creds {
        p = p.with_credentials(Credentials::new(u, w));
    }
    Dialogue::new(&p, "example.com", 443)
}

fn socks(creds: Option<(&str, &str)>, host: &str) -> Dialogue {
    let mut p = Proxy::new(ProxyKind::Socks5, "proxy", 1080);
    if let Some((u, w)) = creds {
        p = p.with_credentials(Credentials::new(u, w));
    }
    Dialogue::new(&p, host, 443)
}

/// Feeds `reply` whole, then again one byte at a time: both give the same outcome.
fn outcome(
    mut make: impl FnMut() -> Dialogue,
    reply: &[u8],
) -> Result<(Vec<u8>, Option<Bytes>), ProxyError> {
    let mut results = Vec::new();
    for cut in [reply.len().max(1), 1] {
        let mut d = make();
        d.request().unwrap();
        let mut sent = Vec::new();
        let mut open = None;
        let mut err = None;
        for piece in reply.chunks(cut) {
            match d.feed(piece) {
                Ok(fed) => {
                    sent.extend(fed.send.unwrap_or_default());
                    if let Some(rest) = fed.open {
                        open = Some(rest);
                        break;
                    }
                }
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        results.push(match err {
            Some(e) => Err(e),
            None => Ok((sent, open)),
        });
    }
    // Cut one byte at a time, the rest after the reply arrives in pieces: compare the replies.
    let (whole, bytewise) = (results.remove(0), results.remove(0));
    match (&whole, &bytewise) {
        (Ok((s1, o1)), Ok((s2, o2))) => {
            assert_eq!(s1, s2, "the same requests whichever the cut");
            assert_eq!(o1.is_some(), o2.is_some(), "opens whichever the cut");
        }
        (Err(e1), Err(e2)) => assert_eq!(e1, e2, "the same error whichever the cut"),
        _ => panic!("cut changes the outcome: {whole:?} vs {bytewise:?}"),
    }
    whole
}

#[test]
fn http_requests_carry_the_target_and_basic_auth() {
    let cases: &[(Creds, &str, &str)] = &[
        (
            None,
            "example.com",
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        ),
        (
            None,
            "::1",
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        ),
        (
            None,
            "[::1]",
            "CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n",
        ),
        (
            Some(("Aladdin", "open sesame")),
            "example.com",
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n",
        ),
    ];
    for (creds, host, want) in cases {
        let mut p = Proxy::new(ProxyKind::HttpConnect, "proxy", 3128);
        if let Some((u, w)) = creds {
            p = p.with_credentials(Credentials::new(*u, *w));
        }
        let got = Dialogue::new(&p, host, 443).request().unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), *want);
    }
    for bad in ["a b", "a\r\nX-Injected: 1", "", "a/b"] {
        let p = Proxy::new(ProxyKind::HttpConnect, "proxy", 3128);
        assert!(
            matches!(
                Dialogue::new(&p, bad, 1).request(),
                Err(ProxyError::Unsendable(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (input, want) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), want, "{input:?}");
    }
}

#[test]
fn http_replies_as_a_table() {
    let refused = |s: &str| Err(ProxyError::Refused { status: s.into() });
    type Want = Result<&'static [u8], ProxyError>;
    let cases: Vec<(&str, bool, &[u8], Want)> = vec![
        (
            "200",
            false,
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            Ok(b""),
        ),
        ("200 LF only", false, b"HTTP/1.0 200 OK\n\n", Ok(b"")),
        (
            "headers",
            false,
            b"HTTP/1.1 200 OK\r\nVia: squid\r\nX: y\r\n\r\n",
            Ok(b""),
        ),
        (
            "pipelined",
            false,
            b"HTTP/1.1 200 OK\r\n\r\n220 smtp ready\r\n",
            Ok(b"220 smtp ready\r\n"),
        ),
        (
            "interim",
            false,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nx",
            Ok(b"x"),
        ),
        (
            "any 2xx",
            false,
            b"HTTP/1.1 204 No Content\r\n\r\n",
            Ok(b""),
        ),
        (
            "403",
            false,
            b"HTTP/1.1 403 Forbidden\r\n\r\n",
            refused("403 Forbidden"),
        ),
        (
            "502",
            false,
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nabc",
            refused("502 Bad Gateway"),
        ),
        ("no reason", false, b"HTTP/1.1 404\r\n\r\n", refused("404")),
        (
            "control chars",
            false,
            b"HTTP/1.1 403 No\x1b[31m\r\n",
            refused("403 No[31m"),
        ),
        (
            "407 without credentials",
            false,
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            Err(ProxyError::AuthRequired {
                detail: "407 Proxy Authentication Required".into(),
            }),
        ),
        (
            "407 with credentials",
            true,
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
            Err(ProxyError::AuthFailed {
                detail: "407 Proxy Authentication Required".into(),
            }),
        ),
        (
            "not HTTP",
            false,
            b"SSH-2.0-OpenSSH\r\n",
            Err(ProxyError::Malformed(
                "not an HTTP status line: SSH-2.0-OpenSSH".into(),
            )),
        ),
        (
            "HTTP/2",
            false,
            b"HTTP/2 200\r\n",
            Err(ProxyError::Malformed(
                "not an HTTP status line: HTTP/2 200".into(),
            )),
        ),
        (
            "short code",
            false,
            b"HTTP/1.1 20\r\n",
            Err(ProxyError::Malformed(
                "not an HTTP status line: HTTP/1.1 20".into(),
            )),
        ),
        (
            "code glued",
            false,
            b"HTTP/1.1 2000 x\r\n",
            Err(ProxyError::Malformed(
                "not an HTTP status line: HTTP/1.1 2000 x".into(),
            )),
        ),
    ];
    for (name, creds, reply, want) in cases {
        let got = outcome(|| http(creds.then_some(("u", "p"))), reply);
        match (got, want) {
            (Ok((sent, Some(rest))), Ok(w)) => {
                assert!(sent.is_empty(), "{name}");
                assert_eq!(&rest[..], w, "{name}: the bytes after the reply");
            }
            (Err(e), Err(w)) => assert_eq!(e, w, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn http_replies_are_capped() {
    // A flood without a newline: refused once past the line cap, not held.
    let mut d = http(None);
    d.request().unwrap();
    let chunk = vec![b'A'; 1024];
    let mut fed = 0;
    let e = loop {
        match d.feed(&chunk) {
            Ok(_) => fed += chunk.len(),
            Err(e) => break e,
        }
        assert!(fed <= MAX_REPLY_LINE, "held more than a line");
    };
    assert_eq!(e, ProxyError::LineTooLong);
    // Many short header lines: refused past the reply cap.
    let mut d = http(None);
    d.request().unwrap();
    d.feed(b"HTTP/1.1 200 OK\r\n").unwrap();
    let header = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
    let e = loop {
        if let Err(e) = d.feed(header) {
            break e;
        }
    };
    assert_eq!(e, ProxyError::ReplyTooLong);
    assert!(d.consumed() <= (MAX_REPLY_BYTES + header.len()) as u64);
    // A complete line of exactly the cap is fine; one more byte is not.
    let mut d = http(None);
    d.request().unwrap();
    let mut line = b"HTTP/1.1 200 ".to_vec();
    line.resize(MAX_REPLY_LINE - 2, b'x');
    line.extend_from_slice(b"\r\n");
    assert!(d.feed(&line).is_ok());
    let mut d = http(None);
    d.request().unwrap();
    line.insert(20, b'x');
    assert_eq!(d.feed(&line), Err(ProxyError::LineTooLong));
}

#[test]
fn the_consumed_count_is_the_reply_without_what_followed() {
    let mut d = http(None);
    d.request().unwrap();
    d.feed(b"HTTP/1.1 200 OK\r\n").unwrap();
    let fed = d.feed(b"\r\nhello").unwrap();
    assert_eq!(fed.open.as_deref(), Some(&b"hello"[..]));
    assert_eq!(d.consumed(), 19);
    let mut d = socks(None, "h");
    d.request().unwrap();
    d.feed(&[5, 0]).unwrap();
    let fed = d
        .feed(&[5, 0, 0, 1, 10, 0, 0, 1, 0, 80, b'x', b'y'])
        .unwrap();
    assert_eq!(fed.open.as_deref(), Some(&b"xy"[..]));
    assert_eq!(d.consumed(), 12);
}

#[test]
fn socks5_requests_as_a_table() {
    let cases: &[(&str, &[u8])] = &[
        ("example.com", b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"),
        ("10.1.2.3", &[5, 1, 0, 1, 10, 1, 2, 3, 1, 187]),
        (
            "::1",
            &[
                5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187,
            ],
        ),
        (
            "[::1]",
            &[
                5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187,
            ],
        ),
    ];
    for (host, want) in cases {
        let mut d = socks(None, host);
        assert_eq!(
            d.request().unwrap(),
            [5, 1, 0],
            "the greeting offers no authentication"
        );
        let fed = d.feed(&[5, 0]).unwrap();
        assert_eq!(fed.send.as_deref(), Some(*want), "{host}");
    }
    let mut d = socks(None, &"x".repeat(256));
    d.request().unwrap();
    assert!(matches!(d.feed(&[5, 0]), Err(ProxyError::Unsendable(_))));
}

#[test]
fn socks5_username_password_follows_rfc_1929() {
    let mut d = socks(Some(("alice", "pw")), "h");
    assert_eq!(
        d.request().unwrap(),
        [5, 2, 0, 2],
        "offers none and username/password"
    );
    let fed = d.feed(&[5, 2]).unwrap();
    assert_eq!(fed.send.as_deref(), Some(&b"\x01\x05alice\x02pw"[..]));
    let fed = d.feed(&[1, 0]).unwrap();
    assert_eq!(
        fed.send.as_deref(),
        Some(&b"\x05\x01\x00\x03\x01h\x01\xbb"[..])
    );
    // The proxy may still choose no authentication.
    let mut d = socks(Some(("alice", "pw")), "h");
    d.request().unwrap();
    assert_eq!(
        d.feed(&[5, 0]).unwrap().send.as_deref(),
        Some(&b"\x05\x01\x00\x03\x01h\x01\xbb"[..])
    );
}

#[test]
fn socks5_replies_as_a_table() {
    let ok_v4: &[u8] = &[5, 0, 0, 1, 1, 2, 3, 4, 0, 80];
    let ok_name: &[u8] = b"\x05\x00\x00\x03\x04host\x00\x50";
    let ok_v6: &[u8] = &[
        5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
    ];
    type Want = Result<&'static [u8], ProxyError>;
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let refused = |code| Err(ProxyError::SocksRefused(SocksReply::from_code(code)));
    let cases: Vec<(&str, Creds, Vec<u8>, Want)> = vec![
        ("v4 bound address", None, cat(&[5, 0], ok_v4), Ok(b"")),
        ("name bound address", None, cat(&[5, 0], ok_name), Ok(b"")),
        ("v6 bound address", None, cat(&[5, 0], ok_v6), Ok(b"")),
        (
            "pipelined",
            None,
            cat(&cat(&[5, 0], ok_v4), b"SSH-2.0-x\r\n"),
            Ok(b"SSH-2.0-x\r\n"),
        ),
        (
            "with auth",
            Some(("u", "p")),
            cat(&[5, 2, 1, 0], ok_v4),
            Ok(b""),
        ),
        (
            "auth reply version 5",
            Some(("u", "p")),
            cat(&[5, 2, 5, 0], ok_v4),
            Ok(b""),
        ),
        (
            "refused by the target",
            None,
            vec![5, 0, 5, 5, 0, 1],
            refused(5),
        ),
        ("host unreachable", None, vec![5, 0, 5, 4], refused(4)),
        ("ruleset", None, vec![5, 0, 5, 2], refused(2)),
        ("unknown code", None, vec![5, 0, 5, 0x42], refused(0x42)),
        (
            "no acceptable method",
            None,
            vec![5, 0xff],
            Err(ProxyError::AuthRequired {
                detail: "SOCKS5: no authentication is not accepted".into(),
            }),
        ),
        (
            "bad credentials",
            Some(("u", "p")),
            vec![5, 2, 1, 1],
            Err(ProxyError::AuthFailed {
                detail: "SOCKS5 username/password status 1".into(),
            }),
        ),
        (
            "method not offered",
            None,
            vec![5, 2],
            Err(ProxyError::Malformed(
                "the proxy chose authentication method 2, which was not offered".into(),
            )),
        ),
        (
            "SOCKS4 answer",
            None,
            vec![0, 0x5a],
            Err(ProxyError::Malformed(
                "not a SOCKS5 proxy (version byte 0)".into(),
            )),
        ),
        (
            "HTTP answer",
            None,
            b"HTTP/1.1 400 Bad".to_vec(),
            Err(ProxyError::Malformed(
                "not a SOCKS5 proxy (version byte 72)".into(),
            )),
        ),
        (
            "bad address type",
            None,
            vec![5, 0, 5, 0, 0, 9],
            Err(ProxyError::Malformed("CONNECT reply address type 9".into())),
        ),
    ];
    for (name, creds, reply, want) in cases {
        let got = outcome(|| socks(creds, "example.com"), &reply);
        match (got, want) {
            (Ok((_, Some(rest))), Ok(w)) => assert_eq!(&rest[..], w, "{name}"),
            (Err(e), Err(w)) => assert_eq!(e, w, "{name}"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn errors_read_in_plain_words() {
    let cases = [
        (ProxyError::Refused { status: "403 Forbidden".into() }, "the proxy refused: 403 Forbidden"),
        (
            ProxyError::SocksRefused(SocksReply::HostUnreachable),
            "the proxy could not open the tunnel: host unreachable (SOCKS5 reply 4)",
        ),
        (
            ProxyError::SocksRefused(SocksReply::ConnectionRefused),
            "the proxy could not open the tunnel: connection refused by the target (SOCKS5 reply 5)",
        ),
        (ProxyError::Closed, "the proxy closed the connection before the tunnel was open"),
        (ProxyError::LineTooLong, "the proxy's reply has a line longer than 8192 bytes"),
        (ProxyError::TimedOut(std::time::Duration::from_millis(1500)), "the proxy did not open the tunnel within 1.5 s"),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
    }
    for code in 0..=255u8 {
        let r = SocksReply::from_code(code);
        assert_eq!(r.code(), code, "round trip");
        assert!(!r.to_string().is_empty());
    }
}
