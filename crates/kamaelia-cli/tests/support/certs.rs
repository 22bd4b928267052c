//! The shared test PKI (`kamaelia_test::pki`) as the PEM files the program's flags name.

use std::path::PathBuf;
use std::sync::Arc;

use kamaelia_test::pki::{ChainPki, TestPki};
use rustls::ServerConfig;

use super::TempDir;

/// A CA, a leaf for `localhost`, `127.0.0.1` and `::1`, and their PEM files.
pub struct Pki {
    pub ca_pem: PathBuf,
    pub cert_pem: PathBuf,
    pub key_pem: PathBuf,
    pki: TestPki,
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Self {
        Self::from(TestPki::new())
    }

    /// The files of `pki`.
    pub fn from(pki: TestPki) -> Self {
        let dir = TempDir::new("pki");
        Pki {
            ca_pem: dir.write("ca.pem", pki.ca_pem().as_bytes()),
            cert_pem: dir.write("cert.pem", pki.chain_pem().as_bytes()),
            key_pem: dir.write("key.pem", pki.key_pem().as_bytes()),
            pki,
            dir,
        }
    }

    /// A rustls server configuration presenting the leaf.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.pki.server_config()
    }

    /// A rustls server configuration presenting the leaf, requiring a client certificate signed
    /// by the CA, and accepting only the ALPN protocol `alpn`.
    pub fn server_config_requiring_client_cert(&self, alpn: &[u8]) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.pki.ca_der()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.pki.chain_der(), self.pki.key_der())
            .unwrap();
        config.alpn_protocols = vec![alpn.to_vec()];
        Arc::new(config)
    }

    /// A client certificate for `name` signed by the CA, and its key: (cert, key) files.
    pub fn client_pem(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.pki.write_client_pem(name);
        (
            self.dir
                .write(&format!("{name}.pem"), &std::fs::read(cert.path()).unwrap()),
            self.dir
                .write(&format!("{name}.key"), &std::fs::read(key.path()).unwrap()),
        )
    }
}

/// A root, an intermediate and a leaf it signed, as PEM files: the root to trust, the leaf,
/// the intermediate, and the leaf's key.
pub struct ChainFiles {
    pub root_pem: PathBuf,
    pub leaf_only_pem: PathBuf,
    pub intermediate_pem: PathBuf,
    pub key_pem: PathBuf,
    _dir: TempDir,
}

impl ChainFiles {
    pub fn new() -> Self {
        let pki = ChainPki::new();
        let dir = TempDir::new("chain");
        ChainFiles {
            root_pem: dir.write("root.pem", pki.root_pem().as_bytes()),
            leaf_only_pem: dir.write("leaf.pem", pki.chain_pem(false).as_bytes()),
            intermediate_pem: dir.write("intermediate.pem", pki.intermediate_pem().as_bytes()),
            key_pem: dir.write("key.pem", pki.key_pem().as_bytes()),
            _dir: dir,
        }
    }
}
