//! Helpers shared by the integration tests: test PKI, a fault-injecting proxy, small servers,
//! and time bounds. Each test binary compiles this separately and uses only part of it.
#![allow(dead_code, unreachable_pub)]

pub mod certs;
pub mod proxy;
pub mod servers;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The bound on any single test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `fut`, panicking if it takes longer than `limit`.
pub async fn with_timeout<F: Future>(limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("test exceeded its time bound of {limit:?}"),
    }
}

/// Runs `fut` within [`TEST_TIMEOUT`].
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    with_timeout(TEST_TIMEOUT, fut).await
}

/// A spawned task that is aborted when this is dropped, so helpers never outlive their test.
#[derive(Debug)]
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The built example `name` of this crate, next to the test binaries
/// (`target/<profile>/deps/..` → `target/<profile>/examples/`). `cargo test` builds examples;
/// when only one test target was built, it is built here with the same cargo, profile and
/// target directory, so a test that needs it never silently skips.
pub fn example_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("the target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-p", "kamaelia", "--example", name]);
        cargo.arg("--target-dir").arg(target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(profile) => {
                cargo.args(["--profile", profile]);
            }
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the {name} example failed");
    }
    bin
}
