//! Stopping components: `Handle::stop` and `Scheduler::shutdown_all` deliver
//! ShutdownMicroprocess through the control path (docs/semantics.md §5).

use crate::support::{forwarder, idle, within, wrapper};
use axon::{link_refs, Control, Inbox, Scheduler};

/// §5: `Handle::stop` delivers ShutdownMicroprocess to the component's `control`; the component
/// passes it on through `signal` and ends; stopping it again says false.
#[tokio::test]
async fn stop_delivers_shutdown_to_control() {
    within("stop one component", async {
        let (c, started) = idle("Idle");
        let sig = Inbox::<Control>::standalone("sig", 4);
        link_refs(&c.boxref("signal").unwrap(), &sig.boxref()).unwrap();
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let h = c.activate();
                started.await.unwrap();
                assert!(h.stop());
                assert!(sig.recv().await.is_shutdown());
                assert!(h.join().await.failure.is_none());
                assert!(!h.stop(), "stop after the end has nowhere to deliver");
            })
            .await;
        assert!(report.is_ok());
    })
    .await;
}

/// §5 (through a passthrough): stopping a parent whose `control` is forwarded into its child
/// delivers ShutdownMicroprocess to the child; the child's final message comes out of the
/// parent's `signal`, and both end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_reaches_a_child_through_a_passthrough_control() {
    within("stop a wrapper", async {
        let (parent, child) = wrapper("Parent", forwarder("Child"));
        let sig = Inbox::<Control>::standalone("sig", 4);
        link_refs(&parent.boxref("signal").unwrap(), &sig.boxref()).unwrap();
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let p = parent.activate();
                let c = child.await.unwrap();
                assert!(p.stop());
                assert!(sig.recv().await.is_shutdown());
                assert!(c.join().await.failure.is_none());
                assert!(p.join().await.failure.is_none());
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 2);
    })
    .await;
}

/// §5 / §6: stopping one component ends only that component (in Python Axon, `stop()` on one
/// microprocess ended the whole scheduler): the other keeps running and the run waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_one_component_does_not_end_the_run() {
    within("stop one of two", async {
        let (a, a_started) = idle("A");
        let (b, b_started) = idle("B");
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let a = a.activate();
                let b = b.activate();
                a_started.await.unwrap();
                b_started.await.unwrap();
                assert!(a.stop());
                a.join().await;
                assert!(!b.is_finished());
                assert_eq!(sched.live(), 1);
                assert!(b.stop());
            })
            .await;
        assert!(report.is_ok());
        assert_eq!(report.components, 2);
    })
    .await;
}

/// §5: `shutdown_all` (what Ctrl-C does) stops every top-level component; children are reached
/// through their parents' control passthrough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_all_stops_top_level_components_and_their_children() {
    within("shutdown_all", async {
        let (parent, child) = wrapper("Parent", forwarder("Child"));
        let (lone, lone_started) = idle("Lone");
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                parent.activate();
                lone.activate();
                child.await.unwrap();
                lone_started.await.unwrap();
                assert_eq!(sched.live(), 3);
                sched.shutdown_all();
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 3);
        assert_eq!(sched.live(), 0);
    })
    .await;
}

/// §5: `Handle::send_control` delivers any control message to the component's `control`, as
/// `stop` does with ShutdownMicroprocess: a notice is passed on and the component keeps going;
/// ProducerFinished ends it through its own path; after the end there is nowhere to deliver.
#[tokio::test]
async fn send_control_delivers_through_the_handle() {
    within("send_control", async {
        let (c, started) = idle("Idle");
        let sig = Inbox::<Control>::standalone("sig", 4);
        link_refs(&c.boxref("signal").unwrap(), &sig.boxref()).unwrap();
        let report = Scheduler::new()
            .run(async {
                let h = c.activate();
                started.await.unwrap();
                assert!(h.send_control(Control::notice(3u8)));
                assert_eq!(sig.recv().await.payload::<u8>(), Some(&3));
                assert!(!h.is_finished());
                assert!(h.send_control(Control::producer_finished()));
                assert!(sig.recv().await.is_producer_finished());
                assert!(h.join().await.failure.is_none());
                assert!(!h.send_control(Control::producer_finished()));
            })
            .await;
        assert!(report.is_ok());
    })
    .await;
}
