//! Chassis: components that contain and wire other components (Kamaelia.Chassis).

mod graphline;
mod pipeline;

pub use graphline::Graphline;
pub use pipeline::Pipeline;

use axon::{Context, Handle};

/// Activates `children` as children of the running chassis and returns their handles at once;
/// the chassis waits on them itself. A chassis that runs in a group (an `axon::Group`, or
/// [`Graphline::grouped`]) brings its children into the group's task (docs/semantics.md §10).
async fn run_children(cx: &Context, children: Vec<axon::Component>) -> Vec<Handle> {
    children
        .into_iter()
        .map(|c| cx.activate_beside(c))
        .collect()
}
