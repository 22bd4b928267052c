//! Host names and literals: IPv6 `::1` (bare and bracketed), `localhost`, and, in a child
//! process with its own mount namespace and /etc/hosts, a dual-stack name (raced, falling back
//! to the family that listens) and an IPv6-only name.

use crate::client;
use std::net::SocketAddr;

use crate::client::start;
use axon::Control;
use bytes::Bytes;
use kamaelia::internet::{ConnectError, Connected, Family, HowDied};
use kamaelia::{TcpClient, TcpError};
use kamaelia_test::bounded;
use kamaelia_test::servers::sink_server_on;
use kamaelia_test::sha256;

/// Sends a message to a sink on `bind` through a client for `host`; returns the peer the
/// client reported.
async fn send_via(bind: &str, host: &str, family: Family) -> SocketAddr {
    let (sink, report) = sink_server_on(bind).await;
    let c = start(TcpClient::new(host, sink.addr.port()).family(family)).await;
    c.input.send(Bytes::from_static(b"named")).await.unwrap();
    c.control.send(Control::producer_finished()).await.unwrap();
    let (s, _) = c.finish().await;
    assert!(matches!(s.how(), HowDied::Finished), "{s:?}");
    let report = report.await.unwrap();
    assert_eq!(report.sha256, sha256(b"named"));
    let connected = s.notices::<Connected>();
    assert_eq!(connected.len(), 1, "{s:?}");
    connected[0].peer
}

#[tokio::test]
async fn ipv6_literals_bare_and_bracketed() {
    bounded(async {
        for host in ["::1", "[::1]"] {
            let peer = send_via("[::1]:0", host, Family::Any).await;
            assert_eq!(peer.ip().to_string(), "::1");
        }
    })
    .await;
}

#[tokio::test]
async fn localhost_resolves_to_loopback() {
    bounded(async {
        let peer = send_via("127.0.0.1:0", "localhost", Family::Any).await;
        assert!(peer.ip().is_loopback(), "{peer}");
    })
    .await;
}

const HOSTS: &str = "127.0.0.1 localhost\n::1 dual.test v6only.test\n127.0.0.1 dual.test\n";

/// Runs this binary's `names_child` with /etc/hosts replaced, in a private mount namespace.
#[tokio::test]
async fn dual_stack_and_ipv6_only_names() {
    if !kamaelia_test::unshare_works(&["-m"]) {
        eprintln!("SKIPPED: `unshare -m` is not available here (needs root)");
        return;
    }
    let hosts = kamaelia_test::pki::TempFile::new("hosts", HOSTS.as_bytes());
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "mount --bind '{}' /etc/hosts && exec '{}' --exact '{}' --ignored --nocapture",
        hosts.path().display(),
        exe.display(),
        client::test_name(module_path!(), "names_child"),
    );
    client::child_test_passes(
        "unshare",
        &["-m".as_ref(), "sh".as_ref(), "-c".as_ref(), script.as_ref()],
    )
    .await;
}

/// The child half of the test above; does nothing unless run by it.
#[tokio::test]
#[ignore = "run by dual_stack_and_ipv6_only_names with its own /etc/hosts"]
async fn names_child() {
    if std::env::var_os("KAMAELIA_CLIENT_CHILD").is_none() {
        return;
    }
    bounded(async {
        // Both families resolve; only one listens each time: Happy Eyeballs finds it.
        let peer = send_via("127.0.0.1:0", "dual.test", Family::Any).await;
        assert_eq!(peer.ip().to_string(), "127.0.0.1");
        let peer = send_via("[::1]:0", "dual.test", Family::Any).await;
        assert_eq!(peer.ip().to_string(), "::1");
        let peer = send_via("[::1]:0", "v6only.test", Family::Any).await;
        assert_eq!(peer.ip().to_string(), "::1");
        let peer = send_via("[::1]:0", "dual.test", Family::V6).await;
        assert_eq!(peer.ip().to_string(), "::1");

        // An IPv6-only name asked for over IPv4 has no address.
        let c = start(TcpClient::new("v6only.test", 9).family(Family::V4)).await;
        let (s, _) = c.finish().await;
        let e = s.errors::<TcpError>();
        assert!(
            matches!(
                e.as_slice(),
                [TcpError::Connect(ConnectError::NoAddresses {
                    family: Family::V4,
                    ..
                })]
            ),
            "{s:?}"
        );
    })
    .await;
}
