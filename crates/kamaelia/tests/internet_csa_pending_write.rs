//! The connection takes a message from `inbox` and writes it in the same pass (the driver's
//! turn, `csa/driver.rs`); here the socket's write returns Pending, over real sockets with
//! small buffers and a peer that does not read yet: a message taken while the socket is full
//! must wait in the connection's queue, not be lost, written twice or overtaken, and once the
//! peer reads, every byte arrives, in order.

use std::time::Duration;

use axon::{link_refs, Control, Inbox, Outbox, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{ConnectedSocketAdapter, OnFinish, Transferred};
use kamaelia_test::with_timeout;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

/// Messages of varied sizes (so writes end part-way through them), 2 MiB in all: several
/// times what the socket buffers and the connection's bounded queues (256 KiB each) can hold.
fn messages() -> Vec<Bytes> {
    let mut offset = 0_usize;
    (0..200)
        .map(|i| {
            let len = 1 + (i * 7919) % 20_000;
            let m: Vec<u8> = (offset..offset + len).map(|b| (b % 251) as u8).collect();
            offset += len;
            Bytes::from(m)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_taken_while_the_socket_is_full_arrives_in_order() {
    with_timeout(Duration::from_secs(60), async {
        // Small buffers both sides: the peer's receive buffer (set before listening, so the
        // accepted socket has it) and our send buffer.
        let listener = TcpSocket::new_v4().unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        listener.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.listen(1).unwrap();
        let ours = TcpSocket::new_v4().unwrap();
        ours.set_send_buffer_size(4096).unwrap();
        let (ours, accepted) = tokio::join!(ours.connect(addr), listener.accept());
        let (ours, (mut peer, _)) = (ours.unwrap(), accepted.unwrap());

        let csa = ConnectedSocketAdapter::new(ours, addr, None, OnFinish::HalfClose);
        let feed = Outbox::<Bytes>::standalone("feed");
        let stop = Outbox::<Control>::standalone("stop");
        let signal = Inbox::<Control>::standalone("signal", 64);
        link_refs(&feed.boxref(), &csa.boxref("inbox").unwrap()).unwrap();
        link_refs(&stop.boxref(), &csa.boxref("control").unwrap()).unwrap();
        link_refs(&csa.boxref("signal").unwrap(), &signal.boxref()).unwrap();

        let all = messages();
        let want: Vec<u8> = all.iter().flat_map(|m| m.iter().copied()).collect();
        let sched = Scheduler::new();
        let s = sched.clone();
        let running = tokio::spawn(async move { s.run(async { csa.activate() }).await });
        // Told the first time the connection's queue is full (the feeder held back).
        let (held, held_back) = tokio::sync::oneshot::channel::<usize>();
        let feeder = tokio::spawn(async move {
            let mut held = Some(held);
            for (i, m) in all.into_iter().enumerate() {
                match feed.try_send(m) {
                    Ok(()) => {}
                    Err(e) => {
                        if let Some(h) = held.take() {
                            let _ = h.send(i);
                        }
                        feed.send(e.into_inner()).await.unwrap();
                    }
                }
            }
            stop.send(Control::producer_finished()).await.unwrap();
        });

        // Nobody reads yet: the socket fills, its writes return Pending, and the feeder is held
        // back by the connection's bounded queues: it says so at the first message that finds
        // them full, which must come before the end, with messages taken.
        let before = held_back.await.expect(
            "all 200 messages (2 MiB) were taken with nobody reading: the socket never filled",
        );
        assert!(before > 0, "the connection took nothing");

        // Now the peer reads: everything arrives once, in order, then the half-close.
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        drop(peer);
        feeder.await.unwrap();
        assert_eq!(
            got.len(),
            want.len(),
            "bytes received (fed {before} before reading)"
        );
        assert!(got == want, "the bytes arrived out of order or changed");
        loop {
            let c = signal.recv().await;
            assert!(!matches!(c, Control::Error(_)), "{c:?}");
            if let Some(t) = c.payload::<Transferred>() {
                assert_eq!((t.sent, t.unsent), (want.len() as u64, 0));
                break;
            }
        }
        let report = running.await.unwrap();
        assert!(report.is_ok(), "{report:?}");
    })
    .await;
}
