//! Helpers shared by the integration tests: test PKI, a fault-injecting proxy, small servers,
//! and time bounds. Each test binary compiles this separately and uses only part of it.
#![allow(dead_code, unreachable_pub)]

pub mod certs;
pub mod proxy;
pub mod servers;

use std::future::Future;
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
