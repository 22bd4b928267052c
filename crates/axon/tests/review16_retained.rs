//! Review of `group16` (a diagnostic, ignored: it prints, it bounds nothing): what ended
//! groups leave behind while their members' handles live. Each member's block keeps its
//! group's task's waker, so tokio's block for the task stays allocated as long as a handle
//! (or a moved `Context`, or a waker registered in a live store) does.

use axon::{Component, Group, Scheduler};

mod support;
use support::{bounded, vm_rss_kib};

#[test]
#[ignore = "diagnostic: run with --ignored --nocapture"]
fn rss_kept_per_ended_group_while_its_handles_live() {
    bounded("ended groups of two, handles kept", 120, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        const N: usize = 50_000;
        rt.block_on(async {
            let sched = Scheduler::new();
            let sched = &sched;
            let batch = |n: usize| async move {
                let mut keep = Vec::with_capacity(2 * n);
                let _ = sched
                    .run(async {
                        for _ in 0..n {
                            keep.extend(
                                Group::new()
                                    .with(Component::build("A").main(|_| async { Ok(()) }))
                                    .with(Component::build("B").main(|_| async { Ok(()) }))
                                    .activate(),
                            );
                        }
                    })
                    .await;
                keep
            };
            drop(batch(N / 50).await);
            let before = vm_rss_kib();
            let keep = batch(N).await;
            let after = vm_rss_kib();
            eprintln!(
                "review16: RSS kept per ended group of two (2 handles kept): {} B",
                (after - before) * 1024 / N as u64
            );
            drop(keep);
        });
    });
}
