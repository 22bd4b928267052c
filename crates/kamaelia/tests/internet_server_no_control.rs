//! A TcpServer's protocol need not have a `control` inbox (the server cannot tell such a
//! protocol that its connection ended; it ends by itself). Its connection still ends cleanly:
//! the socket is closed, the server's count of open connections comes back down (with
//! `max_connections(1)` the next connection is served) and no component is left running.

use std::time::Duration;

use axon::{Component, Control};
use bytes::Bytes;
use kamaelia::internet::TcpServer;
use kamaelia_test::with_timeout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "support/server.rs"]
mod server;
use server::RunningServer;

/// Answers one message, reversed, and ends: no `control` inbox. Its final message
/// (ProducerFinished on its `signal`, which the server links to the connection's `control`:
/// docs/semantics.md §5) closes the connection once the answer is written.
fn answer_once() -> Component {
    let mut b = Component::build("AnswerOnce");
    let inbox = b.inbox::<Bytes>("inbox", "the client's bytes");
    let outbox = b.outbox::<Bytes>("outbox", "the answer");
    let signal = b.signal();
    b.main(move |_| async move {
        let mut got = inbox.recv().await.to_vec();
        got.reverse();
        outbox.send(Bytes::from(got)).await?;
        let _ = signal.send(Control::producer_finished()).await;
        Ok(())
    })
}

/// Says hello and ends: no `control` and no `inbox` (nothing the client sends is read).
fn greeter() -> Component {
    let mut b = Component::build("Greeter");
    let outbox = b.outbox::<Bytes>("outbox", "the greeting");
    let signal = b.signal();
    b.main(move |_| async move {
        outbox.send(Bytes::from_static(b"hello\n")).await?;
        let _ = signal.send(Control::producer_finished()).await;
        Ok(())
    })
}

/// One client: sends `ping`, reads to the end (the server's close).
async fn ask(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    got
}

/// Serves `protocol` with one connection at most, three clients one after another, each
/// answered `want` and closed, with only the server left running after each.
async fn serve_three(protocol: fn() -> Component, want: &[u8]) {
    assert!(
        protocol().boxref(axon::CONTROL).is_err(),
        "the protocol under test declares no control inbox"
    );
    let server = TcpServer::bind("127.0.0.1:0", move |_| protocol())
        .unwrap()
        .max_connections(1);
    let running = RunningServer::start(server).await;
    for round in 0..3 {
        // Read to the end: the server closed the socket. With one connection at most, a
        // connection still counted as open would leave this one unserved (and the test would
        // time out).
        assert_eq!(ask(running.addr).await, want, "round {round}");
        // Only the server is left: the connection's adapter and protocol have ended.
        tokio::time::timeout(Duration::from_secs(10), running.wait_live(1))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "round {round}: {} components still live",
                    running.sched.live()
                )
            });
    }
    let (report, _) = running.stop().await;
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn a_protocol_without_control_ends_its_connection_cleanly() {
    with_timeout(Duration::from_secs(30), serve_three(answer_once, b"gnip")).await;
}

#[tokio::test]
async fn a_protocol_without_control_or_inbox_ends_its_connection_cleanly() {
    with_timeout(Duration::from_secs(30), serve_three(greeter, b"hello\n")).await;
}
