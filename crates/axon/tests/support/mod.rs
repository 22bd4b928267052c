//! Helpers shared by the integration tests: small components and bounded waiting.
//!
//! Every wait goes through [`within`], so a hang fails the test instead of stalling the suite.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use axon::{link_refs, Component, Control, Handle, Inbox, Outbox};
use tokio::sync::oneshot;

/// The bound on every test; generous, since a passing test takes milliseconds.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `fut`, failing the test with `what` if it does not finish within [`TIMEOUT`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {TIMEOUT:?}: {what}"),
    }
}

/// Kamaelia's pass-through component written the way a user would: copy `inbox` to `outbox`
/// until a final message arrives on `control`, then forward what is still queued and pass the
/// final message on through `signal`.
pub(crate) fn forwarder(name: &str) -> Component {
    let mut b = Component::build(name);
    let inbox = b.inbox::<u64>("inbox", "messages to pass on");
    let outbox = b.outbox::<u64>("outbox", "the same messages, in order");
    let control = b.control();
    let signal = b.signal();
    b.main(move |_cx| async move {
        loop {
            tokio::select! {
                m = inbox.recv() => outbox.send(m).await?,
                c = control.recv() => {
                    if c.is_final() {
                        while let Some(m) = inbox.try_recv() {
                            outbox.send(m).await?;
                        }
                        signal.send(c).await?;
                        return Ok(());
                    }
                    signal.send(c).await?;
                }
            }
        }
    })
}

/// Like [`within`], with a shorter bound for a single event that must follow at once.
pub(crate) async fn soon<F: Future>(what: &str, fut: F) -> F::Output {
    let bound = Duration::from_secs(2);
    match tokio::time::timeout(bound, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {bound:?}: {what}"),
    }
}

/// A chassis around one child, the way Kamaelia's Pipeline wraps its children: when it runs it
/// forwards its `inbox` and `control` into the child's (passthrough in), exposes the child's
/// `outbox` and `signal` as its own (passthrough out), activates the child, hands the child's
/// handle to the returned receiver and waits for the child to end.
pub(crate) fn wrapper(name: &str, child: Component) -> (Component, oneshot::Receiver<Handle>) {
    let (tx, rx) = oneshot::channel();
    let mut b = Component::build(name);
    b.inbox::<u64>("inbox", "forwarded to the child's inbox");
    b.control();
    b.outbox::<u64>("outbox", "the child's outbox");
    b.signal();
    let [inbox, control, outbox, signal] =
        ["inbox", "control", "outbox", "signal"].map(|n| b.boxref(n).expect("declared above"));
    let c = b.main(move |cx| async move {
        link_refs(&inbox, &child.boxref("inbox")?)?;
        link_refs(&control, &child.boxref("control")?)?;
        link_refs(&child.boxref("outbox")?, &outbox)?;
        link_refs(&child.boxref("signal")?, &signal)?;
        let h = cx.activate(child);
        let _ = tx.send(h.clone());
        h.join().await;
        Ok(())
    });
    (c, rx)
}

/// A component that sends `0..n` on `outbox`, then ProducerFinished on `signal`.
pub(crate) fn counter(n: u64) -> Component {
    let mut b = Component::build("Counter");
    let out = b.outbox::<u64>("outbox", "0..n");
    let signal = b.signal();
    b.control();
    b.main(move |_cx| async move {
        for i in 0..n {
            out.send(i).await?;
        }
        signal.send(Control::producer_finished()).await?;
        Ok(())
    })
}

/// A component that collects what arrives on `inbox` until a final message on `control`
/// (then drains what is still queued) and hands the collection to the returned receiver.
pub(crate) fn collector(name: &str, capacity: usize) -> (Component, oneshot::Receiver<Vec<u64>>) {
    let (tx, rx) = oneshot::channel();
    let mut b = Component::build(name);
    let inbox = b.inbox_with_capacity::<u64>("inbox", "messages to keep", capacity);
    let control = b.control();
    b.signal();
    let c = b.main(move |_cx| async move {
        let mut got = Vec::new();
        loop {
            tokio::select! {
                m = inbox.recv() => got.push(m),
                c = control.recv() => if c.is_final() {
                    while let Some(m) = inbox.try_recv() {
                        got.push(m);
                    }
                    let _ = tx.send(got);
                    return Ok(());
                }
            }
        }
    });
    (c, rx)
}

/// Receives exactly `n` messages from `inbox`.
pub(crate) async fn recv_n<T: Send + 'static>(inbox: &Inbox<T>, n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(inbox.recv().await);
    }
    v
}

/// Sends each of `items` on `out`, panicking if a send fails.
pub(crate) async fn send_all(out: &Outbox<u64>, items: impl IntoIterator<Item = u64>) {
    for i in items {
        out.send(i).await.expect("send failed");
    }
}

/// A component with a `control` inbox that ends on the first final message, passing it on
/// through `signal`; `started` fires once it runs, with the id of the task running it.
pub(crate) fn idle(name: &str) -> (Component, oneshot::Receiver<tokio::task::Id>) {
    let (tx, rx) = oneshot::channel();
    let mut b = Component::build(name);
    let control = b.control();
    let signal = b.signal();
    let c = b.main(move |_cx| async move {
        let _ = tx.send(tokio::task::id());
        loop {
            let c = control.recv().await;
            let last = c.is_final();
            signal.send(c).await?;
            if last {
                return Ok(());
            }
        }
    });
    (c, rx)
}

/// The process's resident set size in KiB, from `/proc/self/status`.
pub(crate) fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line in /proc/self/status")
}

/// Asserts `v` is strictly increasing.
pub(crate) fn assert_increasing(what: &str, v: &[u64]) {
    if let Some(w) = v.windows(2).find(|w| w[0] >= w[1]) {
        panic!("{what}: not strictly increasing at {} then {}", w[0], w[1]);
    }
}

/// Runs `body` on its own thread; fails if it panics or has not finished within `secs`.
pub(crate) fn bounded<F: FnOnce() + Send + 'static>(what: &str, secs: u64, body: F) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => t.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = t.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("timed out after {secs} s: {what} (deadlock?)")
        }
    }
}

/// A component that answers each number on `inbox` with the next one on `outbox`, and checks
/// `control` between messages (so each poll looks at two boxes, one of them empty), until
/// `rounds` numbers have gone through or a final control message arrives. The last answer may
/// find its receiver gone: that is not a failure here.
pub(crate) fn answerer(name: &str, rounds: u64) -> Component {
    let mut b = Component::build(name);
    let inbox = b.inbox::<u64>("inbox", "a number");
    let outbox = b.outbox::<u64>("outbox", "the next number");
    let control = b.control();
    b.main(move |_cx| async move {
        for _ in 0..rounds {
            tokio::select! {
                c = control.recv() => if c.is_final() { return Ok(()) },
                n = inbox.recv() => { let _ = outbox.send(n + 1).await; }
            }
        }
        Ok(())
    })
}
