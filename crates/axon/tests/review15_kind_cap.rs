//! Review of session 15's per-kind records (`spec::Kind`, branch trim15): the map of shared
//! records kept at most 4,096 records in all and never dropped one (mended: when full, it lets
//! go of the records no component holds). A kind takes a record per
//! outbox declared (plus one with none), and one more per way of building it (a bound, a
//! store of its own), so about 2,000 kinds of one outbox each fill it for good. From then on
//! every component of a kind first seen later gets records of its own: a 48-byte block (a
//! 64-byte chunk) and its list of outboxes, per component. Main (400be7d) kept a name per
//! kind (4,096 names, shared, with no per-component record past them).
//!
//! Measured as the resident memory a kind's components add, 20,000 of them kept alive:
//! before the map fills and after. One test in its own binary: the tables are process-wide.

use axon::Component;

mod support;
use support::bounded;

/// A component with an inbox and two outboxes, as a connection's holder.
fn holder(kind: &str) -> Component {
    let mut b = Component::build(kind);
    let _ = b.inbox::<u64>("inbox", "review15");
    let _ = b.outbox::<u64>("outbox", "review15");
    b.signal();
    b.main(|_| async { Ok(()) })
}

/// Resident bytes now (/proc/self/statm, pages).
fn resident() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Bytes per component that `n` components of `kind`, kept, add.
fn per_component(kind: &str, n: usize) -> (usize, Vec<Component>) {
    let first = holder(kind); // its kind's records made, if they are kept
    let mut kept: Vec<Component> = Vec::with_capacity(n);
    let list = resident();
    for _ in 0..n {
        kept.push(holder(kind));
    }
    let after = resident();
    kept.push(first);
    ((after - list) / n, kept)
}

#[test]
fn a_kind_first_seen_after_many_kinds_costs_no_more_per_component() {
    bounded("kinds past the cap", 120, || {
        const N: usize = 20_000;
        let (early, keep_early) = per_component("Early", N);
        // 3,000 kinds of one component each, kept (their blocks are not reused below).
        let fill: Vec<_> = (0..3000).map(|i| holder(&format!("Holder{i}"))).collect();
        let (late, keep_late) = per_component("Late", N);
        eprintln!("per component: {early} B before the kinds fill, {late} B after");
        drop((keep_early, keep_late, fill));
        assert!(
            late <= early + 32,
            "a kind first seen late costs {late} B per component, one seen early {early} B"
        );
    });
}
