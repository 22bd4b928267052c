//! The runtime's linkages, one binary: each module is one topic, named `links_<topic>`.

#[path = "../support/mod.rs"]
mod support;

mod links_basic;
mod links_errors;
mod links_passthrough;
mod links_relink;
