//! The control handling every source and sink here shares lives in axon, beside the contract it
//! implements (docs/semantics.md §5).

pub(crate) use axon::{ControlWatch, Undelivered};
