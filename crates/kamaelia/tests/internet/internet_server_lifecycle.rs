//! TcpServer's shutdown and failures: ShutdownMicroprocess (`Handle::stop`) closes the listener
//! and every connection and is the one final message on `signal` (docs/semantics.md §5, §6); a
//! client's reset and a panicking protocol (reported as §6 says) end only their own connection;
//! a `signal` nobody reads never stalls the server.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::server::{echo_through, errors_of, RunningServer};
use axon::{Component, ComponentFailure, Control, FailureKind};
use bytes::Bytes;
use kamaelia::internet::{EchoProtocol, TcpError, TcpServer};
use kamaelia_test::bounded;
use kamaelia_test::{random_bytes, sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Connects and waits for an echo of one message, so the server has surely accepted it.
async fn connected_echo_client(addr: std::net::SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut back = [0u8; 5];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    c
}

/// Reads until the connection ends; the server closing is EOF or, with data unread on its
/// side, a reset. Anything read before is returned.
async fn read_until_closed(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match c.read_to_end(&mut got).await {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
    got
}

#[tokio::test]
async fn shutdown_closes_the_listener_and_every_connection() {
    bounded(async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let running = RunningServer::start(server).await;
        let addr = running.addr;
        let mut clients = Vec::new();
        for _ in 0..5 {
            clients.push(connected_echo_client(addr).await);
        }
        // One client is half-way through sending when the server stops.
        clients[0].write_all(&[7u8; 1000]).await.unwrap();
        assert_eq!(running.sched.live(), 1 + 5 * 2);

        let (report, rest) = running.stop().await;
        // The run returned, so the server, every connection and every protocol have ended.
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 1 + 5 * 2);
        let last = rest.last().expect("a final message on signal");
        assert!(last.is_shutdown(), "final message: {last}");
        assert!(
            rest[..rest.len() - 1].iter().all(|c| !c.is_final()),
            "one final message only: {rest:?}"
        );
        for c in &mut clients {
            let _ = read_until_closed(c).await;
        }
        let refused = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    })
    .await;
}

#[tokio::test]
async fn producer_finished_on_control_also_shuts_the_server_down() {
    bounded(async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let running = RunningServer::start(server).await;
        let mut client = connected_echo_client(running.addr).await;
        let control = axon::Outbox::<Control>::standalone("to server");
        axon::link_refs(
            &control.boxref(),
            &running.handle.boxref("control").unwrap(),
        )
        .unwrap();
        control.send(Control::producer_finished()).await.unwrap();
        let mut running = running;
        let (report, rest) = running.finish().await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert!(
            rest.last().is_some_and(|c| c.is_producer_finished()),
            "{rest:?}"
        );
        let _ = read_until_closed(&mut client).await;
    })
    .await;
}

#[tokio::test]
async fn a_client_reset_is_reported_and_the_server_serves_others() {
    bounded(async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let running = RunningServer::start(server).await;
        let resetting = connected_echo_client(running.addr).await;
        let its_addr = resetting.local_addr().unwrap();
        // SO_LINGER 0: closing sends RST instead of FIN.
        resetting.set_zero_linger().unwrap();
        drop(resetting);

        let msg = running.next_signal().await;
        match msg.error_ref::<TcpError>() {
            Some(TcpError::Reset { peer }) => assert_eq!(*peer, its_addr),
            _ => panic!("expected a reset from {its_addr}, got {msg}"),
        }
        // Its connection and protocol are gone; the server is the only component left.
        running.wait_live(1).await;

        let data = random_bytes(1, 200_000);
        let stream = TcpStream::connect(running.addr).await.unwrap();
        let got = echo_through(stream, &data, 1, 5000).await;
        assert_eq!(sha256(&got), sha256(&data));

        let (report, rest) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(rest.len(), 1, "{rest:?}");
    })
    .await;
}

#[tokio::test]
async fn a_reset_with_data_in_flight_ends_only_that_connection() {
    bounded(async {
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let running = RunningServer::start(server).await;
        // Sends and reads nothing back, so the echo is on its way (in the server's boxes or
        // socket buffers, or ours) when the client resets.
        let mut flooding = TcpStream::connect(running.addr).await.unwrap();
        flooding
            .write_all(&random_bytes(2, 256 * 1024))
            .await
            .unwrap();
        flooding.set_zero_linger().unwrap();
        drop(flooding);

        let msg = running.next_signal().await;
        assert!(
            matches!(
                msg.error_ref::<TcpError>(),
                Some(TcpError::Reset { .. } | TcpError::BrokenPipe { .. })
            ),
            "expected a reset or broken pipe, got {msg}"
        );
        running.wait_live(1).await;
        let mut other = connected_echo_client(running.addr).await;
        other.shutdown().await.unwrap();
        assert!(read_until_closed(&mut other).await.is_empty());

        let (report, _) = running.stop().await;
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}

/// A protocol that panics on the first data it receives.
fn exploding_protocol() -> Component {
    let mut b = Component::build("ExplodingProtocol");
    let inbox = b.inbox::<Bytes>("inbox", "data from the connection");
    b.control();
    b.outbox::<Bytes>("outbox", "data to the connection");
    b.signal();
    b.main(move |_| async move {
        let _ = inbox.recv().await;
        panic!("protocol exploded");
    })
}

#[tokio::test]
async fn a_panicking_protocol_is_reported_and_only_its_connection_closes() {
    bounded(async {
        // The factory gives the connection from `doomed_addr` a protocol that panics.
        let doomed_addr: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let marked = Arc::clone(&doomed_addr);
        let server = TcpServer::bind("127.0.0.1:0", move |info| {
            if *marked.lock().unwrap() == Some(info.peer) {
                exploding_protocol()
            } else {
                EchoProtocol::new()
            }
        })
        .unwrap();
        let running = RunningServer::start(server).await;
        // Connected (and echoing) before the panic; it must carry on through it.
        let mut survivor = connected_echo_client(running.addr).await;

        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        *doomed_addr.lock().unwrap() = Some(socket.local_addr().unwrap());
        let mut doomed = socket.connect(running.addr).await.unwrap();
        doomed.write_all(b"boom").await.unwrap();
        let msg = running.next_signal().await;
        let failure = msg
            .error_ref::<ComponentFailure>()
            .unwrap_or_else(|| panic!("expected the protocol's failure, got {msg}"));
        assert!(
            matches!(&failure.kind, FailureKind::Panicked(m) if m == "protocol exploded"),
            "{failure}"
        );
        assert!(failure.component.starts_with("ExplodingProtocol"));
        // Its connection closes: the client reads the end of the stream.
        assert!(read_until_closed(&mut doomed).await.is_empty());
        running.wait_live(1 + 2).await;

        survivor.write_all(b" again").await.unwrap();
        let mut back = [0u8; 6];
        survivor.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b" again");
        let _new_one = connected_echo_client(running.addr).await;

        let (report, rest) = running.stop().await;
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(matches!(report.failures[0].kind, FailureKind::Panicked(_)));
        assert!(errors_of::<TcpError>(&rest).is_empty(), "{rest:?}");
        assert!(rest.last().is_some_and(|c| c.is_shutdown()));
    })
    .await;
}

#[tokio::test]
async fn a_server_whose_signal_nobody_reads_keeps_serving_and_stops() {
    bounded(async {
        // More connection errors than an unlinked outbox holds (its capacity, 64).
        const RESETS: usize = 100;
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let addr = server.local_addr();
        let sched = axon::Scheduler::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let run = tokio::spawn({
            let sched = sched.clone();
            async move {
                sched
                    .run(async move {
                        let _ = tx.send(server.activate());
                    })
                    .await
            }
        });
        let handle = rx.await.unwrap();
        for _ in 0..RESETS {
            let c = connected_echo_client(addr).await;
            c.set_zero_linger().unwrap();
        }
        // Every reset connection ends, with its protocol.
        sched.wait_live(1).await;
        let mut c = connected_echo_client(addr).await;
        c.shutdown().await.unwrap();
        assert!(read_until_closed(&mut c).await.is_empty());
        assert!(handle.stop());
        let report = run.await.unwrap();
        assert!(report.is_ok(), "{:?}", report.failures);
    })
    .await;
}
