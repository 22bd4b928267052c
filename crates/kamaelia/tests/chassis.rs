//! Pipeline and Graphline: wiring, termination, nesting, control forwarding and wiring errors
//! (docs/semantics.md §2, §5, §6), on real tasks.

use axon::{Component, Control, Inbox, Outbox, Scheduler, WiringError};
use kamaelia::{graphline, pipeline, Graphline, Pipeline};
use kamaelia_test::bounded;

/// Sends 0..n, then ProducerFinished.
fn source(n: u64) -> Component {
    source_reporting_task(n).0
}

/// Applies `f` to each number until a final control message, which it forwards.
fn map(f: fn(u64) -> u64) -> Component {
    let mut b = Component::build("Map");
    let inbox = b.inbox::<u64>("inbox", "numbers in");
    let control = b.control();
    let out = b.outbox::<u64>("outbox", "numbers out");
    let signal = b.signal();
    b.main(move |_| async move {
        loop {
            tokio::select! {
                biased;
                v = inbox.recv() => out.send(f(v)).await?,
                c = control.recv() => {
                    while let Some(v) = inbox.try_recv() {
                        out.send(f(v)).await?;
                    }
                    let last = c.is_final();
                    signal.send(c).await?;
                    if last { return Ok(()); }
                }
            }
        }
    })
}

/// Waits for a final control message and forwards it; sends nothing else.
fn waiter() -> Component {
    let mut b = Component::build("Waiter");
    b.inbox::<u64>("inbox", "unused");
    let control = b.control();
    b.outbox::<u64>("outbox", "unused");
    let signal = b.signal();
    b.main(move |_| async move {
        loop {
            let c = control.recv().await;
            let last = c.is_final();
            signal.send(c).await?;
            if last {
                return Ok(());
            }
        }
    })
}

/// A component that fails at once.
fn failing() -> Component {
    let mut b = Component::build("Failing");
    b.control();
    b.signal();
    b.main(|_| async { Err("disk on fire".into()) })
}

fn sink<T: Send + 'static>(c: &Component, name: &str) -> Inbox<T> {
    let s = Inbox::<T>::standalone("sink", 100_000);
    axon::link_refs(&c.boxref(name).unwrap(), &s.boxref()).unwrap();
    s
}

fn drain<T: Send + 'static>(s: &Inbox<T>) -> Vec<T> {
    std::iter::from_fn(|| s.try_recv()).collect()
}

#[tokio::test]
async fn pipeline_wires_outbox_to_inbox_and_signal_to_control() {
    bounded(async {
        let p = pipeline![source(1000), map(|x| x * 2), map(|x| x + 1)].unwrap();
        let out = sink::<u64>(&p, "outbox");
        let sig = sink::<Control>(&p, "signal");
        let report = Scheduler::new()
            .run(async {
                p.activate();
            })
            .await;
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(report.components, 4);
        assert_eq!(
            drain(&out),
            (0..1000).map(|x| x * 2 + 1).collect::<Vec<_>>()
        );
        let sig = drain(&sig);
        assert_eq!(sig.len(), 1);
        assert!(sig[0].is_producer_finished());
    })
    .await
}

#[tokio::test]
async fn messages_queued_before_the_pipeline_inbox_is_linked_arrive_in_order() {
    bounded(async {
        let feed = Outbox::<u64>::standalone("feed");
        for i in 0..10 {
            feed.send(i).await.unwrap();
        }
        let p = Pipeline::new([map(|x| x + 100)]).unwrap();
        axon::link_refs(&feed.boxref(), &p.boxref("inbox").unwrap()).unwrap();
        let stop = Outbox::<Control>::standalone("stop");
        axon::link_refs(&stop.boxref(), &p.boxref("control").unwrap()).unwrap();
        let out = sink::<u64>(&p, "outbox");
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                p.activate();
                stop.send(Control::producer_finished()).await.unwrap();
            })
            .await;
        assert!(report.is_ok());
        assert_eq!(drain(&out), (100..110).collect::<Vec<_>>());
    })
    .await
}

#[tokio::test]
async fn pipelines_nest() {
    bounded(async {
        let inner = pipeline![source(50), map(|x| x * 3)].unwrap();
        let outer = pipeline![inner, map(|x| x + 1)].unwrap();
        let out = sink::<u64>(&outer, "outbox");
        let report = Scheduler::new()
            .run(async {
                outer.activate();
            })
            .await;
        assert!(report.is_ok());
        assert_eq!(report.components, 5);
        assert_eq!(drain(&out), (0..50).map(|x| x * 3 + 1).collect::<Vec<_>>());
    })
    .await
}

#[tokio::test]
async fn shutdown_to_a_pipeline_travels_down_the_line_and_leaves_on_its_signal() {
    bounded(async {
        let p = pipeline![waiter(), waiter(), waiter()].unwrap();
        let sig = sink::<Control>(&p, "signal");
        let sched = Scheduler::new();
        let report = sched
            .run(async {
                let h = p.activate();
                assert!(h.stop());
            })
            .await;
        assert!(report.is_ok());
        let sig = drain(&sig);
        assert_eq!(sig.len(), 1);
        assert!(sig[0].is_shutdown());
    })
    .await
}

#[test]
fn pipeline_wiring_errors_are_returned_before_anything_runs() {
    let e = Pipeline::new(Vec::<Component>::new()).err().unwrap();
    assert_eq!(
        e,
        WiringError::Empty {
            chassis: "Pipeline"
        }
    );

    let mut b = Component::build("Texts");
    b.inbox::<String>("inbox", "text");
    b.control();
    b.outbox::<String>("outbox", "text");
    b.signal();
    let texts = b.main(|_| async { Ok(()) });
    let e = pipeline![source(1), texts].err().unwrap();
    match &e {
        WiringError::TypeMismatch { src, dst } => {
            assert_eq!(&*src.name, "outbox");
            assert!(src.owner.starts_with("Source#"));
            assert!(dst.owner.starts_with("Texts#"));
            assert_eq!(src.message_type, "u64");
            assert!(dst.message_type.contains("String"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("u64") && msg.contains("String"), "{msg}");
}

#[tokio::test]
async fn graphline_wires_named_components_and_ends_with_producer_finished() {
    bounded(async {
        let g = graphline! {
            SRC = source(100),
            DOUBLE = map(|x| x * 2),
            linkages = {
                ("SRC", "outbox"): ("DOUBLE", "inbox"),
                ("SRC", "signal"): ("DOUBLE", "control"),
                ("DOUBLE", "outbox"): ("", "outbox"),
            }
        }
        .unwrap();
        let out = sink::<u64>(&g, "outbox");
        let sig = sink::<Control>(&g, "signal");
        let report = Scheduler::new()
            .run(async {
                g.activate();
            })
            .await;
        assert!(report.is_ok());
        assert_eq!(drain(&out), (0..100).map(|x| x * 2).collect::<Vec<_>>());
        let sig = drain(&sig);
        assert_eq!(sig.len(), 1, "{sig:?}");
        assert!(sig[0].is_producer_finished());
    })
    .await
}

#[tokio::test]
async fn graphline_fans_control_out_to_children_whose_control_is_not_linked() {
    bounded(async {
        // A feeds B's control, so only A and C get the Graphline's control messages.
        let g = Graphline::new()
            .component("A", waiter())
            .component("B", waiter())
            .component("C", waiter())
            .link(("A", "signal"), ("B", "control"))
            .build()
            .unwrap();
        let sig = sink::<Control>(&g, "signal");
        let report = Scheduler::new()
            .run(async {
                let h = g.activate();
                h.stop();
            })
            .await;
        assert!(report.is_ok());
        let sig = drain(&sig);
        assert_eq!(sig.len(), 1, "{sig:?}");
        assert!(
            sig[0].is_shutdown(),
            "the ShutdownMicroprocess it received leaves last"
        );
    })
    .await
}

#[tokio::test]
async fn a_childs_failure_reaches_the_graphline_signal() {
    bounded(async {
        let g = graphline! {
            BAD = failing(),
            OK = source(3),
            linkages = {}
        }
        .unwrap();
        let out = sink::<Control>(&g, "signal");
        let report = Scheduler::new()
            .run(async {
                g.activate();
            })
            .await;
        assert_eq!(report.failures.len(), 1);
        let sig = drain(&out);
        assert_eq!(sig.len(), 2, "{sig:?}");
        let failure = sig[0]
            .error_ref::<axon::ComponentFailure>()
            .expect("an error first");
        assert!(failure.to_string().contains("disk on fire"));
        assert!(sig[1].is_producer_finished());
    })
    .await
}

#[tokio::test]
async fn graphlines_nest_inside_pipelines() {
    bounded(async {
        let g = graphline! {
            M = map(|x| x + 1),
            linkages = {
                ("", "inbox"): ("M", "inbox"),
                ("", "control"): ("M", "control"),
                ("M", "outbox"): ("", "outbox"),
                ("M", "signal"): ("", "signal"),
            }
        }
        .unwrap();
        let p = pipeline![source(20), g].unwrap();
        let out = sink::<u64>(&p, "outbox");
        let sig = sink::<Control>(&p, "signal");
        let report = Scheduler::new()
            .run(async {
                p.activate();
            })
            .await;
        assert!(report.is_ok());
        assert_eq!(drain(&out), (1..21).collect::<Vec<_>>());
        let sig = drain(&sig);
        assert_eq!(sig.len(), 1);
        assert!(sig[0].is_producer_finished());
    })
    .await
}

#[test]
fn graphline_wiring_errors_name_what_is_wrong() {
    let unknown = graphline! { A = source(1), linkages = { ("A", "outbox"): ("NOPE", "inbox") } };
    assert_eq!(
        unknown.err().unwrap(),
        WiringError::UnknownComponent {
            component: "NOPE".into()
        }
    );

    let bad_box =
        graphline! { A = source(1), B = map(|x| x), linkages = { ("A", "outbx"): ("B", "inbox") } };
    match bad_box.err().unwrap() {
        WiringError::UnknownBox {
            name, available, ..
        } => {
            assert_eq!(name, "outbx");
            assert!(available.contains(&"outbox".to_string()));
        }
        other => panic!("unexpected {other:?}"),
    }

    let wrong_way = graphline! { A = map(|x| x), B = map(|x| x), linkages = { ("A", "inbox"): ("B", "outbox") } };
    assert!(matches!(
        wrong_way.err().unwrap(),
        WiringError::WrongDirection { .. }
    ));

    let mismatch = graphline! { A = source(1), B = map(|x| x), linkages = { ("A", "outbox"): ("B", "control") } };
    assert!(matches!(
        mismatch.err().unwrap(),
        WiringError::TypeMismatch { .. }
    ));

    let twice = graphline! {
        A = source(1), B = map(|x| x), C = map(|x| x),
        linkages = { ("A", "outbox"): ("B", "inbox"), ("A", "outbox"): ("C", "inbox") }
    };
    assert!(matches!(
        twice.err().unwrap(),
        WiringError::AlreadyLinked { .. }
    ));
}

/// Sends 0..n, then ProducerFinished; reports the id of the task running it.
fn source_reporting_task(n: u64) -> (Component, tokio::sync::oneshot::Receiver<tokio::task::Id>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut b = Component::build("Source");
    let out = b.outbox::<u64>("outbox", "numbers");
    let signal = b.signal();
    b.control();
    let c = b.main(move |_| async move {
        let _ = tx.send(tokio::task::id());
        for i in 0..n {
            out.send(i).await?;
        }
        signal.send(Control::producer_finished()).await?;
        Ok(())
    });
    (c, rx)
}

/// §10: a grouped Graphline runs its children in its own task, and behaves as before: the
/// data, the final message, one report entry per component. Without `grouped` the children
/// have tasks of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_graphline_runs_its_children_in_one_task() {
    bounded(async {
        for grouped in [true, false] {
            let (src, src_task) = source_reporting_task(100);
            let (tx, report_task) = tokio::sync::oneshot::channel();
            let double = map(|x| x * 2);
            let mut b = Component::build("TaskReporter");
            b.control();
            let reporter = b.main(move |_| async move {
                let _ = tx.send(tokio::task::id());
                Ok(())
            });
            let mut g = Graphline::new()
                .component("SRC", src)
                .component("DOUBLE", double)
                .component("REPORT", reporter)
                .link(("SRC", "outbox"), ("DOUBLE", "inbox"))
                .link(("SRC", "signal"), ("DOUBLE", "control"))
                .link(("DOUBLE", "outbox"), ("", "outbox"));
            if grouped {
                g = g.grouped();
            }
            let g = g.build().unwrap();
            let out = sink::<u64>(&g, "outbox");
            let report = Scheduler::new()
                .run(async {
                    g.activate();
                })
                .await;
            assert!(report.is_ok(), "{:?}", report.failures);
            assert_eq!(report.components, 4);
            assert_eq!(drain(&out), (0..100).map(|x| x * 2).collect::<Vec<_>>());
            let (a, b) = (src_task.await.unwrap(), report_task.await.unwrap());
            assert_eq!(a == b, grouped, "grouped: {grouped}");
        }
    })
    .await
}
