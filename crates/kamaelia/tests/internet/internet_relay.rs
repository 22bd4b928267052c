//! Relay inside a TcpServer: bytes and half-closes passed end to end, a refusing target, a
//! client that resets; the one RelayOpened and RelayClosed per connection. Targets and clients
//! are tokio sockets written here.

use std::time::Duration;

use axon::{link_refs, Component, Control, Inbox, Scheduler};
use kamaelia::internet::{OnFinish, Relay, RelayClosed, RelayEnding, RelayOpened, TcpServer};
use kamaelia::TcpClient;
use kamaelia_test::{bounded, random_bytes, sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A forwarding server to `target`, its reports, and the scheduler running it.
async fn forward(
    target: std::net::SocketAddr,
) -> (std::net::SocketAddr, Inbox<Control>, Scheduler) {
    forward_with(target, None).await
}

/// The same, terminating TLS with `tls` if given.
async fn forward_with(
    target: std::net::SocketAddr,
    tls: Option<kamaelia::internet::ServerTls>,
) -> (std::net::SocketAddr, Inbox<Control>, Scheduler) {
    let reports = Inbox::<Control>::standalone("reports", 64);
    let r = reports.boxref();
    let server = TcpServer::bind("127.0.0.1:0", move |info| {
        let relay: Component = Relay::new(TcpClient::new("127.0.0.1", target.port()))
            .client(info.peer)
            .into();
        link_refs(&relay.boxref("report").unwrap(), &r).unwrap();
        relay
    })
    .unwrap()
    .on_finish(OnFinish::HalfClose);
    let server = match tls {
        Some(t) => server.tls(&t).unwrap(),
        None => server,
    };
    let addr = server.local_addr();
    let sched = Scheduler::new();
    let s2 = sched.clone();
    tokio::spawn(async move {
        s2.run(async {
            server.activate();
        })
        .await
    });
    (addr, reports, sched)
}

/// Waits for the relay's RelayClosed, checking that RelayOpened came first if `opened`.
async fn closed(reports: &Inbox<Control>, opened: bool) -> RelayClosed {
    let mut seen_open = false;
    loop {
        let c = reports.recv().await;
        if c.payload::<RelayOpened>().is_some() {
            seen_open = true;
        }
        if let Some(closed) = c.payload::<RelayClosed>() {
            assert_eq!(seen_open, opened, "RelayOpened before RelayClosed");
            return closed.clone();
        }
    }
}

#[tokio::test]
async fn a_relay_passes_bytes_and_the_half_close_each_way() {
    bounded(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        let answer = random_bytes(1, 500_000);
        let a2 = answer.clone();
        let t = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // Reads to the client's FIN, then answers: the FIN came through after the bytes.
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&a2).await.unwrap();
            got
        });
        let (addr, reports, sched) = forward(target).await;
        let data = random_bytes(2, 2_000_000);
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&data).await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(sha256(&back), sha256(&answer));
        assert_eq!(sha256(&t.await.unwrap()), sha256(&data));
        let closed = closed(&reports, true).await;
        assert!(matches!(closed.ending, RelayEnding::Closed), "{closed}");
        assert_eq!(closed.to_target, data.len() as u64);
        assert_eq!(closed.to_client, answer.len() as u64);
        sched.shutdown_all();
    })
    .await;
}

#[tokio::test]
async fn a_refusing_target_closes_the_client_and_is_reported() {
    bounded(async {
        let refused = kamaelia_test::net::closed_port("127.0.0.1");
        let (addr, reports, sched) = forward(refused).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got).await;
        assert!(got.is_empty());
        let closed = closed(&reports, false).await;
        assert!(
            matches!(closed.ending, RelayEnding::TargetFailed(_)),
            "{closed}"
        );
        assert!(closed.to_string().contains("refused"), "{closed}");
        sched.shutdown_all();
    })
    .await;
}

#[tokio::test]
async fn a_client_reset_closes_the_target() {
    bounded(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        let t = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            // Ends (EOF or error) once the relay has closed the target's side.
            let _ = s.read_to_end(&mut got).await;
            got.len()
        });
        let (addr, reports, sched) = forward(target).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"before the reset").await.unwrap();
        // Wait until the relay is up before resetting.
        let first = loop {
            let r = reports.recv().await;
            if r.payload::<RelayOpened>().is_some() {
                break r;
            }
        };
        drop(first);
        #[allow(deprecated)] // a reset is the point: SO_LINGER 0
        c.set_linger(Some(Duration::ZERO)).unwrap();
        drop(c);
        let read = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
        assert!(read <= 16);
        let closed = closed(&reports, false).await;
        assert!(
            matches!(closed.ending, RelayEnding::ClientFailed(_)),
            "{closed}"
        );
        sched.shutdown_all();
    })
    .await;
}

/// The `forward` example relays to a target written here and ends cleanly on Ctrl-C.
#[tokio::test]
async fn the_forward_example_relays_and_ends_on_ctrl_c() {
    use std::io::BufRead as _;
    let Some(bin) = crate::server::example_bin("forward") else {
        return;
    };
    bounded(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        });
        let port = target.port().to_string();
        let (mut child, addr) = tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new(bin)
                .args(["0", "127.0.0.1", &port])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            let addr: std::net::SocketAddr = line
                .trim()
                .strip_prefix("listening on ")
                .unwrap()
                .parse()
                .unwrap();
            (crate::server::ChildGuard(child), addr)
        })
        .await
        .unwrap();
        let data = random_bytes(7, 200_000);
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (mut r, mut w) = c.split();
        let d2 = data.clone();
        let write = async move {
            w.write_all(&d2).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let (_, n) = tokio::join!(write, r.read_to_end(&mut got));
        n.unwrap();
        assert_eq!(sha256(&got), sha256(&data));
        let pid = child.0.id().to_string();
        let status = tokio::task::spawn_blocking(move || {
            let kill = std::process::Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap();
            assert!(kill.success());
            child.0.wait().unwrap()
        })
        .await
        .unwrap();
        assert!(status.success(), "{status}");
    })
    .await;
}

/// A client that fails at once (plaintext into a TLS port) may end before its relay has wired
/// itself: the relay must still stop the target and report, not fail on the closed link.
#[tokio::test]
async fn a_client_that_fails_at_once_is_reported() {
    bounded(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = s.read_to_end(&mut Vec::new()).await;
                });
            }
        });
        let pki = kamaelia_test::pki::TestPki::new();
        let (addr, reports, sched) = forward_with(target, Some(pki.server_tls())).await;
        for _ in 0..10 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
            let _ = c.read_to_end(&mut Vec::new()).await;
            let closed = loop {
                let r = reports.recv().await;
                if let Some(closed) = r.payload::<RelayClosed>() {
                    break closed.clone();
                }
            };
            assert!(
                matches!(closed.ending, RelayEnding::ClientFailed(_)),
                "{closed}"
            );
        }
        sched.shutdown_all();
    })
    .await;
}
