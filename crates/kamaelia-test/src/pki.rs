//! A CA and a leaf it signed, made at run time with rcgen, as DER, PEM files and rustls
//! configurations. One builder for the tests, the benchmark and the program's demo.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kamaelia::internet::ServerTls;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names a default leaf is valid for.
pub const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A CA and one leaf certificate signed by it.
pub struct TestPki {
    ca: Certificate,
    ca_key: KeyPair,
    leaf: Certificate,
    leaf_key: KeyPair,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A CA and a leaf for `localhost`, `127.0.0.1` and `::1`.
    pub fn new() -> Self {
        Self::with_names(LOOPBACK_NAMES)
    }

    /// A CA and a leaf valid for exactly `names` (DNS names or IP literals).
    pub fn with_names(names: &[&str]) -> Self {
        Self::generate("Kamaelia test", names, false).expect("rcgen makes the test PKI")
    }

    /// A CA and a leaf for `localhost` that expired in 2001.
    pub fn expired() -> Self {
        Self::generate("Kamaelia test", &["localhost"], true).expect("rcgen makes the test PKI")
    }

    /// A CA and a leaf for `localhost` whose name is only in its subject's CN: no
    /// subjectAltName extension at all (which rustls, like browsers, does not accept).
    pub fn cn_only() -> Self {
        let mut leaf_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        Self::with_leaf("Kamaelia test", leaf_params).expect("rcgen makes the test PKI")
    }

    /// A CA named "`label` CA" and a leaf named "`label` server" valid for `names`; with
    /// `expired`, the leaf was valid in 2000 only.
    pub fn generate(label: &str, names: &[&str], expired: bool) -> Result<Self, rcgen::Error> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut leaf_params = CertificateParams::new(names)?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, format!("{label} server"));
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            leaf_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            leaf_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        Self::with_leaf(label, leaf_params)
    }

    /// A CA named "`label` CA" and a leaf made from `leaf_params`.
    fn with_leaf(label: &str, leaf_params: CertificateParams) -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{label} CA"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key)?;
        Ok(Self {
            ca,
            ca_key,
            leaf,
            leaf_key,
        })
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The server's chain (leaf, then CA), DER.
    pub fn chain_der(&self) -> Vec<CertificateDer<'static>> {
        vec![self.leaf.der().clone(), self.ca.der().clone()]
    }

    /// The server's chain (leaf, then CA), PEM.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.leaf.pem(), self.ca.pem())
    }

    /// The leaf's private key, DER (PKCS#8).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()))
    }

    /// The leaf's private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.leaf_key.serialize_pem()
    }

    /// The server identity, as the library's [`ServerTls`].
    pub fn server_tls(&self) -> ServerTls {
        ServerTls::from_der(self.chain_der(), self.key_der())
    }

    /// A rustls server configuration presenting the leaf.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server_tls()
            .server_config()
            .expect("the library accepts the test leaf")
    }

    /// A client certificate for `name` signed by the CA, with its key (for mutual TLS).
    pub fn client_identity(
        &self,
        name: &str,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let (cert, key) = self.client_cert(name);
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    fn client_cert(&self, name: &str) -> (Certificate, KeyPair) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert, key)
    }

    /// A client certificate for `name` signed by the CA, with its key, as PEM files (chain,
    /// key).
    pub fn write_client_pem(&self, name: &str) -> (TempFile, TempFile) {
        let (cert, key) = self.client_cert(name);
        (
            TempFile::new("client.pem", cert.pem().as_bytes()),
            TempFile::new("client-key.pem", key.serialize_pem().as_bytes()),
        )
    }

    /// Writes the CA certificate as PEM to a fresh temporary file, removed on drop.
    pub fn write_ca_pem(&self) -> TempFile {
        TempFile::new("ca.pem", self.ca_pem().as_bytes())
    }

    /// Writes the leaf chain and key as PEM to fresh temporary files (chain, key).
    pub fn write_server_pem(&self) -> (TempFile, TempFile) {
        (
            TempFile::new("chain.pem", self.chain_pem().as_bytes()),
            TempFile::new("key.pem", self.key_pem().as_bytes()),
        )
    }
}

/// A root CA, an intermediate CA it signed, and a leaf for `localhost`, `127.0.0.1` and `::1`
/// that the intermediate signed: a server must send the intermediate for a client trusting
/// only the root to verify the leaf.
pub struct ChainPki {
    root: Certificate,
    intermediate: Certificate,
    leaf: Certificate,
    leaf_key: KeyPair,
}

impl std::fmt::Debug for ChainPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainPki").finish_non_exhaustive()
    }
}

impl Default for ChainPki {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainPki {
    /// A root "Kamaelia test root CA", an intermediate "Kamaelia test intermediate CA", and a
    /// leaf "Kamaelia test server".
    pub fn new() -> Self {
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p
        };
        let root_key = KeyPair::generate().unwrap();
        let root = ca("Kamaelia test root CA").self_signed(&root_key).unwrap();
        let inter_key = KeyPair::generate().unwrap();
        let intermediate = ca("Kamaelia test intermediate CA")
            .signed_by(&inter_key, &root, &root_key)
            .unwrap();
        let names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| (*n).to_owned()).collect();
        let mut leaf_params = CertificateParams::new(names).unwrap();
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "Kamaelia test server");
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = leaf_params
            .signed_by(&leaf_key, &intermediate, &inter_key)
            .unwrap();
        Self {
            root,
            intermediate,
            leaf,
            leaf_key,
        }
    }

    /// The root CA certificate, DER (what a client trusts).
    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.der().clone()
    }

    /// The root CA certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// The chain a server sends: the leaf, then the intermediate unless `with_intermediate` is
    /// false (the misconfiguration a client sees as an unknown issuer).
    pub fn chain_der(&self, with_intermediate: bool) -> Vec<CertificateDer<'static>> {
        let mut chain = vec![self.leaf.der().clone()];
        if with_intermediate {
            chain.push(self.intermediate.der().clone());
        }
        chain
    }

    /// The intermediate CA certificate, PEM.
    pub fn intermediate_pem(&self) -> String {
        self.intermediate.pem()
    }

    /// [`chain_der`](Self::chain_der) as PEM.
    pub fn chain_pem(&self, with_intermediate: bool) -> String {
        let mut pem = self.leaf.pem();
        if with_intermediate {
            pem.push_str(&self.intermediate.pem());
        }
        pem
    }

    /// The leaf's private key, DER (PKCS#8).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()))
    }

    /// The leaf's private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.leaf_key.serialize_pem()
    }

    /// A rustls server configuration sending [`chain_der`](Self::chain_der).
    pub fn server_config(&self, with_intermediate: bool) -> Arc<ServerConfig> {
        ServerTls::from_der(self.chain_der(with_intermediate), self.key_der())
            .server_config()
            .expect("the library accepts the test leaf")
    }
}

/// A file in the temporary directory with a unique name, removed when dropped.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Creates a file whose name ends in `suffix`, holding `contents`.
    pub fn new(suffix: &str, contents: &[u8]) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("kamaelia-test-{}-{n}-{suffix}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Self { path }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
