//! A TcpClient's rare boxes (docs/semantics.md §1): `control`, `makessl` and `sslready` are
//! made when first used, so an idle client that nothing links them to holds none of their
//! stores; linked late, after the connection is up, each works as if it had been there from
//! the start. The client runs as a group member here, as figure 7's clients and the
//! `kamaelia` program's sessions do (a client running as a task of its own makes `control`
//! and `makessl` when it first waits on them).

use crate::client::trusting;
use axon::{link_refs, Control, Group, Handle, Inbox, Outbox, RunReport, Scheduler};
use bytes::Bytes;
use kamaelia::internet::Connected;
use kamaelia::{MakeSsl, SslReady, TcpClient};
use kamaelia_test::bounded;
use kamaelia_test::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A client run as a member of a group, with only its `inbox`, `outbox` and `signal` linked
/// (to the test's boxes), once connected.
struct Grouped {
    handle: Handle,
    input: Outbox<Bytes>,
    out: Inbox<Bytes>,
    signal: Inbox<Control>,
    done: JoinHandle<RunReport>,
}

async fn grouped(client: TcpClient) -> Grouped {
    started(client, true).await
}

/// The client run as [`grouped`] says, in a group of its own (`in_group`) or activated on its
/// own.
async fn started(client: TcpClient, in_group: bool) -> Grouped {
    let c: axon::Component = client.into();
    let input = Outbox::<Bytes>::standalone("feed");
    let out = Inbox::<Bytes>::standalone("out", 64);
    let signal = Inbox::<Control>::standalone("signal", 64);
    link_refs(&input.boxref(), &c.boxref("inbox").unwrap()).unwrap();
    link_refs(&c.boxref("outbox").unwrap(), &out.boxref()).unwrap();
    link_refs(&c.boxref("signal").unwrap(), &signal.boxref()).unwrap();
    let (tx, rx) = oneshot::channel();
    let done = tokio::spawn(async move {
        Scheduler::new()
            .run(async move {
                let h = if in_group {
                    Group::new().with(c).activate().into_iter().next().unwrap()
                } else {
                    c.activate()
                };
                let _ = tx.send(h);
            })
            .await
    });
    let handle = rx.await.unwrap();
    loop {
        if signal.recv().await.payload::<Connected>().is_some() {
            break;
        }
    }
    Grouped {
        handle,
        input,
        out,
        signal,
        done,
    }
}

/// Sends `ping` and waits for it to come back: the client's loop has then waited on
/// `control` and `makessl` (it polls them whenever it runs).
async fn ping(g: &Grouped) {
    g.input.send(Bytes::from_static(b"ping")).await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 4 {
        echoed.extend_from_slice(&g.out.recv().await);
    }
    assert_eq!(echoed, b"ping");
}

/// Echoes 4 bytes over `s`.
async fn echo4(s: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    s.write_all(&buf).await.unwrap();
}

/// A server that echoes 4 bytes, then reads until its client closes; its port.
async fn echo4_then_drain() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        echo4(&mut s).await;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    port
}

/// Waits for the final message on `signal`, then for the run to end without failure.
async fn ended(g: Grouped) {
    loop {
        if g.signal.recv().await.is_final() {
            break;
        }
    }
    let report = g.done.await.unwrap();
    assert!(report.is_ok(), "{:?}", report.failures);
}

/// §1 (rare boxes): an idle client connection holds stores for its `inbox`, `outbox` and
/// `signal` only; its table still lists all six boxes. Fails on main's code, where every
/// declared box is a store (6). Then `control`, linked only now, shuts it down. Since
/// session 14 (§2: a linked outbox keeps no store) its `outbox` and `signal`, linked, hold
/// none either: 1 store, 2 once `control` is linked (3 and 4 before).
#[tokio::test]
async fn an_idle_client_s_rare_boxes_hold_no_store_and_control_linked_late_shuts_it_down() {
    bounded(async {
        let port = echo4_then_drain().await;
        let g = grouped(TcpClient::new("127.0.0.1", port)).await;
        // The client has waited on `control` and `makessl`: still not made.
        ping(&g).await;
        assert_eq!(
            g.handle.made_boxes(),
            1,
            "inbox alone: outbox and signal are linked"
        );
        let control = Outbox::<Control>::standalone("control feed");
        link_refs(&control.boxref(), &g.handle.boxref("control").unwrap()).unwrap();
        assert_eq!(g.handle.made_boxes(), 2, "control, made by its link");
        control.send(Control::shutdown()).await.unwrap();
        ended(g).await;
    })
    .await;
}

/// §1 (rare boxes): a client activated on its own runs as a group of one, so its waits on
/// `control` and `makessl` make no store either (as its own task it made both at its first
/// wait: 5 stores, and the map's entry). Found by the review of the rare boxes. Its linked
/// `outbox` and `signal` hold no store since session 14 (1, not 3).
#[tokio::test]
async fn a_client_activated_on_its_own_makes_no_rare_box_while_idle() {
    bounded(async {
        let port = echo4_then_drain().await;
        let g = started(TcpClient::new("127.0.0.1", port), false).await;
        ping(&g).await;
        assert_eq!(
            g.handle.made_boxes(),
            1,
            "inbox alone: outbox and signal are linked"
        );
        assert!(g.handle.stop(), "its control, made for the stop");
        ended(g).await;
    })
    .await;
}

/// §1, §9: `makessl` linked after the connection is up still switches it to TLS, and the
/// `SslReady` the connection sent on its `sslready` (made then, linked to nothing) waits there
/// and is handed on when `sslready` is linked later.
#[tokio::test]
async fn makessl_linked_late_switches_to_tls_and_sslready_linked_later_hands_on_its_message() {
    bounded(async {
        let pki = TestPki::new();
        let config = pki.server_config();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Echoes 4 bytes in plaintext, then, once it has said the handshake is done, 5 under
        // TLS; then closes.
        let (up_tx, up) = oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            echo4(&mut s).await;
            let mut tls = tokio_rustls::TlsAcceptor::from(config)
                .accept(s)
                .await
                .unwrap();
            let _ = up_tx.send(());
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).await.unwrap();
            tls.write_all(&buf).await.unwrap();
            tls.shutdown().await.unwrap();
        });
        let g = grouped(TcpClient::new("127.0.0.1", port).tls(trusting(&pki))).await;
        ping(&g).await;
        // The inbox (its linked outbox and signal keep none since session 14: 3 before).
        assert_eq!(g.handle.made_boxes(), 1);
        let makessl = Outbox::<MakeSsl>::standalone("makessl feed");
        link_refs(&makessl.boxref(), &g.handle.boxref("makessl").unwrap()).unwrap();
        makessl.send(MakeSsl::new()).await.unwrap();
        // Data sent now could be taken before the makessl (two boxes: no order between them)
        // and go out in plaintext: sent once the handshake is done.
        up.await.unwrap();
        g.input.send(Bytes::from_static(b"hello")).await.unwrap();
        let mut echoed = Vec::new();
        while echoed.len() < 5 {
            echoed.extend_from_slice(&g.out.recv().await);
        }
        assert_eq!(echoed, b"hello");
        // The handshake is done, so `sslready` was made and holds its message.
        let sslready = Inbox::<SslReady>::standalone("sslready", 4);
        link_refs(&g.handle.boxref("sslready").unwrap(), &sslready.boxref()).unwrap();
        let SslReady { info, .. } = sslready.try_recv().expect("SslReady kept until linked");
        assert_eq!(info.version, "TLSv1.3");
        server.await.unwrap();
        // The server's close ends only its direction (§9): stopped, through `control`, made
        // for the stop.
        assert!(g.handle.stop());
        ended(g).await;
    })
    .await;
}
