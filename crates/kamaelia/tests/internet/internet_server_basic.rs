//! TcpServer over plain TCP on 127.0.0.1 and ::1: binding, the Listening notice, bind errors,
//! echo integrity, what the protocol factory learns, and IPv6.

use std::io;
use std::sync::{Arc, Mutex};

use crate::server::{echo_through, RunningServer};
use kamaelia::internet::{ConnectionInfo, EchoProtocol, TcpError, TcpServer};
use kamaelia_test::bounded;
use kamaelia_test::{random_bytes, sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn binding_port_zero_reports_the_bound_address_and_a_listening_notice() {
    bounded(async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_ne!(addr.port(), 0, "port 0 must be replaced by the bound port");
        // Listening before activation: the kernel already queues connections.
        let early = TcpStream::connect(addr).await.unwrap();
        // `start` checks that the first message on signal is Listening(addr).
        let running = RunningServer::start(server).await;
        let mut early = early;
        early.write_all(b"early").await.unwrap();
        let mut back = [0u8; 5];
        early.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"early");
        let (report, rest) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert!(rest.last().is_some_and(|c| c.is_shutdown()), "{rest:?}");
    })
    .await;
}

#[tokio::test]
async fn binding_an_address_in_use_is_a_bind_error() {
    bounded(async {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let err = TcpServer::bind(&addr, |_| EchoProtocol::new())
            .expect_err("binding a port another socket listens on must fail");
        let TcpError::Bind { addr: what, source } = &err else {
            panic!("expected TcpError::Bind, got {err:?}");
        };
        assert_eq!(what, &addr);
        assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
        let text = err.to_string();
        assert!(text.starts_with(&format!("cannot listen on {addr}: ")), "{text}");
        assert!(std::error::Error::source(&err).is_some());

        // The same against a TcpServer that holds the port (both set SO_REUSEADDR).
        let first = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let again = first.local_addr().to_string();
        let err = TcpServer::bind(&again, |_| EchoProtocol::new())
            .expect_err("two servers on one address");
        assert!(
            matches!(&err, TcpError::Bind { source, .. } if source.kind() == io::ErrorKind::AddrInUse),
            "{err:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_malformed_address_is_a_bind_error_naming_it() {
    for bad in [
        "not an address",
        "127.0.0.1",
        "127.0.0.1:99999",
        "[::1:80",
        "",
    ] {
        let err = TcpServer::bind(bad, |_| EchoProtocol::new())
            .err()
            .unwrap_or_else(|| panic!("{bad:?} was accepted"));
        let TcpError::Bind { addr, source } = &err else {
            panic!("{bad:?}: expected TcpError::Bind, got {err:?}");
        };
        assert_eq!(addr, bad);
        assert_eq!(source.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("cannot listen on {bad}: ")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn echo_returns_exactly_what_each_client_sent() {
    bounded(async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let running = RunningServer::start(server).await;
        // Three clients at once, a few MiB each, written in random chunk sizes.
        let clients = (0..3u64).map(|i| {
            let addr = running.addr;
            tokio::spawn(async move {
                let data = random_bytes(i, 3 * 1024 * 1024 + i as usize * 7919);
                let stream = TcpStream::connect(addr).await.unwrap();
                let got = echo_through(stream, &data, 100 + i, 70_000).await;
                assert_eq!(got.len(), data.len(), "client {i}");
                assert_eq!(sha256(&got), sha256(&data), "client {i}");
            })
        });
        for c in clients.collect::<Vec<_>>() {
            c.await.unwrap();
        }
        // Each connection, and its protocol, ended when its client closed.
        running.wait_live(1).await;
        let (report, rest) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 1 + 3 * 2);
        assert_eq!(rest.len(), 1, "no errors expected: {rest:?}");
        assert!(rest[0].is_shutdown());
    })
    .await;
}

#[tokio::test]
async fn the_protocol_factory_learns_the_peer_and_local_addresses() {
    bounded(async {
        let seen: Arc<Mutex<Vec<ConnectionInfo>>> = Arc::default();
        let record = Arc::clone(&seen);
        let server = TcpServer::bind("127.0.0.1:0", move |info| {
            record.lock().unwrap().push(info.clone());
            EchoProtocol::new()
        })
        .unwrap();
        let running = RunningServer::start(server).await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut c = TcpStream::connect(running.addr).await.unwrap();
            // The echo proves the server has accepted it and asked the factory.
            c.write_all(b"?").await.unwrap();
            c.read_exact(&mut [0u8; 1]).await.unwrap();
            clients.push(c);
        }
        let mut expected: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        let mut got: Vec<_> = seen.lock().unwrap().iter().map(|i| i.peer).collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected);
        assert!(seen.lock().unwrap().iter().all(|i| i.local == running.addr));
        drop(clients);
        let (report, _) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}

#[tokio::test]
async fn serves_on_ipv6_loopback() {
    bounded(async {
        let peers: Arc<Mutex<Vec<ConnectionInfo>>> = Arc::default();
        let record = Arc::clone(&peers);
        let server = TcpServer::bind("[::1]:0", move |info| {
            record.lock().unwrap().push(info.clone());
            EchoProtocol::new()
        })
        .unwrap();
        let addr = server.local_addr();
        assert!(addr.is_ipv6() && addr.ip().is_loopback(), "{addr}");
        let running = RunningServer::start(server).await;
        let data = random_bytes(6, 256 * 1024);
        let stream = TcpStream::connect(addr).await.unwrap();
        let client = stream.local_addr().unwrap();
        let got = echo_through(stream, &data, 6, 10_000).await;
        assert_eq!(sha256(&got), sha256(&data));
        assert_eq!(peers.lock().unwrap()[0].peer, client);
        assert!(peers.lock().unwrap()[0].peer.is_ipv6());
        let (report, _) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}
