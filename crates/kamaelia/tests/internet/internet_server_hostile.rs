//! A TcpServer against peers that misbehave (issue 8 §2): quiet connections are timed out, a
//! STARTTLS connection cannot stay in plaintext for ever, and a client that resets while its
//! echo is pending ends its connection normally, with no component failure (no payload kept
//! in the scheduler's failure record). Peers are plain tokio sockets.

use std::time::{Duration, Instant};

use crate::server::{errors_of, RunningServer};
use kamaelia::internet::{
    DiscardProtocol, EchoProtocol, TcpError, TcpServer, DEFAULT_PLAINTEXT_TIMEOUT,
};
use kamaelia_test::pki::TestPki;
use kamaelia_test::{with_timeout, AbortOnDrop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Waits for the server to close `s` (EOF or reset), without sending anything.
async fn closed_by_server(mut s: TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn a_starttls_connection_that_stays_in_plaintext_is_timed_out() {
    assert_eq!(DEFAULT_PLAINTEXT_TIMEOUT, Duration::from_secs(60));
    with_timeout(Duration::from_secs(10), async {
        let pki = TestPki::new();
        let after = Duration::from_millis(200);
        let server = TcpServer::bind("127.0.0.1:0", |_| DiscardProtocol::new())
            .unwrap()
            .starttls(&pki.server_tls())
            .unwrap()
            .plaintext_timeout(Some(after));
        let running = RunningServer::start(server).await;
        let started = Instant::now();
        let s = TcpStream::connect(running.addr).await.unwrap();
        closed_by_server(s).await;
        assert!(started.elapsed() >= after);
        let c = running.next_signal().await;
        match c.error_ref::<TcpError>() {
            Some(TcpError::IdleTimeout { after: a, .. }) => assert_eq!(*a, after),
            other => panic!("{other:?} in {c}"),
        }
        let (report, _) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}

#[tokio::test]
async fn idle_timeout_closes_a_quiet_connection_and_spares_a_busy_one() {
    with_timeout(Duration::from_secs(10), async {
        let after = Duration::from_millis(300);
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new())
            .unwrap()
            .idle_timeout(Some(after));
        let running = RunningServer::start(server).await;
        // Busy: a line every 50 ms for well over the timeout, each echoed.
        let mut busy = TcpStream::connect(running.addr).await.unwrap();
        let quiet = TcpStream::connect(running.addr).await.unwrap();
        let quiet_closed = AbortOnDrop(tokio::spawn(closed_by_server(quiet)));
        for _ in 0..16 {
            busy.write_all(b"ping\n").await.unwrap();
            let mut back = [0u8; 5];
            busy.read_exact(&mut back).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The quiet one was closed long ago; the busy one is still served.
        assert!(quiet_closed.0.is_finished());
        busy.write_all(b"last\n").await.unwrap();
        let mut back = [0u8; 5];
        busy.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"last\n");
        drop(busy);
        let (report, rest) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
        let timeouts = errors_of::<TcpError>(&rest)
            .into_iter()
            .filter(|e| matches!(e, TcpError::IdleTimeout { .. }))
            .count();
        assert_eq!(timeouts, 1, "{rest:?}");
    })
    .await;
}

/// The client floods, never reads, and resets: EchoProtocol's send into the ended connection
/// fails, which is the normal end of a connection that went away, not a component failure
/// (before, the run's report held one failure per such client, each keeping the chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resets_while_its_echo_is_pending_is_a_normal_end() {
    with_timeout(Duration::from_secs(30), async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let running = RunningServer::start(server).await;
        for _ in 0..3 {
            let s = TcpStream::connect(running.addr).await.unwrap();
            let chunk = vec![1u8; 64 * 1024];
            // Write until the echo has backed up into every buffer on the way.
            let (rd, mut wr) = s.into_split();
            let mut stuck = 0;
            while stuck < 3 {
                match tokio::time::timeout(Duration::from_millis(100), wr.write_all(&chunk)).await {
                    Ok(r) => {
                        r.unwrap();
                        stuck = 0;
                    }
                    Err(_) => stuck += 1,
                }
            }
            let s = rd.reunite(wr).unwrap();
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            drop(s);
            // The connection's CSA and protocol end; only the server is left.
            running.wait_live(1).await;
        }
        let (report, rest) = running.stop().await;
        assert!(report.is_ok(), "failures: {:?}", report.failures);
        assert!(
            errors_of::<TcpError>(&rest)
                .iter()
                .all(|e| matches!(e, TcpError::Reset { .. } | TcpError::BrokenPipe { .. })),
            "{rest:?}"
        );
    })
    .await;
}

/// Connects, has one byte echoed, then resets (SO_LINGER 0): the server's connection ends
/// with an error on the server's `signal`.
async fn echo_once_then_reset(addr: std::net::SocketAddr) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"x").await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// A reader of the server's `signal` that has stopped reading (room for one message, never
/// read) holds up only the reports, not the server: connections that fail one after another
/// fill `signal`, and a new client is still accepted and echoed. At the end every error is
/// there, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_signal_is_not_read_keeps_serving() {
    with_timeout(Duration::from_secs(30), async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let running = RunningServer::start_with_signal_room(server, 1).await;
        for _ in 0..4 {
            echo_once_then_reset(running.addr).await;
            running.wait_live(1).await;
        }
        let mut s = TcpStream::connect(running.addr).await.unwrap();
        s.write_all(b"still serving").await.unwrap();
        let mut b = [0u8; 13];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"still serving");
        drop(s);
        running.wait_live(1).await;
        let (report, rest) = running.stop().await;
        assert!(report.is_ok(), "failures: {:?}", report.failures);
        let errors = errors_of::<TcpError>(&rest);
        assert!(
            errors.len() >= 2,
            "the errors past signal's room are kept: {rest:?}"
        );
    })
    .await;
}
