//! Test support shared by the workspace: the tests of `kamaelia` and of the `kamaelia` program,
//! the benchmark and the program's demo.
//!
//! - [`pki`]: a CA and a leaf it signed, made at run time with rcgen, as rustls configurations,
//!   DER and PEM files;
//! - [`servers`]: small loopback servers (echo, sink, TLS echo, silent, ...);
//! - [`proxy`]: a loopback proxy that injects faults (fragments, delays, resets, stalls);
//! - [`net`]: a listener whose accept queue is full, and a port nobody listens on;
//! - [`openssl`]: `openssl s_server` / `s_client` as peers, and the certificates rcgen cannot
//!   make (SHA-1-signed, RSA-1024, an encrypted key);
//! - [`examples`]: the locator of a crate's built examples;
//! - data and time helpers: [`random_bytes`], [`sha256`], [`bounded`], [`with_timeout`],
//!   [`AbortOnDrop`].
//!
//! Unpublished. Setup failures panic: in a test, a panic is how a broken setup is reported
//! (the demo and the benchmark use the fallible constructors).

pub mod examples;
pub mod net;
pub mod openssl;
pub mod pki;
pub mod proxy;
pub mod servers;

use std::future::Future;
use std::time::Duration;

use sha2::{Digest, Sha256};

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

/// `len` pseudo-random bytes from `seed` (xorshift64*): every byte value is likely present, the
/// same seed gives the same bytes, and it is fast in a debug build (a cryptographic generator
/// is several times slower, and the data only has to be unpredictable enough that a
/// reordering or a lost chunk changes the hash).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        data.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(len);
    data
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// True if `unshare` with these flags works here (root, or user namespaces allowed): tests
/// that need a namespace of their own skip, saying so, where it does not.
pub fn unshare_works(flags: &[&str]) -> bool {
    std::process::Command::new("unshare")
        .args(flags)
        .arg("true")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_depend_on_the_seed_only() {
        assert_eq!(random_bytes(7, 1000), random_bytes(7, 1000));
        assert_ne!(random_bytes(7, 1000), random_bytes(8, 1000));
        assert_eq!(random_bytes(7, 13).len(), 13);
        assert_eq!(random_bytes(7, 1000)[..13], random_bytes(7, 13)[..]);
    }

    #[test]
    fn sha256_of_nothing_is_the_known_value() {
        assert_eq!(sha256(b"")[..4], [0xe3, 0xb0, 0xc4, 0x42]);
    }
}
