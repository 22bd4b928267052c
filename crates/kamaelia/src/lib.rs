//! Kamaelia components on the axon runtime.
pub mod chassis;
pub mod internet;

pub use axon;
pub use chassis::{Graphline, Pipeline};
