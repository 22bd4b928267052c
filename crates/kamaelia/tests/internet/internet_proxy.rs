//! ProxyClient over real sockets on 127.0.0.1: through a working HTTP CONNECT or SOCKS5 proxy
//! written for the tests (`kamaelia_test::proxy::TunnelProxy`), and against proxies scripted
//! here that refuse, close early, flood or pipeline. The handshakes themselves are tested
//! without sockets in the library (`internet::proxy::dialogue::tests`).

use crate::client::{self, Running, Signals};
use bytes::Bytes;
use kamaelia::internet::proxy::{Credentials, ProxyError, SocksReply};
use kamaelia::internet::{Proxy, ProxyClient, ProxyKind, TcpClient, TunnelOpen};
use kamaelia::MakeSsl;
use kamaelia_test::pki::TestPki;
use kamaelia_test::proxy::{base64_for_tests, TunnelKind, TunnelProxy};
use kamaelia_test::{bounded, servers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KINDS: [(TunnelKind, ProxyKind); 2] = [
    (TunnelKind::Http, ProxyKind::HttpConnect),
    (TunnelKind::Socks5, ProxyKind::Socks5),
];

fn proxy_at(kind: ProxyKind, port: u16, creds: Option<(&str, &str)>) -> Proxy {
    let p = Proxy::new(kind, "127.0.0.1", port);
    match creds {
        Some((u, w)) => p.with_credentials(Credentials::new(u, w)),
        None => p,
    }
}

/// A ProxyClient through `proxy` to `host:port`, around a TcpClient to the proxy, running.
async fn start(proxy: Proxy, host: &str, port: u16) -> Running {
    let conn = TcpClient::new(proxy.host().to_string(), proxy.port()).wait_for_server_close(true);
    let c = ProxyClient::new(proxy, host, port).around(conn).unwrap();
    client::wire(c, client::OUT_CAPACITY).run().await
}

/// Sends `input`, ends it, and collects everything until the connection ends.
async fn exchange(r: Running, input: &'static [u8]) -> (Signals, Vec<u8>) {
    r.input.send(Bytes::from_static(input)).await.unwrap();
    r.control
        .send(axon::Control::producer_finished())
        .await
        .unwrap();
    r.finish_collect().await
}

fn the_error(s: &Signals) -> ProxyError {
    let errors = s.errors::<ProxyError>();
    assert_eq!(errors.len(), 1, "one ProxyError: {:?}", s.before);
    errors[0].clone()
}

/// Reads a request from the client (an HTTP head, or SOCKS5's 3-byte greeting) and returns it.
async fn read_request(s: &mut TcpStream, kind: ProxyKind) -> Vec<u8> {
    let mut got = Vec::new();
    let done = |g: &Vec<u8>| match kind {
        ProxyKind::HttpConnect => g.ends_with(b"\r\n\r\n"),
        _ => g.len() >= 3,
    };
    while !done(&got) {
        let mut b = [0u8; 1];
        if s.read(&mut b).await.unwrap() == 0 {
            break;
        }
        got.push(b[0]);
    }
    got
}

#[tokio::test]
async fn a_tunnel_carries_bytes_both_ways_and_ends_with_the_half_close() {
    bounded(async {
        let echo = servers::echo_server().await;
        for (tk, pk) in KINDS {
            let proxy = TunnelProxy::start(tk, None).await;
            let r = start(
                proxy_at(pk, proxy.addr().port(), None),
                "localhost",
                echo.addr.port(),
            )
            .await;
            let (s, got) = exchange(r, b"through the proxy\n").await;
            assert_eq!(got, b"through the proxy\n", "{pk:?}");
            assert_eq!(s.error_count(), 0, "{pk:?}: {:?}", s.before);
            let open = s.notices::<TunnelOpen>();
            assert_eq!(open.len(), 1, "{pk:?}");
            assert_eq!(open[0].target, format!("localhost:{}", echo.addr.port()));
            // The proxy was asked for the name, to resolve it itself.
            let seen = proxy.seen();
            assert_eq!(seen[0].target, format!("localhost:{}", echo.addr.port()));
            if pk == ProxyKind::Socks5 {
                let mut want = vec![5, 1, 0, 5, 1, 0, 3, 9];
                want.extend_from_slice(b"localhost");
                want.extend_from_slice(&echo.addr.port().to_be_bytes());
                assert_eq!(
                    seen[0].handshake, want,
                    "greeting, then CONNECT with ATYP 3"
                );
            }
            // Transferred counts the tunnel's bytes, not the handshake's.
            let t = s.notices::<kamaelia::internet::Transferred>();
            assert_eq!(
                t.last().map(|t| (t.sent, t.received)),
                Some((18, 18)),
                "{pk:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn socks5_sends_ip_literals_as_addresses() {
    bounded(async {
        let echo = servers::echo_server().await;
        let proxy = TunnelProxy::start(TunnelKind::Socks5, None).await;
        let port = echo.addr.port();
        let r = start(
            proxy_at(ProxyKind::Socks5, proxy.addr().port(), None),
            "127.0.0.1",
            port,
        )
        .await;
        let (_, got) = exchange(r, b"v4").await;
        assert_eq!(got, b"v4");
        let mut want = vec![5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1];
        want.extend_from_slice(&port.to_be_bytes());
        assert_eq!(proxy.seen()[0].handshake, want);
    })
    .await;
}

#[tokio::test]
async fn credentials_go_as_basic_auth_and_rfc_1929() {
    bounded(async {
        let echo = servers::echo_server().await;
        for (tk, pk) in KINDS {
            let proxy = TunnelProxy::start(tk, Some(("alice", "s3cret:x"))).await;
            let p = proxy_at(pk, proxy.addr().port(), Some(("alice", "s3cret:x")));
            let r = start(p, "localhost", echo.addr.port()).await;
            let (s, got) = exchange(r, b"authenticated").await;
            assert_eq!(got, b"authenticated", "{pk:?}: {:?}", s.before);
            let hs = &proxy.seen()[0].handshake;
            match pk {
                ProxyKind::HttpConnect => {
                    let header = format!(
                        "\r\nProxy-Authorization: Basic {}\r\n",
                        base64_for_tests(b"alice:s3cret:x")
                    );
                    let head = String::from_utf8_lossy(hs);
                    assert!(head.contains(&header), "{head}");
                }
                _ => {
                    assert_eq!(&hs[..4], [5, 2, 0, 2], "offers none and username/password");
                    assert_eq!(&hs[4..20], b"\x01\x05alice\x08s3cret:x", "RFC 1929");
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_reported() {
    bounded(async {
        let echo = servers::echo_server().await;
        for (tk, pk) in KINDS {
            let proxy = TunnelProxy::start(tk, Some(("alice", "right"))).await;
            let r = start(
                proxy_at(pk, proxy.addr().port(), None),
                "localhost",
                echo.addr.port(),
            )
            .await;
            let (s, got) = exchange(r, b"never sent").await;
            assert!(got.is_empty());
            let e = the_error(&s);
            assert!(matches!(e, ProxyError::AuthRequired { .. }), "{pk:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with("the proxy requires authentication"),
                "{e}"
            );
            let p = proxy_at(pk, proxy.addr().port(), Some(("alice", "wrong")));
            let r = start(p, "localhost", echo.addr.port()).await;
            let (s, _) = exchange(r, b"never sent").await;
            let e = the_error(&s);
            assert!(matches!(e, ProxyError::AuthFailed { .. }), "{pk:?}: {e}");
            // Nothing of the user's reached the proxy.
            let hs = String::from_utf8_lossy(&proxy.seen()[1].handshake).into_owned();
            assert!(!hs.contains("never sent"), "{hs}");
        }
    })
    .await;
}

#[tokio::test]
async fn refusals_carry_the_status_line_or_the_socks_reply_in_words() {
    bounded(async {
        let (port, peer) = servers::accept_one(|mut s| async move {
            read_request(&mut s, ProxyKind::HttpConnect).await;
            s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
            rest
        })
        .await;
        let r = start(
            proxy_at(ProxyKind::HttpConnect, port, None),
            "example.com",
            443,
        )
        .await;
        let (s, _) = exchange(r, b"not for the proxy").await;
        let e = the_error(&s);
        assert_eq!(e.to_string(), "the proxy refused: 403 Forbidden");
        assert!(
            (&mut { peer }.0).await.unwrap().is_empty(),
            "the user's bytes never went out"
        );

        // SOCKS5 0x05: the working proxy's target port is closed.
        let closed = kamaelia_test::net::closed_port("127.0.0.1");
        let proxy = TunnelProxy::start(TunnelKind::Socks5, None).await;
        let r = start(
            proxy_at(ProxyKind::Socks5, proxy.addr().port(), None),
            "127.0.0.1",
            closed.port(),
        )
        .await;
        let (s, _) = exchange(r, b"x").await;
        let e = the_error(&s);
        assert_eq!(e, ProxyError::SocksRefused(SocksReply::ConnectionRefused));
        assert_eq!(
            e.to_string(),
            "the proxy could not open the tunnel: connection refused by the target (SOCKS5 reply 5)"
        );
    })
    .await;
}

#[tokio::test]
async fn a_proxy_closing_early_is_reported() {
    bounded(async {
        for (_, pk) in KINDS {
            let (port, _peer) = servers::accept_one(move |mut s| async move {
                read_request(&mut s, pk).await;
                // Half a reply, then gone.
                let _ = s.write_all(b"HTTP/1.1 2").await;
            })
            .await;
            let r = start(proxy_at(pk, port, None), "example.com", 443).await;
            let (s, _) = exchange(r, b"x").await;
            let e = the_error(&s);
            // SOCKS5 sees 'H' as a version byte: malformed; HTTP waits for the rest: closed.
            match pk {
                ProxyKind::HttpConnect => assert_eq!(e, ProxyError::Closed),
                _ => assert!(matches!(e, ProxyError::Malformed(_)), "{e}"),
            }
            let (port, _peer) = servers::accept_one(move |mut s| async move {
                read_request(&mut s, pk).await;
            })
            .await;
            let r = start(proxy_at(pk, port, None), "example.com", 443).await;
            let (s, _) = exchange(r, b"x").await;
            assert_eq!(the_error(&s), ProxyError::Closed, "{pk:?}");
            assert_eq!(
                ProxyError::Closed.to_string(),
                "the proxy closed the connection before the tunnel was open"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_reply_flood_without_a_newline_is_cut_off() {
    bounded(async {
        let (port, peer) = servers::accept_one(|mut s| async move {
            read_request(&mut s, ProxyKind::HttpConnect).await;
            let chunk = vec![b'A'; 64 * 1024];
            let mut written = 0usize;
            // Until the client hangs up: it must, long before 64 MiB.
            while written < 64 << 20 {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
                written += chunk.len();
            }
            written
        })
        .await;
        let r = start(
            proxy_at(ProxyKind::HttpConnect, port, None),
            "example.com",
            443,
        )
        .await;
        let (s, got) = exchange(r, b"x").await;
        assert!(got.is_empty());
        assert_eq!(the_error(&s), ProxyError::LineTooLong);
        assert!(
            (&mut { peer }.0).await.unwrap() < 64 << 20,
            "the client hung up"
        );
    })
    .await;
}

#[tokio::test]
async fn bytes_pipelined_after_the_reply_are_kept_in_order() {
    bounded(async {
        for (_, pk) in KINDS {
            let (port, peer) = servers::accept_one(move |mut s| async move {
                read_request(&mut s, pk).await;
                let reply: &[u8] = match pk {
                    ProxyKind::HttpConnect => b"HTTP/1.1 200 OK\r\n\r\n220 first",
                    _ => {
                        s.write_all(&[5, 0]).await.unwrap();
                        // CONNECT for "example.com": 4 + 1 + 11 + 2 bytes.
                        let mut req = [0u8; 18];
                        s.read_exact(&mut req).await.unwrap();
                        b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50220 first"
                    }
                };
                // The reply and the target's first bytes in one write, then more.
                s.write_all(reply).await.unwrap();
                s.write_all(b" second").await.unwrap();
                let mut got = Vec::new();
                s.read_to_end(&mut got).await.unwrap();
                s.write_all(b" third").await.unwrap();
                got
            })
            .await;
            let r = start(proxy_at(pk, port, None), "example.com", 25).await;
            let (s, got) = exchange(r, b"EHLO me\r\n").await;
            assert_eq!(s.error_count(), 0, "{pk:?}: {:?}", s.before);
            assert_eq!(got, b"220 first second third", "{pk:?}");
            assert_eq!((&mut { peer }.0).await.unwrap(), b"EHLO me\r\n", "{pk:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn tls_through_the_tunnel_verifies_the_targets_name_not_the_proxys() {
    bounded(async {
        // The proxy is reached as 127.0.0.1; the target is "localhost".
        let good = TestPki::with_names(&["localhost"]);
        let bad = TestPki::with_names(&["127.0.0.1"]);
        for (tk, pk) in KINDS {
            for (pki, ok) in [(&good, true), (&bad, false)] {
                let target = servers::tls_echo_server(pki.server_config()).await;
                let proxy = TunnelProxy::start(tk, None).await;
                let p = proxy_at(pk, proxy.addr().port(), None);
                let pc = ProxyClient::new(p.clone(), "localhost", target.addr.port());
                let settings = pc.tls_for_target(client::trusting(pki)).unwrap();
                let conn = TcpClient::new("127.0.0.1", p.port())
                    .tls(settings)
                    .wait_for_server_close(true);
                let c = pc.around(conn).unwrap();
                let r = client::wire(c, client::OUT_CAPACITY).run().await;
                // Asked for before the tunnel is open: held until it is.
                r.makessl.send(MakeSsl::new()).await.unwrap();
                let (s, got) = exchange(r, b"secret").await;
                if ok {
                    assert_eq!(s.error_count(), 0, "{pk:?}: {:?}", s.before);
                    assert_eq!(got, b"secret", "{pk:?}");
                } else {
                    assert!(got.is_empty());
                    let text = format!("{:?}", s.how());
                    assert!(
                        text.contains("NotValidForName") || text.to_lowercase().contains("name"),
                        "{pk:?}: {text}"
                    );
                }
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_silent_proxy_times_out() {
    bounded(async {
        let (port, _peer) = servers::accept_one(|mut s| async move {
            read_request(&mut s, ProxyKind::HttpConnect).await;
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        })
        .await;
        let limit = std::time::Duration::from_millis(300);
        let conn = TcpClient::new("127.0.0.1", port);
        let c = ProxyClient::new(proxy_at(ProxyKind::HttpConnect, port, None), "h", 1)
            .timeout(limit)
            .around(conn)
            .unwrap();
        let r = client::wire(c, client::OUT_CAPACITY).run().await;
        let (s, _) = exchange(r, b"x").await;
        assert_eq!(the_error(&s), ProxyError::TimedOut(limit));
    })
    .await;
}

#[tokio::test]
async fn a_shutdown_mid_handshake_is_not_reported_as_the_proxy_closing() {
    bounded(async {
        let (port, _peer) = servers::accept_one(|mut s| async move {
            read_request(&mut s, ProxyKind::HttpConnect).await;
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        })
        .await;
        let r = start(proxy_at(ProxyKind::HttpConnect, port, None), "h", 1).await;
        r.wait_connected().await;
        r.control.send(axon::Control::shutdown()).await.unwrap();
        let (s, _) = r.finish_collect().await;
        assert!(s.errors::<ProxyError>().is_empty(), "{:?}", s.before);
        assert!(s.last.is_shutdown(), "{:?}", s.last);
    })
    .await;
}

/// docs/semantics.md (byte bounds): what the connection delivers and what the user sends queue
/// in ProxyClient's boxes up to DEFAULT_LIMIT_BYTES, not up to the boxes' message count.
#[test]
fn the_component_queues_at_most_its_byte_limit() {
    use kamaelia::internet::DEFAULT_LIMIT_BYTES;
    let c: axon::Component =
        ProxyClient::new(proxy_at(ProxyKind::HttpConnect, 1, None), "h", 1).into();
    for boxname in ["fromserver", "inbox"] {
        let feed = axon::Outbox::<Bytes>::standalone("feed");
        axon::link_refs(&feed.boxref(), &c.boxref(boxname).unwrap()).unwrap();
        let chunk = Bytes::from(vec![0u8; 16 * 1024]);
        let mut admitted = 0;
        while feed.try_send(chunk.clone()).is_ok() {
            admitted += chunk.len();
            assert!(admitted <= 64 * chunk.len(), "{boxname}: no bound at all");
        }
        assert!(
            admitted <= DEFAULT_LIMIT_BYTES + chunk.len(),
            "{boxname}: {admitted} bytes queued"
        );
    }
}
