//! The shared test PKI (`kamaelia_test::pki`) as the PEM files the program's flags name.

use std::path::PathBuf;
use std::sync::Arc;

use kamaelia_test::pki::TestPki;
use rustls::ServerConfig;

use super::TempDir;

/// A CA, a leaf for `localhost`, `127.0.0.1` and `::1`, and their PEM files.
pub struct Pki {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pki: TestPki,
    _dir: TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let pki = TestPki::new();
        let dir = TempDir::new("pki");
        Pki {
            ca_pem: dir.write("ca.pem", pki.ca_pem().as_bytes()),
            cert_pem: dir.write("cert.pem", pki.chain_pem().as_bytes()),
            key_pem: dir.write("key.pem", pki.key_pem().as_bytes()),
            pki,
            _dir: dir,
        }
    }

    /// A rustls server configuration presenting the leaf.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.pki.server_config()
    }
}
