//! Kamaelia components on the axon runtime.
