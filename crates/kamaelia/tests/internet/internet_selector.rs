//! The "selector" service (Kamaelia's getSelectorServices, here a tokio runtime handle) decides
//! which runtime drives the sockets: a program that installs its own gets its TcpClients'
//! sockets on it.

use std::time::Duration;

use axon::{Control, Inbox, Outbox, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{Selector, TcpError};
use kamaelia::TcpClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client whose scheduler names a dedicated I/O runtime as its selector works through it, and
/// its socket really lives there: once that runtime is shut down, the connection fails (its
/// reactor is gone) and the failure arrives on `signal` as a typed error, then one final message.
#[test]
fn sockets_live_on_the_runtime_the_selector_service_names() {
    selector_runtime_taken_away(true);
}

/// The same with nothing more to send: a connection waiting only for its socket to be readable
/// learns that the reactor is gone from the wake-up the reactor's shutdown gives it, and fails
/// the same way, rather than waiting for ever.
#[test]
fn an_idle_connection_fails_when_its_selector_runtime_goes() {
    selector_runtime_taken_away(false);
}

/// Echoes one message through a client whose selector is its own runtime, takes that runtime
/// away (then sends once more if `send_after`), and expects one typed error and the final
/// message on `signal`.
fn selector_runtime_taken_away(send_after: bool) {
    let io_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let main_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    main_runtime.block_on(async move {
        tokio::time::timeout(Duration::from_secs(10), async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });

            let sched = Scheduler::new();
            Selector::install(sched.services(), io_runtime.handle().clone()).unwrap();
            let client: axon::Component = TcpClient::new("127.0.0.1", port).into();
            let feed = Outbox::<Bytes>::standalone("feed");
            let out = Inbox::<Bytes>::standalone("out", 16);
            let signal = Inbox::<Control>::standalone("signal", 16);
            axon::link_refs(&feed.boxref(), &client.boxref("inbox").unwrap()).unwrap();
            axon::link_refs(&client.boxref("outbox").unwrap(), &out.boxref()).unwrap();
            axon::link_refs(&client.boxref("signal").unwrap(), &signal.boxref()).unwrap();
            let running = tokio::spawn({
                let sched = sched.clone();
                async move {
                    sched
                        .run(async {
                            client.activate();
                        })
                        .await
                }
            });

            feed.send(Bytes::from_static(b"through the selector"))
                .await
                .unwrap();
            assert_eq!(out.recv().await, "through the selector");

            // Take the selector's runtime away: the socket registered with it fails.
            io_runtime.shutdown_background();
            if send_after {
                let _ = feed.send(Bytes::from_static(b"after")).await;
            }
            let mut errors = Vec::new();
            let last = loop {
                let c = signal.recv().await;
                if c.is_final() {
                    break c;
                }
                if let Some(e) = c.error_ref::<TcpError>() {
                    errors.push(e.clone());
                }
            };
            assert!(last.is_producer_finished(), "{last:?}");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                matches!(errors[0], TcpError::Io { .. } | TcpError::Reset { .. }),
                "{:?}",
                errors[0]
            );
            let report = running.await.unwrap();
            assert!(report.is_ok(), "{:?}", report.failures);
        })
        .await
        .expect("test timed out");
    });
}
