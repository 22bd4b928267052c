//! Review of `group16`: groups activated before a runtime exists (the scheduler's pending
//! list, by group number). A file of its own: the test uses the process-wide scheduler, which
//! the other review16 tests leave with components whose runtime was dropped.

use std::sync::Arc;

use axon::{Component, Group};

mod support;
use support::bounded;

/// Groups activated before any runtime exists wait in the scheduler's pending list and start
/// together, each group in one task of its own, when `axon::run` starts them; a lone
/// `hosts_group` component is a group of one there too.
#[test]
fn groups_activated_before_a_runtime_start_together() {
    bounded("pending groups", 30, || {
        let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for g in 0..3usize {
            let mut grp = Group::new();
            for m in 0..3usize {
                let ids = ids.clone();
                grp.push(Component::build("Pending").main(move |_| async move {
                    ids.lock().unwrap().push((g, m, tokio::task::id()));
                    Ok(())
                }));
            }
            hs.extend(grp.activate());
        }
        let ids2 = ids.clone();
        let mut b = Component::build("Host");
        b.hosts_group();
        hs.push(
            b.main(move |cx| async move {
                let ids3 = ids2.clone();
                let own = tokio::task::id();
                cx.activate_beside(Component::build("Beside").main(move |_| async move {
                    ids3.lock().unwrap().push((9, 1, tokio::task::id()));
                    Ok(())
                }));
                ids2.lock().unwrap().push((9, 0, own));
                Ok(())
            })
            .activate(),
        );
        let report = axon::run(async {}).unwrap();
        assert!(report.is_ok(), "{:?}", report.failures);
        let ids = ids.lock().unwrap();
        assert_eq!(ids.len(), 11);
        for (g, _, id) in ids.iter() {
            for (g2, _, id2) in ids.iter() {
                assert_eq!(g == g2, id == id2, "group {g} vs {g2}: one task per group");
            }
        }
        drop(hs);
    });
}
