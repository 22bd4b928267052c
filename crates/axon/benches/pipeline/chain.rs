//! Figure 6's two sides, written once: a chain of pass-through components and the same chain
//! of bounded tokio mpsc channels. Used by `cargo bench -p axon --bench pipeline` (both
//! variants) and by the benchmark suite's figure 6 (`crates/kamaelia-bench/src/pipeline.rs`,
//! the natural variant inside a `kamaelia::Pipeline`), which include this file.
//!
//! * natural: the component a user writes first: `select!` on `inbox.recv()` and
//!   `control.recv()`, one `send` per message, ending on the final control message (after
//!   forwarding what is still queued). The mpsc stage is `while let Some(m) = rx.recv()`.
//! * batched: the same with `recv_many(.., BATCH)`; the mpsc stage uses its `recv_many` too.
//!
//! Both sides use `axon::DEFAULT_CAPACITY` for every box and channel.

use std::time::{Duration, Instant};

use axon::{Component, Control, DEFAULT_CAPACITY};
use tokio::sync::mpsc;

/// How many messages a batched stage takes at once.
pub(crate) const BATCH: usize = 64;

/// A message the benchmark can make many of.
pub(crate) trait Msg: Clone + Send + Sync + 'static {
    /// The `i`th message.
    fn nth(proto: &Self, i: u64) -> Self;
}

impl Msg for u64 {
    fn nth(_: &Self, i: u64) -> Self {
        i
    }
}

impl Msg for bytes::Bytes {
    fn nth(proto: &Self, _: u64) -> Self {
        proto.clone()
    }
}

/// The components of one run, in order: a producer of `n` messages, `len` pass-through stages
/// and a consumer that checks it got `n`. Not yet linked.
pub(crate) fn components<T: Msg>(proto: T, len: usize, n: u64, batched: bool) -> Vec<Component> {
    let mut chain = vec![producer(proto, n)];
    chain.extend((0..len).map(|_| stage::<T>(batched)));
    chain.push(consumer::<T>(n, batched));
    chain
}

fn producer<T: Msg>(proto: T, n: u64) -> Component {
    let mut b = Component::build("Producer");
    let out = b.outbox::<T>("outbox", "n messages");
    let signal = b.signal();
    b.control();
    b.main(move |_cx| async move {
        for i in 0..n {
            out.send(T::nth(&proto, i)).await?;
        }
        signal.send(Control::producer_finished()).await?;
        Ok(())
    })
}

/// The pass-through stage as a user writes it first (or with `recv_many`, when `batched`).
fn stage<T: Msg>(batched: bool) -> Component {
    let mut b = Component::build("PassThrough");
    let inbox = b.inbox::<T>("inbox", "messages");
    let outbox = b.outbox::<T>("outbox", "the same messages");
    let control = b.control();
    let signal = b.signal();
    if batched {
        return b.main(move |_cx| async move {
            let mut buf = Vec::with_capacity(BATCH);
            loop {
                tokio::select! {
                    _ = inbox.recv_many(&mut buf, BATCH) => {
                        for m in buf.drain(..) {
                            outbox.send(m).await?;
                        }
                    }
                    c = control.recv() => {
                        while let Some(m) = inbox.try_recv() {
                            outbox.send(m).await?;
                        }
                        signal.send(c).await?;
                        return Ok(());
                    }
                }
            }
        });
    }
    b.main(move |_cx| async move {
        loop {
            tokio::select! {
                m = inbox.recv() => outbox.send(m).await?,
                c = control.recv() => {
                    while let Some(m) = inbox.try_recv() {
                        outbox.send(m).await?;
                    }
                    signal.send(c).await?;
                    return Ok(());
                }
            }
        }
    })
}

fn consumer<T: Msg>(n: u64, batched: bool) -> Component {
    let mut b = Component::build("Consumer");
    let inbox = b.inbox::<T>("inbox", "messages");
    let control = b.control();
    b.signal();
    b.main(move |_cx| async move {
        let mut got = 0_u64;
        let mut buf = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = inbox.recv_many(&mut buf, BATCH), if batched => {
                    got += buf.len() as u64;
                    buf.clear();
                }
                _ = inbox.recv(), if !batched => got += 1,
                _ = control.recv() => {
                    while inbox.try_recv().is_some() {
                        got += 1;
                    }
                    if got != n {
                        return Err(format!("consumed {got} of {n}").into());
                    }
                    return Ok(());
                }
            }
        }
    })
}

/// The hand-written side: a producer task, `len` stage tasks and a consumer task joined by
/// bounded mpsc channels. Returns how long it took, or what went wrong.
pub(crate) async fn baseline<T: Msg>(
    proto: T,
    len: usize,
    n: u64,
    batched: bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    let (first_tx, mut rx) = mpsc::channel::<T>(DEFAULT_CAPACITY);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(async move {
        for i in 0..n {
            if first_tx.send(T::nth(&proto, i)).await.is_err() {
                return 0;
            }
        }
        0
    }));
    for _ in 0..len {
        let (tx, next_rx) = mpsc::channel::<T>(DEFAULT_CAPACITY);
        let mut stage_rx = std::mem::replace(&mut rx, next_rx);
        tasks.push(tokio::spawn(async move {
            if batched {
                let mut buf = Vec::with_capacity(BATCH);
                while stage_rx.recv_many(&mut buf, BATCH).await > 0 {
                    for m in buf.drain(..) {
                        if tx.send(m).await.is_err() {
                            return 0;
                        }
                    }
                }
            } else {
                while let Some(m) = stage_rx.recv().await {
                    if tx.send(m).await.is_err() {
                        return 0;
                    }
                }
            }
            0
        }));
    }
    tasks.push(tokio::spawn(async move {
        let mut got = 0_u64;
        let mut buf = Vec::with_capacity(BATCH);
        if batched {
            loop {
                let k = rx.recv_many(&mut buf, BATCH).await;
                if k == 0 {
                    break;
                }
                got += k as u64;
                buf.clear();
            }
        } else {
            while rx.recv().await.is_some() {
                got += 1;
            }
        }
        got
    }));
    let mut got = 0;
    for t in tasks {
        got = t.await.map_err(|e| e.to_string())?;
    }
    if got != n {
        return Err(format!("mpsc chain delivered {got} of {n}"));
    }
    Ok(start.elapsed())
}
