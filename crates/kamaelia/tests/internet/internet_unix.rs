//! Unix domain sockets on the byte-stream CSA: UnixClient against a tokio listener (half-close
//! both ways), SingleServer and TcpServer on a socket path, the stale-socket rule, and
//! SingleServer's one connection over TCP.

use std::path::PathBuf;
use std::time::Duration;

use axon::{link_refs, Component, Control, Inbox, Outbox, Scheduler, CONTROL, INBOX, OUTBOX};
use bytes::Bytes;
use kamaelia::internet::{EchoProtocol, OnFinish, SingleServer, TcpError, TcpServer, UnixClient};
use kamaelia_test::{bounded, random_bytes, sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn socket_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kamaelia-unix-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("s.sock")
}

/// Feeds `data` then ProducerFinished into `c`, collects its outbox until its final message.
async fn drive(c: Component, data: Vec<u8>) -> Vec<u8> {
    let feed = Outbox::<Bytes>::standalone("feed");
    let stop = Outbox::<Control>::standalone("stop");
    let got = Inbox::<Bytes>::standalone("got", 64);
    let signal = Inbox::<Control>::standalone("signal", 64);
    link_refs(&feed.boxref(), &c.boxref(INBOX).unwrap()).unwrap();
    link_refs(&stop.boxref(), &c.boxref(CONTROL).unwrap()).unwrap();
    link_refs(&c.boxref(OUTBOX).unwrap(), &got.boxref()).unwrap();
    link_refs(&c.boxref(axon::SIGNAL).unwrap(), &signal.boxref()).unwrap();
    let sched = Scheduler::new();
    let s2 = sched.clone();
    let run = tokio::spawn(async move {
        s2.run(async {
            c.activate();
        })
        .await
    });
    for chunk in data.chunks(64 * 1024) {
        feed.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    stop.send(Control::producer_finished()).await.unwrap();
    let mut out = Vec::new();
    loop {
        tokio::select! {
            b = got.recv() => out.extend_from_slice(&b),
            c = signal.recv() => if c.is_final() { break },
        }
    }
    while let Some(b) = got.try_recv() {
        out.extend_from_slice(&b);
    }
    let report = run.await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failures);
    out
}

#[tokio::test]
async fn a_unix_client_sends_and_receives_byte_exact_across_half_closes() {
    bounded(async {
        let path = socket_path("client");
        let l = tokio::net::UnixListener::bind(&path).unwrap();
        let answer = random_bytes(3, 300_000);
        let a2 = answer.clone();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            s.write_all(&a2).await.unwrap();
            got
        });
        let data = random_bytes(4, 1_000_000);
        let client = UnixClient::new(&path).on_finish(OnFinish::HalfClose);
        let back = drive(client.into(), data.clone()).await;
        assert_eq!(sha256(&server.await.unwrap()), sha256(&data));
        assert_eq!(sha256(&back), sha256(&answer));
    })
    .await;
}

#[tokio::test]
async fn a_unix_client_to_no_socket_says_so() {
    bounded(async {
        let path = socket_path("none");
        let c: Component = UnixClient::new(&path).into();
        let signal = Inbox::<Control>::standalone("signal", 16);
        link_refs(&c.boxref(axon::SIGNAL).unwrap(), &signal.boxref()).unwrap();
        let sched = Scheduler::new();
        let run = sched.run(async {
            c.activate();
        });
        let err = async {
            loop {
                if let Some(e) = signal.recv().await.error_ref::<TcpError>() {
                    break e.to_string();
                }
            }
        };
        let (_, text) = tokio::join!(run, err);
        assert!(text.contains("cannot connect to the Unix socket"), "{text}");
    })
    .await;
}

#[tokio::test]
async fn a_single_server_on_a_stale_socket_replaces_it_and_serves_one_client() {
    bounded(async {
        let path = socket_path("single");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let server = SingleServer::bind_unix(&path)
            .unwrap()
            .on_finish(OnFinish::HalfClose);
        let p2 = path.clone();
        let client = tokio::spawn(async move {
            let mut s = tokio::net::UnixStream::connect(&p2).await.unwrap();
            s.write_all(b"to the single server").await.unwrap();
            s.shutdown().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let got = drive(server.into(), b"to the client".to_vec()).await;
        assert_eq!(got, b"to the single server");
        assert_eq!(client.await.unwrap(), b"to the client");
        assert!(!path.exists(), "the socket file is removed");
    })
    .await;
}

#[tokio::test]
async fn binding_a_unix_path_refuses_a_live_socket_and_a_plain_file() {
    bounded(async {
        let path = socket_path("live");
        let _live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = SingleServer::bind_unix(&path).expect_err("a live socket");
        assert!(
            err.to_string().contains("another server is listening"),
            "{err}"
        );
        let file = socket_path("file");
        std::fs::write(&file, b"data").unwrap();
        let err = TcpServer::bind_unix(&file, |_| EchoProtocol::new()).expect_err("a file");
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"data");
    })
    .await;
}

#[tokio::test]
async fn a_tcp_server_echoes_over_a_unix_socket() {
    bounded(async {
        let path = socket_path("server");
        let server = TcpServer::bind_unix(&path, |_| EchoProtocol::new()).unwrap();
        let sched = Scheduler::new();
        let s2 = sched.clone();
        tokio::spawn(async move {
            s2.run(async {
                server.activate();
            })
            .await
        });
        let data = random_bytes(5, 1_000_000);
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        let (mut r, mut w) = s.split();
        let d2 = data.clone();
        let write = async move {
            w.write_all(&d2).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let read = r.read_to_end(&mut got);
        let (_, n) = tokio::join!(write, read);
        n.unwrap();
        assert_eq!(sha256(&got), sha256(&data));
        sched.shutdown_all();
    })
    .await;
}

#[tokio::test]
async fn a_single_server_accepts_one_tcp_connection_and_then_refuses() {
    bounded(async {
        let server = SingleServer::bind("127.0.0.1:0")
            .unwrap()
            .on_finish(OnFinish::HalfClose);
        let addr = server.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"one").await.unwrap();
            // Once ours is accepted nobody listens any more.
            loop {
                // A connection made before the listener closed is reset when it does.
                match tokio::net::TcpStream::connect(addr).await {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            s.shutdown().await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
        });
        let got = drive(server.into(), Vec::new()).await;
        assert_eq!(got, b"one");
        client.await.unwrap();
    })
    .await;
}
