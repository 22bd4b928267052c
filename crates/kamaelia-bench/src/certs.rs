//! A CA and a server certificate made with rcgen when the suite starts, and the rustls
//! configurations both sides build from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use kamaelia::internet::{TlsSettings, Trust};
use kamaelia_test::pki::{TestPki, LOOPBACK_NAMES};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A CA, a leaf it signed for `localhost`, `127.0.0.1` and `::1`, and the CA as a PEM file for
/// the command-line peers.
pub(crate) struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_pem_file: PathBuf,
    chain_pem_file: PathBuf,
    key_pem_file: PathBuf,
}

impl Pki {
    /// Makes the certificates (the workspace's one builder, `kamaelia_test::pki`) and writes
    /// the CA's PEM under `dir`.
    pub(crate) fn new(dir: &Path) -> Result<Self> {
        let pki = TestPki::generate("kamaelia-bench", LOOPBACK_NAMES, false)?;
        let ca_pem_file = dir.join("ca.pem");
        let chain_pem_file = dir.join("server-chain.pem");
        let key_pem_file = dir.join("server-key.pem");
        for (file, pem) in [
            (&ca_pem_file, pki.ca_pem()),
            (&chain_pem_file, pki.chain_pem()),
            (&key_pem_file, pki.key_pem()),
        ] {
            std::fs::write(file, pem).with_context(|| format!("writing {}", file.display()))?;
        }
        Ok(Pki {
            ca: pki.ca_der(),
            chain: pki.chain_der(),
            key: pki.key_der(),
            ca_pem_file,
            chain_pem_file,
            key_pem_file,
        })
    }

    /// The CA certificate as a PEM file.
    pub(crate) fn ca_pem_file(&self) -> &Path {
        &self.ca_pem_file
    }

    /// The server's certificate chain and key as PEM files, for the sink process.
    pub(crate) fn server_pem_files(&self) -> (&Path, &Path) {
        (&self.chain_pem_file, &self.key_pem_file)
    }

    /// The server configuration the hand-written servers use (rustls defaults, ring).
    pub(crate) fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        Ok(Arc::new(config))
    }

    /// The client configuration the hand-written clients use: trusts only the CA, verifies.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone())?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// The library's TLS settings trusting only the CA.
    pub(crate) fn settings(&self) -> TlsSettings {
        TlsSettings::new().with_trust(Trust::Certificates(vec![self.ca.clone()]))
    }
}

/// The sink process's server configuration, from the PEM files [`Pki::server_pem_files`]
/// wrote: no TLS 1.3 session tickets. A sender that never reads (ncat --send-only, a sender
/// that closes once written) would leave the tickets unread, and closing a socket with unread
/// data sends a reset that can cost the sink the end of the data.
pub(crate) fn sink_config_from_files(chain: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    use rustls_pki_types::pem::PemObject as _;
    let chain = CertificateDer::pem_file_iter(chain)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
