//! Kamaelia.Util: small helpers for wiring systems together — [`OneShot`], [`ConsoleReader`],
//! [`ConsoleEchoer`], [`RateLimiter`].

mod console;
mod one_shot;
mod rate_limiter;

pub use console::{ConsoleEchoer, ConsoleError, ConsoleReader, ReadMode};
pub use one_shot::{OneShot, OneShotError};
pub use rate_limiter::{RateLimiter, DEFAULT_BURST};

/// Checks that a component module's `# Inboxes` / `# Outboxes` tables have one row per declared
/// box, with the description the component declares (the box list is the single source).
#[cfg(test)]
pub(crate) fn assert_box_docs(c: &axon::Component, source: &str) {
    for spec in c.boxes() {
        let row = format!("/// | `{}` | ", spec.name);
        let cell = format!(" | {} |", spec.description);
        assert!(
            source
                .lines()
                .any(|l| l.starts_with(&row) && l.ends_with(&cell)),
            "no doc table row for box {} ending with {cell:?}",
            spec.name
        );
    }
}
