//! Components that panic or fail: reported on `signal` and in the run's report, while the rest
//! of the system keeps running (docs/semantics.md §5, §6).

use std::fmt;

use crate::support::{forwarder, idle, within};
use axon::{
    link_refs, Component, ComponentFailure, Control, FailureKind, Inbox, Outbox, Scheduler,
};

#[derive(Debug)]
struct Refused(u32);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused with code {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// A component that waits for one message on `inbox`, then panics or returns `Err(Refused)`.
fn failing(panics: bool) -> Component {
    let mut b = Component::build(if panics { "Bomb" } else { "Refuser" });
    let inbox = b.inbox::<u64>("inbox", "the trigger");
    b.control();
    b.signal();
    b.main(move |_cx| async move {
        let n = inbox.recv().await;
        if panics {
            panic!("bomb {n} went off");
        }
        Err(Refused(n as u32).into())
    })
}

/// Receives the runtime's `Error` then `ProducerFinished` from a failed component's signal;
/// returns the `Error`.
async fn failure_then_finished(sig: &Inbox<Control>) -> Control {
    let first = sig.recv().await;
    if let Control::Error(e) = &first {
        let f = e
            .downcast_ref::<ComponentFailure>()
            .expect("the error is an axon::ComponentFailure");
        assert_eq!(e.component(), &*f.component);
    } else {
        panic!("expected Control::Error first, got {first}");
    }
    assert!(
        sig.recv().await.is_producer_finished(),
        "ProducerFinished follows the error"
    );
    first
}

/// §6 / §5: a component that panics: its `signal` carries `Control::Error` holding a
/// `ComponentFailure` with `FailureKind::Panicked` (the panic message), then `ProducerFinished`;
/// its exit and the run's report name it; another component keeps running, and the run returns
/// once that one ends too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_component_is_reported_and_the_rest_keep_running() {
    within("a panic among healthy components", async {
        let bomb = failing(true);
        let label = bomb.label().to_string();
        let trigger = Outbox::<u64>::standalone("trigger");
        let sig = Inbox::<Control>::standalone("sig", 8);
        link_refs(&trigger.boxref(), &bomb.boxref("inbox").unwrap()).unwrap();
        link_refs(&bomb.boxref("signal").unwrap(), &sig.boxref()).unwrap();
        let (healthy, started) = idle("Healthy");
        let healthy_sig = Inbox::<Control>::standalone("healthy_sig", 8);
        link_refs(&healthy.boxref("signal").unwrap(), &healthy_sig.boxref()).unwrap();

        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let b = bomb.activate();
                let h = healthy.activate();
                started.await.unwrap();
                trigger.send(7).await.unwrap();
                let msg = failure_then_finished(&sig).await;
                let f = msg.error_ref::<ComponentFailure>().unwrap();
                assert_eq!(&*f.component, label);
                assert!(
                    matches!(&f.kind, FailureKind::Panicked(m) if m == "bomb 7 went off"),
                    "{f:?}"
                );
                let exit = b.join().await;
                assert!(matches!(
                    exit.failure.as_deref().map(|f| &f.kind),
                    Some(FailureKind::Panicked(_))
                ));

                assert!(!h.is_finished(), "the healthy component is still running");
                assert_eq!(sched.live(), 1);
                assert!(h.stop());
                assert!(healthy_sig.recv().await.is_shutdown());
                assert!(h.join().await.failure.is_none());
            })
            .await;
        assert_eq!(report.components, 2);
        assert_eq!(report.failures.len(), 1);
        assert_eq!(&*report.failures[0].component, label);
        assert!(matches!(report.failures[0].kind, FailureKind::Panicked(_)));
        assert!(report.failures[0]
            .to_string()
            .contains("panicked: bomb 7 went off"));
    })
    .await;
}

/// §6: a component whose main routine returns `Err`: the same report with `FailureKind::Error`
/// holding the original error (downcastable, and the failure's `source`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_returning_err_is_reported_with_its_error() {
    within("a component that returns Err", async {
        let refuser = failing(false);
        let label = refuser.label().to_string();
        let trigger = Outbox::<u64>::standalone("trigger");
        let sig = Inbox::<Control>::standalone("sig", 8);
        link_refs(&trigger.boxref(), &refuser.boxref("inbox").unwrap()).unwrap();
        link_refs(&refuser.boxref("signal").unwrap(), &sig.boxref()).unwrap();
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let r = refuser.activate();
                trigger.send(42).await.unwrap();
                let msg = failure_then_finished(&sig).await;
                let f = msg.error_ref::<ComponentFailure>().unwrap();
                assert!(matches!(&f.kind, FailureKind::Error(e) if e.downcast_ref::<Refused>().is_some()));
                let exit = r.join().await;
                let failure = exit.failure.expect("the exit records the failure");
                match &failure.kind {
                    FailureKind::Error(e) => assert_eq!(e.downcast_ref::<Refused>().unwrap().0, 42),
                    other => panic!("expected FailureKind::Error, got {other:?}"),
                }
                let source = std::error::Error::source(&*failure).expect("the error is the source");
                assert!(source.downcast_ref::<Refused>().is_some());
            })
            .await;
        assert_eq!(report.failures.len(), 1);
        assert_eq!(&*report.failures[0].component, label);
        assert_eq!(
            report.failures[0].to_string(),
            format!("{label} failed: refused with code 42")
        );
    })
    .await;
}

/// §5 / §6: a failure travels downstream: the failed component's signal is linked to a
/// forwarder's control; the forwarder passes the `Error` on and then finishes on the runtime's
/// `ProducerFinished` instead of waiting forever, so the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_components_finish_after_an_upstream_failure() {
    within("failure propagates down a chain", async {
        let bomb = failing(true);
        let next = forwarder("Next");
        let trigger = Outbox::<u64>::standalone("trigger");
        let end = Inbox::<Control>::standalone("end", 8);
        link_refs(&trigger.boxref(), &bomb.boxref("inbox").unwrap()).unwrap();
        link_refs(
            &bomb.boxref("signal").unwrap(),
            &next.boxref("control").unwrap(),
        )
        .unwrap();
        link_refs(&next.boxref("signal").unwrap(), &end.boxref()).unwrap();
        trigger.send(1).await.unwrap();
        let report = Scheduler::new()
            .run(async {
                bomb.activate();
                next.activate();
            })
            .await;
        assert_eq!(report.failures.len(), 1);
        assert!(end.recv().await.error_ref::<ComponentFailure>().is_some());
        assert!(end.recv().await.is_producer_finished());
    })
    .await;
}

/// How a test component declares its `signal`.
#[derive(Clone, Copy, Debug)]
enum SignalDecl {
    Standard,
    Described,
    PlainOutbox,
}

/// §5: after a component's final message, a failure sends no second final message, however its
/// `signal` was declared: `signal()`, `signal_with(description)`, or as a plain outbox of
/// `Control` called "signal" (which several components did to give it their own description,
/// and which once lost the guard).
#[tokio::test]
async fn a_failure_after_the_final_message_does_not_send_a_second_final() {
    for decl in [
        SignalDecl::Standard,
        SignalDecl::Described,
        SignalDecl::PlainOutbox,
    ] {
        one_final_after_failure(decl).await;
    }
}

async fn one_final_after_failure(decl: SignalDecl) {
    within("fail after finishing", async {
        let mut b = Component::build("LateFailure");
        b.control();
        let signal = match decl {
            SignalDecl::Standard => b.signal(),
            SignalDecl::Described => b.signal_with("its own words"),
            SignalDecl::PlainOutbox => b.outbox::<Control>(axon::SIGNAL, "its own words"),
        };
        let c = b.main(move |_cx| async move {
            signal.send(Control::producer_finished()).await?;
            Err(Refused(1).into())
        });
        if !matches!(decl, SignalDecl::Standard) {
            let spec = c.boxes().find(|s| &*s.name == "signal").unwrap();
            assert_eq!(spec.description, "its own words");
        }
        let sig = Inbox::<Control>::standalone("sig", 8);
        link_refs(&c.boxref("signal").unwrap(), &sig.boxref()).unwrap();
        let report = Scheduler::new()
            .run(async {
                c.activate();
            })
            .await;
        assert_eq!(report.failures.len(), 1);
        // The run has ended, so everything the signal will ever carry is queued now.
        let mut carried = Vec::new();
        while let Some(m) = sig.try_recv() {
            carried.push(m.to_string());
        }
        let finals = carried
            .iter()
            .filter(|m| m.starts_with("producer finished") || m.starts_with("shutdown"))
            .count();
        assert_eq!(finals, 1, "{decl:?}: signal carried {carried:?}");
        assert!(
            carried
                .last()
                .is_some_and(|m| m.starts_with("producer finished")),
            "{decl:?}: {carried:?}"
        );
    })
    .await;
}

/// A payload that says when it is dropped.
struct Tracked(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for Tracked {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// §6 (a bounded record with no payloads): 200 components each fail by returning the
/// `SendError` of a send to an ended component, the undelivered message inside it. Every one of
/// those messages is freed once the components are gone, while the run's report is still held:
/// the report counts all 200 failures, keeps the most recent 64 as text, and holds no message.
/// Before, the report kept every failure with its message, so a long-running server that lost
/// connections grew without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_and_the_record_keeps_no_payload() {
    const N: usize = 200;
    within("200 failing senders", async {
        let (dropped, mut drops) = tokio::sync::mpsc::unbounded_channel();
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                for _ in 0..N {
                    let mut b = Component::build("Sender");
                    let out = b.outbox::<Tracked>("outbox", "payloads");
                    b.control();
                    b.signal();
                    let dropped = dropped.clone();
                    let sender = b.main(move |_cx| async move {
                        out.send(Tracked(dropped)).await?;
                        Ok(())
                    });
                    // The destination has ended: the send fails and hands the payload back.
                    let mut b = Component::build("Gone");
                    b.inbox::<Tracked>("inbox", "never read");
                    let gone = b.main(|_cx| async { Ok(()) });
                    link_refs(
                        &sender.boxref("outbox").unwrap(),
                        &gone.boxref("inbox").unwrap(),
                    )
                    .unwrap();
                    gone.activate().join().await;
                    let _ = sender.activate();
                }
            })
            .await;
        assert_eq!(report.failed, N);
        assert_eq!(report.failures.len(), axon::RECENT_FAILURES);
        assert!(!report.is_ok());
        assert!(
            report.failures[0]
                .to_string()
                .ends_with("failed: the receiving component has ended"),
            "{}",
            report.failures[0]
        );
        // The run returns when the last component has ended, while its task may still be
        // dropping its boxes: wait for every drop (within the test's bound), report in hand.
        drop(dropped);
        for n in 0..N {
            assert!(
                drops.recv().await.is_some(),
                "only {n} of {N} undelivered messages were freed: the rest are held somewhere"
            );
        }
        assert_eq!(report.failed, N, "the report is still held");
    })
    .await;
}
