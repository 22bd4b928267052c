//! The live graph as Graphviz DOT (docs/semantics.md §8).

use crate::support::{collector, forwarder, within, wrapper};
use axon::{link_refs, Component, Inbox, Scheduler};
use tokio::sync::oneshot;

/// A component with an `outbox` that sends nothing and ends on its first control message.
fn quiet_source() -> (Component, oneshot::Receiver<()>) {
    let (tx, rx) = oneshot::channel();
    let mut b = Component::build("Source");
    b.outbox::<u64>("outbox", "nothing, in this test");
    let control = b.control();
    let c = b.main(move |_cx| async move {
        let _ = tx.send(());
        control.recv().await;
        Ok(())
    });
    (c, rx)
}

/// §8: the graph of a running two-component chain names both components and draws a solid edge
/// from the source's outbox to the sink's inbox.
#[tokio::test]
async fn graph_of_a_running_chain_has_both_components_and_their_edge() {
    within("graph of a chain", async {
        let (source, started) = quiet_source();
        let (sink, _) = collector("Sink", 8);
        let (s, k) = (source.label().to_string(), sink.label().to_string());
        link_refs(
            &source.boxref("outbox").unwrap(),
            &sink.boxref("inbox").unwrap(),
        )
        .unwrap();
        let sched = Scheduler::new();
        let mut dot = String::new();
        let report = sched
            .run(async {
                let a = source.activate();
                let b = sink.activate();
                started.await.unwrap();
                dot = sched.graph_dot();
                a.stop();
                b.stop();
            })
            .await;
        assert!(report.is_ok());
        assert!(dot.starts_with("digraph"), "{dot}");
        assert!(dot.contains(&format!("label=\"{s}\"")), "{dot}");
        assert!(dot.contains(&format!("label=\"{k}\"")), "{dot}");
        let edge = format!("\"{s}.outbox\" -> \"{k}.inbox\" [style=solid]");
        assert!(dot.contains(&edge), "no {edge} in\n{dot}");
        assert_eq!(
            sched.graph_dot().matches("->").count(),
            0,
            "nothing runs now"
        );
    })
    .await;
}

/// §8: passthrough links are dashed, and a child is drawn inside its parent's cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_edges_are_dashed_and_children_nest() {
    within("graph of a wrapper", async {
        let (parent, child) = wrapper("Parent", forwarder("Child"));
        let p = parent.label().to_string();
        let sink = Inbox::<u64>::standalone("sink", 8);
        link_refs(&parent.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
        let sched = Scheduler::new();
        let (mut dot, mut c) = (String::new(), String::new());
        let report = sched
            .run(async {
                let h = parent.activate();
                c = child.await.unwrap().label().to_string();
                dot = sched.graph_dot();
                h.stop();
            })
            .await;
        assert!(report.is_ok());
        for (from, to) in [("inbox", "inbox"), ("control", "control")] {
            let edge = format!("\"{p}.{from}\" -> \"{c}.{to}\" [style=dashed]");
            assert!(dot.contains(&edge), "no {edge} in\n{dot}");
        }
        for (from, to) in [("outbox", "outbox"), ("signal", "signal")] {
            let edge = format!("\"{c}.{from}\" -> \"{p}.{to}\" [style=dashed]");
            assert!(dot.contains(&edge), "no {edge} in\n{dot}");
        }
        let parent_at = dot
            .find(&format!("subgraph \"cluster_{p}\""))
            .expect("parent cluster");
        let child_at = dot
            .find(&format!("subgraph \"cluster_{c}\""))
            .expect("child cluster");
        let parent_close = parent_at + dot[parent_at..].find("\n  }\n").expect("parent closes");
        assert!(
            parent_at < child_at && child_at < parent_close,
            "child not nested:\n{dot}"
        );
    })
    .await;
}
