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
//! [`TlsInfo`] (version, suite, key-exchange group, ALPN, and the chain the server presented,
//! readable with [`PeerCertificates::summaries`]). [`ServerTls`] builds a
//! [`rustls::ServerConfig`] from a certificate and key, optionally requiring a client
//! certificate signed by a given CA ([`ServerTls::with_client_ca`]).
//!
//! Each client handshake runs on its own copy of the shared configuration whose verifier notes
//! the chain the server presented before handing it to the real verifier, so that a failure can
//! say more than rustls does (a weak key, a certificate with names only in CN) and the chain can
//! be shown even when it was not trusted ([`TlsSettings::connect_with_chain`]).
//!
//! # Errors
//!
//! Every failure is a [`TlsError`], whose `Display` is plain words from the client's side;
//! [`TlsError::words`] says the same from the server's side. [`classify`] maps the
//! `io::Error`s tokio-rustls returns (which carry a [`rustls::Error`] inside) to it.

mod capture;
mod peer;

pub use peer::{
    utc_date_time, CertificateSummary, KeyAlgorithm, KeyDescription, PeerCertificates, MIN_RSA_BITS,
};

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{
    AlertDescription, CertificateError, CommonState, PeerIncompatible, PeerMisbehaved,
    ProtocolVersion, RootCertStore,
};
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

/// The default TLS settings, made once per process and shared by every client left at them
/// (one root store and session cache for all of them, as for clones of one client).
pub(in crate::internet) fn default_tls() -> Arc<TlsSettings> {
    DEFAULT_TLS
        .get_or_init(|| Arc::new(TlsSettings::new()))
        .clone()
}

/// Whether `settings` are [`default_tls`]'s, asked without making them or touching their
/// count (a connection asks once, as it starts).
pub(in crate::internet) fn is_default_tls(settings: &Arc<TlsSettings>) -> bool {
    DEFAULT_TLS.get().is_some_and(|d| Arc::ptr_eq(d, settings))
}

static DEFAULT_TLS: std::sync::OnceLock<Arc<TlsSettings>> = std::sync::OnceLock::new();

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
    built: Arc<Mutex<Option<Arc<ClientBuilt>>>>,
}

/// A client configuration and the verifier it was built with (each handshake wraps it).
struct ClientBuilt {
    config: Arc<ClientConfig>,
    verifier: Arc<dyn ServerCertVerifier>,
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

    /// Presents the certificate chain in the PEM file `cert` (leaf first) with the private key
    /// in the PEM file `key` when the server asks (each file at most [`MAX_PEM_BYTES`]).
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] naming the file: unreadable, too long, no certificate, no key, or
    /// an encrypted key.
    pub fn with_client_cert_pem_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        let chain = read_certificates(cert.as_ref())?;
        let key = read_private_key(key.as_ref())?;
        Ok(self.with_client_cert(chain, key))
    }

    /// Whether a client certificate is configured.
    pub fn has_client_cert(&self) -> bool {
        self.client_cert.is_some()
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
        Ok(self.built()?.config.clone())
    }

    fn built(&self) -> Result<Arc<ClientBuilt>, TlsError> {
        built_once(&self.built, || self.build_client_config())
    }

    fn build_client_config(&self) -> Result<Arc<ClientBuilt>, TlsError> {
        let roots = Arc::new(self.root_store()?);
        let verifier: Arc<dyn ServerCertVerifier> =
            WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone());
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
        Ok(Arc::new(ClientBuilt {
            config: Arc::new(config),
            verifier,
        }))
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
        self.connect_with_chain(host, io).await.map_err(|(e, _)| e)
    }

    /// As [`connect`](Self::connect); a failure comes with the chain the server presented, if
    /// it got that far (to show it, even when it was not trusted), and is worded with what that
    /// chain and the handshake showed: [`TlsError::WeakKey`], [`TlsError::NoSubjectAltName`],
    /// [`HandshakeFailure::ClientCertificateRequired`] when the server asked for a certificate
    /// none was configured for.
    pub async fn connect_with_chain<IO>(
        &self,
        host: &str,
        io: IO,
    ) -> Result<(TlsStream<IO>, TlsInfo), (TlsError, Option<PeerCertificates>)>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self.server_name_for(host).map_err(|e| (e, None))?;
        let built = self.built().map_err(|e| (e, None))?;
        let seen = Arc::new(capture::Seen::default());
        let config = capture::observed_config(&built.config, built.verifier.clone(), &seen);
        match handshake(config, name, io, self.handshake_timeout).await {
            Ok(stream) => match TlsInfo::from_common_state(stream.get_ref().1) {
                Some(info) => Ok((
                    stream,
                    TlsInfo {
                        client_cert_requested: seen.certificate_requested(),
                        client_cert_configured: self.has_client_cert(),
                        ..info
                    },
                )),
                None => Err((
                    TlsError::HandshakeFailed(HandshakeFailure::NoVersion),
                    seen.chain(),
                )),
            },
            Err(e) => {
                let chain = seen.chain();
                let e = refine(e, chain.as_ref(), seen.certificate_requested(), self);
                Err((e, chain))
            }
        }
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
    /// Require a client certificate signed by one of these.
    client_ca: Option<Vec<CertificateDer<'static>>>,
    /// The configuration built from these, shared by clones.
    built: Arc<Mutex<Option<Arc<ServerConfig>>>>,
}

impl Clone for ServerTls {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            alpn: self.alpn.clone(),
            client_ca: self.client_ca.clone(),
            built: self.built.clone(),
        }
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("chain_len", &self.chain.len())
            .field("alpn", &self.alpn)
            .field("client_ca_len", &self.client_ca.as_ref().map(Vec::len))
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
            client_ca: None,
            built: Arc::default(),
        }
    }

    /// A server identity from a PEM certificate chain file and a PEM private key file (each at
    /// most [`MAX_PEM_BYTES`]).
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Self, TlsError> {
        let chain = read_certificates(cert.as_ref())?;
        let key = read_private_key(key.as_ref())?;
        Ok(Self::from_der(chain, key))
    }

    /// Requires every client to present a certificate that chains to one of `cas` (rustls's
    /// `WebPkiClientVerifier`); a client without one, or with another, fails its handshake.
    pub fn with_client_ca(mut self, cas: Vec<CertificateDer<'static>>) -> Self {
        self.client_ca = Some(cas);
        self.built = Arc::default();
        self
    }

    /// As [`with_client_ca`](Self::with_client_ca), with the CA certificates in a PEM file (at
    /// most [`MAX_PEM_BYTES`]).
    ///
    /// # Errors
    ///
    /// [`TlsError::Config`] naming the file: unreadable, too long, no certificate in it.
    pub fn with_client_ca_pem_file(self, path: impl AsRef<Path>) -> Result<Self, TlsError> {
        let cas = read_certificates(path.as_ref())?;
        Ok(self.with_client_ca(cas))
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

    /// Builds the rustls server configuration on the `ring` provider, requiring a client
    /// certificate if [`with_client_ca`](Self::with_client_ca) said so; fails if the key does
    /// not match the certificate or is unsupported, or a CA certificate is unusable.
    /// Built the first time only, then shared by clones (a failure is not kept).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        built_once(&self.built, || self.build_server_config())
    }

    fn build_server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(cas) => {
                let mut roots = RootCertStore::empty();
                for ca in cas {
                    roots.add(ca.clone()).map_err(|e| {
                        TlsError::Config(format!("unusable client CA certificate: {e}"))
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| TlsError::Config(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("server certificate or key: {e}")))?;
        config.alpn_protocols.clone_from(&self.alpn);
        Ok(Arc::new(config))
    }
}

/// What a finished handshake agreed on, and what this side saw of the peer.
///
/// Equality compares what was agreed (version, suite, ALPN, group), which both ends of one
/// connection share; the peer's chain and the client-certificate flags are this side's view.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The protocol version, e.g. `"TLSv1.3"`.
    pub version: String,
    /// The IANA name of the cipher suite, e.g. `"TLS13_AES_256_GCM_SHA384"`.
    pub cipher_suite: String,
    /// The ALPN protocol agreed, if any.
    pub alpn: Option<Vec<u8>>,
    /// The key-exchange group, e.g. `"X25519"` (none after a TLS 1.2 resumption).
    pub key_exchange_group: Option<String>,
    /// The certificates the peer presented, leaf first: the server's on a client, the
    /// client's (if it sent one) on a server.
    pub peer_chain: PeerCertificates,
    /// On a client: the server asked for a client certificate. Under TLS 1.3 a server that
    /// requires one and gets none says so only after this side's handshake has finished (on
    /// the first read), so this is the warning that it may.
    pub client_cert_requested: bool,
    /// On a client: a client certificate was configured (and so sent if requested).
    pub client_cert_configured: bool,
}

impl PartialEq for TlsInfo {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.version,
            &self.cipher_suite,
            &self.alpn,
            &self.key_exchange_group,
        ) == (
            &other.version,
            &other.cipher_suite,
            &other.alpn,
            &other.key_exchange_group,
        )
    }
}

impl Eq for TlsInfo {}

impl TlsInfo {
    /// What a handshake agreed on: `version` and `cipher_suite`, nothing else known.
    pub fn new(version: impl Into<String>, cipher_suite: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            cipher_suite: cipher_suite.into(),
            ..Self::default()
        }
    }

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
        let key_exchange_group = state.negotiated_key_exchange_group().map(|g| {
            let name = g.name();
            name.as_str()
                .map_or_else(|| format!("{name:?}"), str::to_owned)
        });
        Some(Self {
            version,
            cipher_suite,
            alpn: state.alpn_protocol().map(<[u8]>::to_vec),
            key_exchange_group,
            peer_chain: PeerCertificates(state.peer_certificates().unwrap_or_default().to_vec()),
            client_cert_requested: false,
            client_cert_configured: false,
        })
    }

    /// The agreed ALPN protocol as text (`h2`), if any; bytes that are not UTF-8 are escaped.
    pub fn alpn_text(&self) -> Option<String> {
        self.alpn
            .as_deref()
            .map(|p| String::from_utf8_lossy(&p.escape_ascii().collect::<Vec<u8>>()).into_owned())
    }
}

impl fmt::Display for TlsInfo {
    /// `TLSv1.3 TLS13_AES_256_GCM_SHA384`, then the group and the ALPN protocol when known.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.version, self.cipher_suite)?;
        if let Some(group) = &self.key_exchange_group {
            write!(f, " {group}")?;
        }
        if let Some(alpn) = self.alpn_text() {
            write!(f, ", ALPN {alpn}")?;
        }
        Ok(())
    }
}

/// Whose point of view an error is worded from: the peer is the server (a client's error) or
/// the client (a server's error). See [`TlsError::words`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// We are the client; the peer is the server.
    Server,
    /// We are the server; the peer is the client.
    Client,
}

impl PeerRole {
    fn name(self) -> &'static str {
        match self {
            PeerRole::Server => "server",
            PeerRole::Client => "client",
        }
    }
}

/// Why TLS could not be set up or went wrong.
///
/// `Clone` so it can travel in messages. `Display` words it from a client's side; a server
/// uses [`TlsError::words`] with [`PeerRole::Client`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TlsError {
    /// The peer's certificate chain does not lead to a trusted root, or is expired, revoked,
    /// signed with SHA-1 or malformed; rustls's reason says which (e.g.
    /// [`CertificateError::ExpiredContext`]) and [`certificate_problem`] words it.
    UntrustedCertificate(CertificateError),
    /// The server's certificate is valid but not for the name that was verified.
    NameMismatch {
        /// The name verified, when known ([`classify`] alone may not know it).
        expected: Option<String>,
    },
    /// The server's certificate has no subjectAltName extension, only a name in its subject's
    /// CN, which is not used for verification (RFC 6125; browsers and rustls agree).
    NoSubjectAltName {
        /// The name verified.
        expected: Option<String>,
        /// The names in the subject's CN, which were not used.
        common_names: Vec<String>,
    },
    /// The server's certificate holds a key too weak to verify with (RSA shorter than
    /// [`MIN_RSA_BITS`]).
    WeakKey(KeyDescription),
    /// The handshake failed for another reason: an alert from the peer, no common protocol
    /// version or cipher suite, the peer closing mid-handshake.
    HandshakeFailed(HandshakeFailure),
    /// After the handshake, the server asked to renegotiate (TLS 1.2), which is refused
    /// (renegotiation is not supported), and it then ended the connection.
    RenegotiationRefused,
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
    /// The server requires a client certificate and none was configured (its
    /// `certificate_required` alert; under TLS 1.3 it arrives after our side of the handshake
    /// finished, on the first read).
    ClientCertificateRequired,
    /// The peer refused the certificate we presented, with this alert (`bad_certificate`,
    /// `unknown_ca`, ...).
    CertificateRefused(AlertDescription),
    /// The client presented no certificate, and one is required (a server's error).
    NoClientCertificate,
    /// No protocol version, cipher suite or key-exchange group both sides accept.
    NothingInCommon(NotInCommon),
    /// No ALPN protocol both sides accept (the `no_application_protocol` alert).
    NoApplicationProtocol,
    /// The client offered only TLS 1.1 or older (a server's error); TLS 1.2 is the oldest
    /// accepted.
    ClientTooOld,
    /// rustls refused or failed the handshake for another reason: another alert from the peer,
    /// a peer misbehaving. Kept as rustls's own error, to match on.
    Rustls(rustls::Error),
    /// The peer closed the connection before the handshake finished.
    PeerClosed,
    /// The handshake ended without a protocol version (rustls never does this).
    NoVersion,
}

/// What the two sides of a handshake had nothing of in common
/// ([`HandshakeFailure::NothingInCommon`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotInCommon {
    /// No protocol version (e.g. a server offering only TLS 1.1).
    Version,
    /// No cipher suite.
    CipherSuite,
    /// No key-exchange group.
    KeyExchangeGroup,
    /// The peer's `handshake_failure` alert: one of the three, it does not say which.
    Unknown,
}

impl fmt::Display for NotInCommon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotInCommon::Version => "no TLS version in common",
            NotInCommon::CipherSuite => "no cipher suite in common",
            NotInCommon::KeyExchangeGroup => "no key-exchange group in common",
            NotInCommon::Unknown => "no TLS version / cipher suite / key-exchange group in common",
        })
    }
}

impl HandshakeFailure {
    /// In plain words, `peer` being the other side.
    pub fn words(&self, peer: PeerRole) -> String {
        let who = peer.name();
        match self {
            HandshakeFailure::ClientCertificateRequired => {
                format!("the {who} requires a client certificate")
            }
            HandshakeFailure::CertificateRefused(alert) => {
                format!(
                    "the {who} refused our certificate ({})",
                    alert_words(*alert)
                )
            }
            HandshakeFailure::NoClientCertificate => {
                "the client presented no certificate, and one is required".to_owned()
            }
            HandshakeFailure::NothingInCommon(what) => match (what, peer) {
                (NotInCommon::Unknown, _) => {
                    format!("{what} (the {who} answered handshake_failure)")
                }
                _ => what.to_string(),
            },
            HandshakeFailure::NoApplicationProtocol => {
                "no ALPN protocol in common (the protocols offered were refused)".to_owned()
            }
            HandshakeFailure::ClientTooOld => {
                "the client offered only TLS 1.1 or older (TLS 1.2 is the oldest accepted)"
                    .to_owned()
            }
            HandshakeFailure::Rustls(rustls::Error::AlertReceived(alert)) => {
                format!("the {who} sent the alert {}", alert_words(*alert))
            }
            HandshakeFailure::Rustls(e) => e.to_string(),
            HandshakeFailure::PeerClosed => {
                format!("the {who} closed the connection during the handshake")
            }
            HandshakeFailure::NoVersion => "no protocol version after the handshake".to_owned(),
        }
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words(PeerRole::Server))
    }
}

impl TlsError {
    /// In plain words, `peer` being the other side: `Display` is `words(PeerRole::Server)`.
    pub fn words(&self, peer: PeerRole) -> String {
        let who = peer.name();
        match self {
            TlsError::UntrustedCertificate(reason) => format!(
                "the {who}'s certificate is not trusted: {}",
                certificate_problem(reason, "it")
            ),
            TlsError::NameMismatch { expected: None } => {
                format!("the {who}'s certificate is not valid for the requested name")
            }
            TlsError::NameMismatch {
                expected: Some(expected),
            } => format!("the {who}'s certificate is not valid for {expected:?}"),
            TlsError::NoSubjectAltName { common_names, .. } => {
                let cn = match common_names.first() {
                    Some(cn) => format!(" (CN={cn})"),
                    None => String::new(),
                };
                format!(
                    "the {who}'s certificate has no subjectAltName; names in CN are not \
                     accepted{cn}"
                )
            }
            TlsError::WeakKey(key) => format!(
                "the {who}'s certificate key is too weak ({key}; at least {MIN_RSA_BITS} bits \
                 are needed)"
            ),
            TlsError::HandshakeFailed(reason) => {
                format!("the TLS handshake failed: {}", reason.words(peer))
            }
            TlsError::RenegotiationRefused => format!(
                "the {who} asked to renegotiate TLS, which is refused (not supported), and then \
                 ended the connection"
            ),
            TlsError::NotTls => format!("the {who} did not speak TLS"),
            TlsError::HandshakeTimeout(after) => {
                format!("the TLS handshake timed out after {after:?}")
            }
            TlsError::InvalidServerName(name) => format!("invalid TLS server name {name:?}"),
            TlsError::Config(reason) => format!("invalid TLS configuration: {reason}"),
            TlsError::PlaintextInjection { bytes } => format!(
                "refusing to start TLS: {bytes} bytes of plaintext arrived after the go-ahead \
                 (possible injection)"
            ),
            TlsError::AlreadyTls => "the connection is already using TLS".to_owned(),
            TlsError::NotConnected => "no open connection to start TLS on".to_owned(),
            TlsError::ClosedWithoutCloseNotify => {
                format!("the {who} closed the connection without a TLS close_notify")
            }
            TlsError::Io(_) => "the connection failed under TLS".to_owned(),
        }
    }

    /// The same error met after the handshake had finished: a `handshake_failure` alert then
    /// is the server refusing our refusal to renegotiate (TLS 1.2), not a failed handshake.
    pub fn after_handshake(self) -> Self {
        match self {
            TlsError::HandshakeFailed(HandshakeFailure::NothingInCommon(NotInCommon::Unknown)) => {
                TlsError::RenegotiationRefused
            }
            other => other,
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words(PeerRole::Server))
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

/// What is wrong with a certificate, in plain words naming it as `whose` where needed ("it",
/// "the server's certificate"): `it expired on 2001-01-01 00:00:00 UTC`, `the chain does not
/// reach a trusted CA (is an intermediate missing?)`.
pub fn certificate_problem(e: &CertificateError, whose: &str) -> String {
    match e {
        CertificateError::ExpiredContext { not_after, .. } => {
            format!("{whose} expired on {}", unix_date(*not_after))
        }
        CertificateError::Expired => format!("{whose} has expired"),
        CertificateError::NotValidYetContext { not_before, .. } => {
            format!("{whose} is not valid before {}", unix_date(*not_before))
        }
        CertificateError::NotValidYet => format!("{whose} is not valid yet"),
        CertificateError::UnknownIssuer => {
            "the chain does not reach a trusted CA (is an intermediate missing?)".to_owned()
        }
        CertificateError::BadSignature => "a signature in the chain does not verify".to_owned(),
        CertificateError::UnsupportedSignatureAlgorithmContext {
            signature_algorithm_id,
            ..
        }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
            signature_algorithm_id,
            ..
        } if is_sha1(signature_algorithm_id) => {
            format!("{whose} is signed with SHA-1, which is not accepted")
        }
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            format!("{whose} is signed with an algorithm that is not accepted")
        }
        CertificateError::Revoked => format!("{whose} has been revoked"),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!("{whose} is not meant for this use (its extended key usage)")
        }
        CertificateError::BadEncoding => format!("{whose} is malformed"),
        CertificateError::UnhandledCriticalExtension => {
            format!("{whose} has a critical extension that is not understood")
        }
        CertificateError::Other(e) if format!("{e:?}").contains("CaUsedAsEndEntity") => {
            format!("{whose} is a CA certificate, not one for a server or client")
        }
        other => other.to_string(),
    }
}

/// Whether a signature AlgorithmIdentifier names SHA-1 (sha1WithRSAEncryption,
/// ecdsa-with-SHA1, dsa-with-sha1).
fn is_sha1(id: &[u8]) -> bool {
    const SHA1_OIDS: [&[u8]; 3] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],
        &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03],
    ];
    SHA1_OIDS
        .iter()
        .any(|oid| id.windows(oid.len()).any(|w| w == *oid))
}

fn unix_date(t: rustls_pki_types::UnixTime) -> String {
    utc_date_time(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

/// An alert's name as the RFCs spell it (`unknown_ca`), with a gloss for the common ones.
fn alert_words(alert: AlertDescription) -> String {
    let text = match alert {
        AlertDescription::HandshakeFailure => "handshake_failure",
        AlertDescription::BadCertificate => "bad_certificate",
        AlertDescription::UnsupportedCertificate => "unsupported_certificate",
        AlertDescription::CertificateRevoked => "certificate_revoked: it is revoked",
        AlertDescription::CertificateExpired => "certificate_expired: it has expired",
        AlertDescription::CertificateUnknown => "certificate_unknown",
        AlertDescription::UnknownCA => "unknown_ca: it is not signed by a CA trusted there",
        AlertDescription::AccessDenied => "access_denied",
        AlertDescription::ProtocolVersion => "protocol_version",
        AlertDescription::InsufficientSecurity => "insufficient_security",
        AlertDescription::InternalError => "internal_error",
        AlertDescription::DecodeError => "decode_error",
        AlertDescription::DecryptError => "decrypt_error",
        AlertDescription::IllegalParameter => "illegal_parameter",
        AlertDescription::UnexpectedMessage => "unexpected_message",
        AlertDescription::UnrecognisedName => {
            "unrecognized_name: the name asked for is not served there"
        }
        AlertDescription::CertificateRequired => "certificate_required",
        AlertDescription::NoApplicationProtocol => "no_application_protocol",
        AlertDescription::MissingExtension => "missing_extension",
        AlertDescription::UnsupportedExtension => "unsupported_extension",
        other => return format!("{other:?}"),
    };
    text.to_owned()
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
    use HandshakeFailure as H;
    let failed = TlsError::HandshakeFailed;
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
        rustls::Error::NoCertificatesPresented => failed(H::NoClientCertificate),
        rustls::Error::NoApplicationProtocol => failed(H::NoApplicationProtocol),
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => failed(H::ClientCertificateRequired),
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied => failed(H::CertificateRefused(*alert)),
            AlertDescription::ProtocolVersion => failed(H::NothingInCommon(NotInCommon::Version)),
            AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => {
                failed(H::NothingInCommon(NotInCommon::Unknown))
            }
            AlertDescription::NoApplicationProtocol => failed(H::NoApplicationProtocol),
            _ => failed(H::Rustls(err.clone())),
        },
        rustls::Error::PeerIncompatible(why) => match why {
            PeerIncompatible::Tls12NotOffered
            | PeerIncompatible::SignatureAlgorithmsExtensionRequired => failed(H::ClientTooOld),
            PeerIncompatible::ServerDoesNotSupportTls12Or13
            | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
            | PeerIncompatible::SupportedVersionsExtensionRequired
            | PeerIncompatible::Tls12NotOfferedOrEnabled => {
                failed(H::NothingInCommon(NotInCommon::Version))
            }
            PeerIncompatible::NoCipherSuitesInCommon => {
                failed(H::NothingInCommon(NotInCommon::CipherSuite))
            }
            PeerIncompatible::NoKxGroupsInCommon
            | PeerIncompatible::NamedGroupsExtensionRequired
            | PeerIncompatible::KeyShareExtensionRequired => {
                failed(H::NothingInCommon(NotInCommon::KeyExchangeGroup))
            }
            _ => failed(H::Rustls(err.clone())),
        },
        rustls::Error::PeerMisbehaved(PeerMisbehaved::TooManyRenegotiationRequests) => {
            TlsError::RenegotiationRefused
        }
        other => failed(H::Rustls(other.clone())),
    }
}

/// A client handshake's error said with what it saw: the server's `chain`, and whether the
/// server asked for a client certificate (`requested`).
fn refine(
    e: TlsError,
    chain: Option<&PeerCertificates>,
    requested: bool,
    settings: &TlsSettings,
) -> TlsError {
    let leaf = chain.and_then(|c| c.0.first());
    match e {
        TlsError::NameMismatch { expected } => match leaf {
            Some(der) if !CertificateSummary::from_der(der).has_subject_alt_name => {
                TlsError::NoSubjectAltName {
                    expected,
                    common_names: CertificateSummary::common_names(der),
                }
            }
            _ => TlsError::NameMismatch { expected },
        },
        TlsError::UntrustedCertificate(CertificateError::BadSignature)
        | TlsError::HandshakeFailed(HandshakeFailure::Rustls(rustls::Error::DecryptError)) => {
            match leaf.map(|der| CertificateSummary::from_der(der).key) {
                Some(key) if key.is_weak() => TlsError::WeakKey(key),
                _ => e,
            }
        }
        // Under TLS 1.2 a server refusing to go on without a client certificate often says
        // only handshake_failure; it had asked for one.
        TlsError::HandshakeFailed(HandshakeFailure::NothingInCommon(NotInCommon::Unknown))
            if requested =>
        {
            if settings.has_client_cert() {
                TlsError::HandshakeFailed(HandshakeFailure::CertificateRefused(
                    AlertDescription::HandshakeFailure,
                ))
            } else {
                TlsError::HandshakeFailed(HandshakeFailure::ClientCertificateRequired)
            }
        }
        other => other,
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

/// Reads the private key in a PEM file (PKCS#8, PKCS#1 or SEC1); an encrypted key is refused
/// in words that say so, since rustls cannot decrypt it.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_pem(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let why = match e {
            _ if is_encrypted_key(&pem) => {
                "the key is encrypted; give an unencrypted key (openssl pkey -in KEY -out PLAIN)"
                    .to_owned()
            }
            rustls_pki_types::pem::Error::NoItemsFound => "no private key in the file".to_owned(),
            other => other.to_string(),
        };
        TlsError::Config(format!("{}: {why}", path.display()))
    })
}

/// An encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`) or a traditional key with a
/// `Proc-Type: 4,ENCRYPTED` header.
fn is_encrypted_key(pem: &[u8]) -> bool {
    let has = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
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
            TlsError::HandshakeFailed(HandshakeFailure::NothingInCommon(NotInCommon::Unknown))
        ));
        assert!(matches!(
            classify(&wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::DecodeError
            ))),
            TlsError::HandshakeFailed(HandshakeFailure::Rustls(rustls::Error::AlertReceived(
                rustls::AlertDescription::DecodeError
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
