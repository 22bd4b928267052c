//! No task or file descriptor outlives a TcpClient: after many connect/transfer/close cycles,
//! refusals, shutdowns and TLS sessions, this process's open fds return to their baseline and
//! the runtime's live task count to where it started. One test alone in its binary, so other
//! tests' sockets do not disturb the count.

#[path = "support/client.rs"]
mod client;

use std::time::Duration;

use axon::Control;
use bytes::Bytes;
use client::{open_fds, start, trusting, until};
use kamaelia::{MakeSsl, TcpClient};
use kamaelia_test::net::closed_port;
use kamaelia_test::pki::TestPki;
use kamaelia_test::servers::echo_server;
use kamaelia_test::with_timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_cycles_leak_no_fd_and_no_task() {
    with_timeout(Duration::from_secs(30), async {
        let pki = TestPki::new();
        let echo = echo_server().await;
        let (tls_addr, _handshakes, tls_server) =
            client::tls_echo_notifying(pki.server_config()).await;
        let refused = closed_port("127.0.0.1");
        // Warm up: the first client creates the selector service, the runtime its threads.
        let warm = start(TcpClient::new("127.0.0.1", refused.port())).await;
        warm.finish().await;
        let metrics = tokio::runtime::Handle::current().metrics();
        let fds = open_fds();
        let tasks = metrics.num_alive_tasks();

        for i in 0..100 {
            match i % 4 {
                0 => {
                    let c = start(TcpClient::new("127.0.0.1", echo.addr.port())).await;
                    c.input.send(Bytes::from_static(b"ping")).await.unwrap();
                    assert_eq!(c.out.recv().await, "ping");
                    c.control.send(Control::producer_finished()).await.unwrap();
                    c.finish().await;
                }
                1 => {
                    start(TcpClient::new("127.0.0.1", refused.port()))
                        .await
                        .finish()
                        .await;
                }
                2 => {
                    let c = start(TcpClient::new("127.0.0.1", echo.addr.port())).await;
                    c.input.send(Bytes::from_static(b"x")).await.unwrap();
                    c.control.send(Control::shutdown()).await.unwrap();
                    c.finish().await;
                }
                _ => {
                    let c = start(TcpClient::new("127.0.0.1", tls_addr.port()).tls(trusting(&pki)))
                        .await;
                    c.makessl.send(MakeSsl::new()).await.unwrap();
                    // Sent after the switch, so it goes out encrypted.
                    let _ = c.sslready.recv().await;
                    c.input.send(Bytes::from_static(b"tls")).await.unwrap();
                    assert_eq!(c.out.recv().await, "tls");
                    c.control.send(Control::producer_finished()).await.unwrap();
                    c.finish().await;
                }
            }
        }
        // The servers' ends close when they see ours close; wait for the kernel to agree.
        let settled = tokio::time::timeout(
            Duration::from_secs(5),
            until(|| open_fds() <= fds && metrics.num_alive_tasks() <= tasks),
        )
        .await;
        assert!(
            settled.is_ok(),
            "fds {} (baseline {fds}), tasks {} (baseline {tasks})",
            open_fds(),
            metrics.num_alive_tasks()
        );
        drop(tls_server);
    })
    .await;
}
