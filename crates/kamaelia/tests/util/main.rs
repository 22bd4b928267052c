//! The util components' tests, one binary: each module is one topic, named `util_<topic>`.

mod util_components;
mod util_rate_limiter;
