//! Running components end to end through real tasks (docs/semantics.md §1, §6).

use axon::{link_refs, Inbox, Scheduler};

use crate::support::{counter, within};

#[tokio::test]
async fn run_returns_once_every_component_has_ended() {
    within("the run", async {
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
    .await;
}
