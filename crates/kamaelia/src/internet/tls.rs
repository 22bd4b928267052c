//! TLS settings, rustls configurations built from them, handshakes, and what can go wrong.
//!
//! # How it works
//!
//! [`TlsSettings`] describes a client: which certificates to trust ([`Trust`]), the name to
//! verify (the host connected to unless overridden), an optional client certificate, ALPN
//! protocols and a handshake deadline. [`TlsSettings::client_config`] turns it into a
//! [`rustls::ClientConfig`] on the `ring` provider, always verifying the chain and the name.
//! [`TlsSettings::connect`] runs a handshake over any byte stream (a fresh TCP stream or one
//! switched to TLS mid-stream, as Kamaelia's `makessl` inbox does) and returns the stream with a
//! [`TlsInfo`]. [`ServerTls`] builds a [`rustls::ServerConfig`] from a certificate and key.
//!
//! # Errors
//!
//! Every failure is a [`TlsError`]; [`classify`] maps the `io::Error`s tokio-rustls returns
//! (which carry a [`rustls::Error`] inside) to it.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerConfig;
use rustls::{CertificateError, CommonState, ProtocolVersion, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The handshake deadline unless [`TlsSettings::with_handshake_timeout`] says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest PEM file read (CA file, certificate chain, private key): 10 MiB. A longer file,
/// or an endless one such as `/dev/zero`, is a [`TlsError::Config`] error after reading this
/// much, never more memory.
pub const MAX_PEM_BYTES: u64 = 10 * 1024 * 1024;

/// Which certificate authorities a client trusts.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// Mozilla's root store, built into the binary (works offline, no system access).
    #[default]
    WebPkiRoots,
    /// The certificates in a PEM file (read when the configuration is built; at most
    /// [`MAX_PEM_BYTES`]).
    PemFile(PathBuf),
    /// The operating system's store, via `rustls-native-certs`.
    System,
    /// These certificates, already in DER.
    Certificates(Vec<CertificateDer<'static>>),
}

/// How a client speaks TLS: trust, the name to verify, a client certificate, ALPN, a deadline.
#[derive(Clone)]
pub struct TlsSettings {
    trust: Trust,
    server_name: Option<String>,
    client_cert: Option<Arc<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>>,
    handshake_timeout: Duration,
    alpn: Vec<Vec<u8>>,
    /// The configuration built from these settings, shared by clones: every connection made
    /// with them reuses one root store and one session cache (so reconnects can resume).
    built: Arc<Mutex<Option<Arc<ClientConfig>>>>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("trust", &self.trust)
            .field("server_name", &self.server_name)
            .field("client_cert", &self.client_cert.is_some())
            .field("handshake_timeout", &self.handshake_timeout)
            .field("alpn", &self.alpn)
            .finish()
    }
}

impl TlsSettings {
    /// Mozilla's roots, the host's own name, no client certificate, a 10 s handshake deadline.
    pub fn new() -> Self {
        Self {
            trust: Trust::default(),
            server_name: None,
            client_cert: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            alpn: Vec::new(),
            built: Arc::default(),
        }
    }

    /// Trusts `trust` instead of Mozilla's roots.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self.built = Arc::default();
        self
    }

    /// Verifies (and sends as SNI) `name` instead of the host connected to.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Presents `chain` (leaf first) with its private `key` when the server asks.
    pub fn with_client_cert(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.client_cert = Some(Arc::new((chain, key)));
        self.built = Arc::default();
        self
    }

    /// Gives up on a handshake that has not finished after `timeout`.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Offers these ALPN protocols, most preferred first.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self.built = Arc::default();
        self
    }

    /// The trusted authorities.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The name to verify when connecting to `host`: the override if set, else `host` itself
    /// (an IP literal, bracketed or not, is verified as an IP address).
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let bare = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        ServerName::try_from(bare.to_owned())
            .map_err(|_| TlsError::InvalidServerName(name.to_owned()))
    }

    /// Builds the rustls client configuration: the `ring` provider, its safe default protocol
    /// versions, these roots, verification of chain and name always on.
    ///
    /// Reads the PEM file or the system store synchronously, the first time only: the result is
    /// kept and shared by every clone of these settings (so connections share a session cache
    /// and can resume). A failure is not kept: the next call tries again.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        built_once(&self.built, || self.build_client_config())
    }

    fn build_client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let roots = self.root_store()?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &self.client_cert {
            Some(identity) => {
                let (chain, key) = identity.as_ref();
                builder
                    .with_client_auth_cert(chain.clone(), key.clone_key())
                    .map_err(|e| TlsError::Config(format!("client certificate: {e}")))?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(config))
    }

    /// Runs a client handshake over `io` within the handshake deadline, verifying the
    /// certificate for the name [`server_name_for`](Self::server_name_for) gives for `host`.
    ///
    /// `io` must have no plaintext from the server buffered elsewhere (see
    /// [`TlsError::PlaintextInjection`]). The configuration is built once per settings (and
    /// their clones); see [`client_config`](Self::client_config).
    pub async fn connect<IO>(
        &self,
        host: &str,
        io: IO,
    ) -> Result<(TlsStream<IO>, TlsInfo), TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self.server_name_for(host)?;
        let config = self.client_config()?;
        let stream = handshake(config, name, io, self.handshake_timeout).await?;
        let info = TlsInfo::from_common_state(stream.get_ref().1)
            .ok_or(TlsError::HandshakeFailed(HandshakeFailure::NoVersion))?;
        Ok((stream, info))
    }

    fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        match &self.trust {
            Trust::WebPkiRoots => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Trust::PemFile(path) => {
                for cert in read_certificates(path)? {
                    roots.add(cert).map_err(|e| {
                        TlsError::Config(format!(
                            "{}: unusable CA certificate: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            Trust::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    return Err(TlsError::Config(format!(
                        "no usable certificates in the system store{why}"
                    )));
                }
            }
            Trust::Certificates(certs) => {
                for cert in certs {
                    roots
                        .add(cert.clone())
                        .map_err(|e| TlsError::Config(format!("unusable CA certificate: {e}")))?;
                }
            }
        }
        Ok(roots)
    }
}

/// Runs a client handshake over `io` with `config`, verifying `name`, within `timeout`.
pub async fn handshake<IO>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    io: IO,
    timeout: Duration,
) -> Result<TlsStream<IO>, TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let expected = name.to_str().into_owned();
    let connect = TlsConnector::from(config).connect(name, io);
    match tokio::time::timeout(timeout, connect).await {
        Err(_elapsed) => Err(TlsError::HandshakeTimeout(timeout)),
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(err)) => Err(match classify(&err) {
            TlsError::NameMismatch { .. } => TlsError::NameMismatch {
                expected: Some(expected),
            },
            // Outside a handshake a bare EOF means a missing close_notify; inside one it means
            // the peer gave up on (or never started) TLS.
            TlsError::ClosedWithoutCloseNotify => {
                TlsError::HandshakeFailed(HandshakeFailure::PeerClosed)
            }
            other => other,
        }),
    }
}

/// Runs a server handshake over `io` with `config`, within `timeout`: the server side of
/// [`handshake`]. Bytes already read from the client belong in `io` (a STARTTLS server replays
/// them first).
pub async fn accept<IO>(
    config: Arc<ServerConfig>,
    io: IO,
    timeout: Duration,
) -> Result<(tokio_rustls::server::TlsStream<IO>, TlsInfo), TlsError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let accept = TlsAcceptor::from(config).accept(io);
    let stream = match tokio::time::timeout(timeout, accept).await {
        Err(_elapsed) => return Err(TlsError::HandshakeTimeout(timeout)),
        Ok(Err(e)) => return Err(classify(&e)),
        Ok(Ok(stream)) => stream,
    };
    let info = TlsInfo::from_common_state(stream.get_ref().1)
        .ok_or(TlsError::HandshakeFailed(HandshakeFailure::NoVersion))?;
    Ok((stream, info))
}

/// A server's certificate chain and key, from which a [`rustls::ServerConfig`] is built.
pub struct ServerTls {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
    /// The configuration built from these, shared by clones.
    built: Arc<Mutex<Option<Arc<ServerConfig>>>>,
}

impl Clone for ServerTls {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            alpn: self.alpn.clone(),
            built: self.built.clone(),
        }
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("chain_len", &self.chain.len())
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// A server identity from a DER chain (leaf first) and its private key.
    pub fn from_der(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        Self {
            chain,
            key,
            alpn: Vec::new(),
            built: Arc::default(),
        }
    }

    /// A server identity from a PEM certificate chain file and a PEM private key file (each at
    /// most [`MAX_PEM_BYTES`]).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let chain = read_certificates(cert.as_ref())?;
        let key_path = key.as_ref();
        let pem = read_pem(key_path)?;
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsError::Config(format!(
                "{}: no private key in the file",
                key_path.display()
            )),
            other => TlsError::Config(format!("{}: {other}", key_path.display())),
        })?;
        Ok(Self::from_der(chain, key))
    }

    /// Accepts these ALPN protocols, most preferred first.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Self {
        self.alpn = protocols;
        self.built = Arc::default();
        self
    }

    /// Runs a server handshake over `io` within [`DEFAULT_HANDSHAKE_TIMEOUT`], mirroring
    /// [`TlsSettings::connect`]: the configuration is built once (see
    /// [`server_config`](Self::server_config)) and shared by clones.
    pub async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<(tokio_rustls::server::TlsStream<IO>, TlsInfo), TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        accept(self.server_config()?, io, DEFAULT_HANDSHAKE_TIMEOUT).await
    }

    /// Builds the rustls server configuration on the `ring` provider, without client
    /// authentication; fails if the key does not match the certificate or is unsupported.
    /// Built the first time only, then shared by clones (a failure is not kept).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        built_once(&self.built, || self.build_server_config())
    }

    fn build_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("server certificate or key: {e}")))?;
        config.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(config))
    }
}

/// What a finished handshake agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The protocol version, e.g. `"TLSv1.3"`.
    pub version: String,
    /// The IANA name of the cipher suite, e.g. `"TLS13_AES_256_GCM_SHA384"`.
    pub cipher_suite: String,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<Vec<u8>>,
}

impl TlsInfo {
    /// Reads what a connection agreed on; `None` until its handshake has finished.
    pub fn from_common_state(state: &CommonState) -> Option<Self> {
        let version = match state.protocol_version()? {
            ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        };
        let suite = state.negotiated_cipher_suite()?.suite();
        let cipher_suite = suite
            .as_str()
            .map_or_else(|| format!("{suite:?}"), str::to_owned);
        Some(Self {
            version,
            cipher_suite,
            alpn: state.alpn_protocol().map(<[u8]>::to_vec),
        })
    }
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.version, self.cipher_suite)
    }
}

/// Why TLS could not be set up or went wrong.
///
/// `Clone` so it can travel in messages.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate chain does not lead to a trusted root, or is expired, revoked
    /// or malformed; rustls's reason says which (e.g. [`CertificateError::Expired`]).
    UntrustedCertificate(CertificateError),
    /// The server's certificate is valid but not for the name that was verified.
    NameMismatch {
        /// The name verified, when known ([`classify`] alone may not know it).
        expected: Option<String>,
    },
    /// The handshake failed for another reason: an alert from the peer, no common protocol
    /// version or cipher suite, the peer closing mid-handshake.
    HandshakeFailed(HandshakeFailure),
    /// The peer answered with bytes that are not TLS records (a plaintext server, garbage).
    NotTls,
    /// The handshake had not finished when its deadline passed.
    HandshakeTimeout(Duration),
    /// The name to verify is neither a DNS name nor an IP address.
    InvalidServerName(String),
    /// The settings could not be turned into a configuration: a missing or unreadable file, no
    /// certificate or key in it, a key that does not fit.
    Config(String),
    /// Plaintext arrived after the go-ahead to start TLS (the STARTTLS reply, or the request to
    /// switch) and before the handshake. A man in the middle could have injected it, to be
    /// taken for part of the protected session, so the switch is refused.
    PlaintextInjection {
        /// How many plaintext bytes arrived after the go-ahead.
        bytes: usize,
    },
    /// TLS was requested on a connection already using it.
    AlreadyTls,
    /// TLS was requested before the connection was established, or after it closed.
    NotConnected,
    /// The peer closed the connection without a TLS `close_notify`: the data may be truncated.
    ClosedWithoutCloseNotify,
    /// The transport failed under TLS (reset, broken pipe).
    Io(Arc<io::Error>),
}

/// Why a TLS handshake failed, when it was not the certificate ([`TlsError::HandshakeFailed`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// rustls refused or failed the handshake: an alert from the peer, no common protocol
    /// version or cipher suite, a peer misbehaving. Kept as rustls's own error, to match on.
    Rustls(rustls::Error),
    /// The peer closed the connection before the handshake finished.
    PeerClosed,
    /// The handshake ended without a protocol version (rustls never does this).
    NoVersion,
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::Rustls(e) => fmt::Display::fmt(e, f),
            HandshakeFailure::PeerClosed => {
                f.write_str("the peer closed the connection during the handshake")
            }
            HandshakeFailure::NoVersion => f.write_str("no protocol version after the handshake"),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::UntrustedCertificate(reason) => {
                write!(f, "the server's certificate is not trusted: {reason}")
            }
            TlsError::NameMismatch { expected: None } => {
                f.write_str("the server's certificate is not valid for the requested name")
            }
            TlsError::NameMismatch {
                expected: Some(expected),
            } => {
                write!(f, "the server's certificate is not valid for {expected:?}")
            }
            TlsError::HandshakeFailed(reason) => write!(f, "the TLS handshake failed: {reason}"),
            TlsError::NotTls => f.write_str("the peer did not speak TLS"),
            TlsError::HandshakeTimeout(after) => {
                write!(f, "the TLS handshake timed out after {after:?}")
            }
            TlsError::InvalidServerName(name) => write!(f, "invalid TLS server name {name:?}"),
            TlsError::Config(reason) => write!(f, "invalid TLS configuration: {reason}"),
            TlsError::PlaintextInjection { bytes } => write!(
                f,
                "refusing to start TLS: {bytes} bytes of plaintext arrived after the go-ahead \
                 (possible injection)"
            ),
            TlsError::AlreadyTls => f.write_str("the connection is already using TLS"),
            TlsError::NotConnected => f.write_str("no open connection to start TLS on"),
            TlsError::ClosedWithoutCloseNotify => {
                f.write_str("the peer closed the connection without a TLS close_notify")
            }
            TlsError::Io(_) => f.write_str("the connection failed under TLS"),
        }
    }
}

impl StdError for TlsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            TlsError::Io(source) => Some(source.as_ref()),
            TlsError::HandshakeFailed(HandshakeFailure::Rustls(e)) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for TlsError {
    fn from(err: io::Error) -> Self {
        match classify(&err) {
            TlsError::Io(_) => TlsError::Io(Arc::new(err)),
            other => other,
        }
    }
}

/// Maps an error from a tokio-rustls stream (handshake, read or write) to a [`TlsError`].
pub fn classify(err: &io::Error) -> TlsError {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return classify_rustls(tls);
    }
    match err.kind() {
        io::ErrorKind::UnexpectedEof => TlsError::ClosedWithoutCloseNotify,
        io::ErrorKind::NotConnected => TlsError::NotConnected,
        kind => TlsError::Io(Arc::new(io::Error::new(kind, err.to_string()))),
    }
}

fn classify_rustls(err: &rustls::Error) -> TlsError {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => {
            TlsError::NameMismatch { expected: None }
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected,
            ..
        }) => TlsError::NameMismatch {
            expected: Some(expected.to_str().into_owned()),
        },
        rustls::Error::InvalidCertificate(other) => TlsError::UntrustedCertificate(other.clone()),
        rustls::Error::InvalidMessage(_) => TlsError::NotTls,
        other => TlsError::HandshakeFailed(HandshakeFailure::Rustls(other.clone())),
    }
}

/// The configuration kept in `cell`, built by `build` the first time; a failure is not kept.
fn built_once<T>(
    cell: &Mutex<Option<Arc<T>>>,
    build: impl FnOnce() -> Result<Arc<T>, TlsError>,
) -> Result<Arc<T>, TlsError> {
    // Nothing panics while this lock is held.
    let mut built = cell.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(config) = built.as_ref() {
        return Ok(config.clone());
    }
    let config = build()?;
    *built = Some(config.clone());
    Ok(config)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a whole PEM file, refusing one longer than [`MAX_PEM_BYTES`] (it stops reading
/// there, so an endless file costs no more).
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let bad = |what: String| TlsError::Config(format!("{}: {what}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut pem = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if pem.len() as u64 > MAX_PEM_BYTES {
        return Err(bad(format!(
            "longer than {} MiB, too long for a PEM file",
            MAX_PEM_BYTES / (1024 * 1024)
        )));
    }
    Ok(pem)
}

/// Reads every certificate in a PEM file; a missing file, one too long, or one without
/// certificates is an error naming the path.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |what: String| TlsError::Config(format!("{}: {what}", path.display()));
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificates in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_maps_rustls_errors() {
        let wrap = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        assert!(matches!(
            classify(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))),
            TlsError::UntrustedCertificate(CertificateError::UnknownIssuer)
        ));
        assert!(matches!(
            classify(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::Expired
            ))),
            TlsError::UntrustedCertificate(CertificateError::Expired)
        ));
        assert!(matches!(
            classify(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::BadSignature
            ))),
            TlsError::UntrustedCertificate(_)
        ));
        assert!(matches!(
            classify(&wrap(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName
            ))),
            TlsError::NameMismatch { expected: None }
        ));
        assert!(matches!(
            classify(&wrap(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))),
            TlsError::NotTls
        ));
        assert!(matches!(
            classify(&wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            ))),
            TlsError::HandshakeFailed(HandshakeFailure::Rustls(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            )))
        ));
        assert!(matches!(
            classify(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            TlsError::ClosedWithoutCloseNotify
        ));
        let reset = TlsError::from(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(matches!(&reset, TlsError::Io(e) if e.kind() == io::ErrorKind::ConnectionReset));
        assert!(reset.source().is_some());
    }

    #[test]
    fn server_names_accept_hosts_and_ip_literals() {
        let settings = TlsSettings::new();
        assert!(settings.server_name_for("localhost").is_ok());
        assert!(settings.server_name_for("127.0.0.1").is_ok());
        assert!(settings.server_name_for("[::1]").is_ok());
        assert!(matches!(
            settings.server_name_for("not a name"),
            Err(TlsError::InvalidServerName(_))
        ));
        let overridden = TlsSettings::new().with_server_name("example.test");
        assert_eq!(
            overridden.server_name_for("127.0.0.1").unwrap().to_str(),
            "example.test"
        );
    }

    #[test]
    fn webpki_roots_build_offline() {
        assert!(TlsSettings::new().client_config().is_ok());
    }

    #[test]
    fn plaintext_after_the_go_ahead_reads_as_an_injection() {
        let text = TlsError::PlaintextInjection { bytes: 5 }.to_string();
        assert!(
            text.contains("5 bytes of plaintext arrived after the go-ahead"),
            "{text}"
        );
        assert!(text.contains("injection"), "{text}");
    }

    #[test]
    fn errors_display_lowercase() {
        for err in [
            TlsError::NotTls,
            TlsError::AlreadyTls,
            TlsError::NotConnected,
            TlsError::ClosedWithoutCloseNotify,
            TlsError::PlaintextInjection { bytes: 3 },
            TlsError::HandshakeTimeout(Duration::from_secs(1)),
        ] {
            let text = err.to_string();
            assert!(text.starts_with(char::is_lowercase), "{text}");
        }
    }
}
