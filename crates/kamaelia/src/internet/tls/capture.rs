//! What one client handshake saw before it succeeded or failed: the chain the server presented
//! and whether it asked for a client certificate.
//!
//! Each connection gets its own copy of the shared `ClientConfig` (which keeps the shared
//! session cache), with the verifier and the client-certificate resolver wrapped so that they
//! note what they were given here and then hand it, unchanged, to the real ones: nothing is
//! trusted that the real verifier does not trust.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ResolvesClientCert};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::PeerCertificates;

/// What one handshake noted.
#[derive(Debug, Default)]
pub(super) struct Seen {
    chain: Mutex<Option<PeerCertificates>>,
    certificate_requested: AtomicBool,
}

impl Seen {
    /// The chain the server presented, if it got that far.
    pub(super) fn chain(&self) -> Option<PeerCertificates> {
        // Nothing panics while this lock is held.
        self.chain.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the server sent a CertificateRequest.
    pub(super) fn certificate_requested(&self) -> bool {
        self.certificate_requested.load(Ordering::Relaxed)
    }
}

/// A copy of `base` whose verifier (`verifier`, the one `base` was built with) and client
/// certificate resolver note what they see in `seen`.
pub(super) fn observed_config(
    base: &ClientConfig,
    verifier: Arc<dyn ServerCertVerifier>,
    seen: &Arc<Seen>,
) -> Arc<ClientConfig> {
    let mut config = base.clone();
    config.client_auth_cert_resolver = Arc::new(NotingResolver {
        inner: base.client_auth_cert_resolver.clone(),
        seen: seen.clone(),
    });
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(NotingVerifier {
            inner: verifier,
            seen: seen.clone(),
        }));
    Arc::new(config)
}

struct NotingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Arc<Seen>,
}

impl fmt::Debug for NotingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotingVerifier")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for NotingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.seen.chain.lock().unwrap_or_else(|e| e.into_inner()) = Some(PeerCertificates(chain));
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[derive(Debug)]
struct NotingResolver {
    inner: Arc<dyn ResolvesClientCert>,
    seen: Arc<Seen>,
}

impl ResolvesClientCert for NotingResolver {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.seen
            .certificate_requested
            .store(true, Ordering::Relaxed);
        self.inner.resolve(root_hint_subjects, sigschemes)
    }

    fn only_raw_public_keys(&self) -> bool {
        self.inner.only_raw_public_keys()
    }

    fn has_certs(&self) -> bool {
        self.inner.has_certs()
    }
}
