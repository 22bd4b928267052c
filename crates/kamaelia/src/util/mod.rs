//! Kamaelia.Util: small helpers for wiring systems together — [`OneShot`], [`ConsoleReader`],
//! [`ConsoleEchoer`], [`RateLimiter`].

mod console;
mod one_shot;
mod rate_limiter;

pub use console::{ConsoleEchoer, ConsoleError, ConsoleReader, ReadMode};
pub use one_shot::{OneShot, OneShotError};
pub use rate_limiter::{RateLimiter, DEFAULT_BURST};
