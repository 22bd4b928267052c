//! Running components end to end through real tasks (docs/semantics.md §1, §6).

use std::time::Duration;

use axon::{link_refs, Component, Control, Inbox, Scheduler};

fn counter(n: u64) -> Component {
    let mut b = Component::build("Counter");
    let out = b.outbox::<u64>("outbox", "numbers");
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

#[tokio::test]
async fn run_returns_once_every_component_has_ended() {
    tokio::time::timeout(Duration::from_secs(10), async {
        let c = counter(1000);
        let sink = Inbox::<u64>::standalone("sink", 2000);
        link_refs(&c.boxref("outbox").unwrap(), &sink.boxref()).unwrap();
        let report = Scheduler::new()
            .run(async {
                c.activate();
            })
            .await;
        assert!(report.is_ok());
        assert_eq!(report.components, 1);
        for i in 0..1000 {
            assert_eq!(sink.try_recv(), Some(i));
        }
        assert_eq!(sink.try_recv(), None);
    })
    .await
    .expect("timed out");
}
