//! The internet components' tests, one binary: each module is one topic, named
//! `internet_<component>_<topic>`. The shared pieces (PKI, small servers, fault proxy, example
//! locator) come from the `kamaelia-test` crate; `client` and `server` drive a TcpClient and a
//! TcpServer from a test.
//!
//! Tests that measure their own process (open fds, RSS, descriptor limits) are separate
//! binaries, so that other tests' sockets and buffers do not disturb the count:
//! `internet_client_backpressure`, `internet_client_leaks`, `internet_server_flood_memory` and
//! `internet_server_scale`.

#[path = "../support/client.rs"]
mod client;
#[path = "../support/server.rs"]
mod server;

mod internet_client_errors;
mod internet_client_examples;
mod internet_client_halfclose;
mod internet_client_integrity;
mod internet_client_names;
mod internet_client_rare;
mod internet_client_shutdown;
mod internet_client_tls;
mod internet_csa_duplex;
mod internet_proxy;
mod internet_relay;
mod internet_selector;
mod internet_server_basic;
mod internet_server_example;
mod internet_server_hostile;
mod internet_server_lifecycle;
mod internet_server_tls;
mod internet_starttls;
mod internet_starttls_protocols;
mod internet_support;
mod internet_tls;
mod internet_tls_peers;
mod internet_tls_pem;
mod internet_unix;
