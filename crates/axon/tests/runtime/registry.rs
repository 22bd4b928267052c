//! Named services: Kamaelia's Coordinating Assistant Tracker (docs/semantics.md §7).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::within;
use axon::{Component, Registry, RegistryError, Scheduler};
use tokio::sync::Barrier;

/// §7: register, look up (with the right and a wrong type), list, deregister.
#[test]
fn register_lookup_deregister() {
    let reg = Registry::new();
    reg.register("selector", String::from("the selector"))
        .unwrap();
    reg.register("answer", 42_u32).unwrap();
    assert_eq!(*reg.lookup::<String>("selector").unwrap(), "the selector");
    assert_eq!(*reg.lookup::<u32>("answer").unwrap(), 42);
    assert!(matches!(
        reg.lookup::<u64>("answer"),
        Err(RegistryError::WrongType { name, .. }) if name == "answer"
    ));
    assert_eq!(
        reg.names(),
        vec!["answer".to_string(), "selector".to_string()]
    );
    reg.deregister("answer").unwrap();
    assert_eq!(reg.names(), vec!["selector".to_string()]);
}

/// §7: a name that is taken gives `AlreadyExists` (and keeps the first service); a missing name
/// gives `Missing` on lookup and on deregister (Kamaelia's `MultipleServiceDeletion`).
#[test]
fn duplicate_and_missing_names_are_errors() {
    let reg = Registry::new();
    reg.register("svc", 1_u8).unwrap();
    assert_eq!(
        reg.register("svc", 2_u8),
        Err(RegistryError::AlreadyExists("svc".into()))
    );
    assert_eq!(*reg.lookup::<u8>("svc").unwrap(), 1);
    assert_eq!(
        reg.lookup::<u8>("nope").unwrap_err(),
        RegistryError::Missing("nope".into())
    );
    reg.deregister("svc").unwrap();
    assert_eq!(
        reg.deregister("svc"),
        Err(RegistryError::Missing("svc".into()))
    );
    assert!(reg
        .lookup::<u8>("svc")
        .unwrap_err()
        .to_string()
        .contains("svc"));
}

/// §7: `get_or_register` called at once from many tasks creates the service exactly once; every
/// caller gets that same instance and exactly one is told it created it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_or_register_creates_once_under_concurrency() {
    const TASKS: usize = 32;
    within("32 racing callers", async {
        let reg = Arc::new(Registry::new());
        let made = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let (reg, made, barrier) = (reg.clone(), made.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                reg.get_or_register("selector", || {
                    made.fetch_add(1, Ordering::SeqCst);
                    std::thread::yield_now();
                    String::from("one selector")
                })
                .unwrap()
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(made.load(Ordering::SeqCst), 1);
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        assert!(results.iter().all(|(s, _)| Arc::ptr_eq(s, &results[0].0)));
    })
    .await;
}

/// §7: each scheduler owns a registry, and a component reaches its scheduler's registry through
/// `Context::services`.
#[tokio::test]
async fn components_share_their_schedulers_registry() {
    within("register from a component", async {
        let sched = Scheduler::new();
        let mut b = Component::build("Registrar");
        b.control();
        let c = b.main(|cx| async move {
            cx.services()
                .register("from-a-component", cx.label().to_string())?;
            Ok(())
        });
        let label = c.label().to_string();
        let report = sched
            .run(async {
                c.activate();
            })
            .await;
        assert!(report.is_ok());
        assert_eq!(
            *sched
                .services()
                .lookup::<String>("from-a-component")
                .unwrap(),
            label
        );
        assert!(Scheduler::new()
            .services()
            .lookup::<String>("from-a-component")
            .is_err());
    })
    .await;
}
