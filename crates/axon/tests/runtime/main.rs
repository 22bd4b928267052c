//! The runtime itself, one binary: running, control and shutdown, failures, the graph, the
//! registry. Modules keep their names. `backpressure` (it measures this process's RSS) and
//! `run_interrupt` (real signals to a child process) are binaries of their own.

#[path = "../support/mod.rs"]
mod support;

mod control_stop;
mod failures;
mod graph;
mod groups;
mod rare;
mod registry;
mod runtime_basics;
mod scheduler_run;
