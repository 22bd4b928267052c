//! The certificates a peer presented, read with `x509-parser` into what a person checks:
//! subject, issuer, names, validity, fingerprint, key.
//!
//! The chain comes from a handshake message, so rustls's own limit on handshake messages
//! bounds what is parsed here; a certificate that does not parse is summarised as such, never
//! a panic.

use std::fmt;

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

/// The certificates a peer presented in its handshake, leaf first, as DER.
///
/// Sent as a notice on `signal` by a connection whose client handshake failed after the server
/// had presented its chain (so the chain can be shown even when it was not trusted); after a
/// successful handshake it is in [`TlsInfo::peer_chain`](super::TlsInfo::peer_chain).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PeerCertificates(pub Vec<CertificateDer<'static>>);

impl PeerCertificates {
    /// Each certificate read into a [`CertificateSummary`], leaf first.
    pub fn summaries(&self) -> Vec<CertificateSummary> {
        self.0.iter().map(CertificateSummary::from_der).collect()
    }

    /// The leaf (the peer's own certificate), if any was presented.
    pub fn leaf(&self) -> Option<CertificateSummary> {
        self.0.first().map(CertificateSummary::from_der)
    }
}

impl fmt::Debug for PeerCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The DER itself would fill a screen; the subjects say which chain it is.
        let subjects: Vec<String> = self.summaries().into_iter().map(|s| s.subject).collect();
        f.debug_tuple("PeerCertificates").field(&subjects).finish()
    }
}

/// One certificate, in the terms `openssl x509 -text` and `curl -v` use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The subject's distinguished name, e.g. `CN=localhost`; `(unreadable)` when the
    /// certificate does not parse.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The subjectAltName entries (`DNS:localhost`, `IP:127.0.0.1`, ...); empty without the
    /// extension.
    pub subject_alt_names: Vec<String>,
    /// Whether the certificate has a subjectAltName extension at all.
    pub has_subject_alt_name: bool,
    /// Valid from, seconds since the Unix epoch.
    pub not_before: i64,
    /// Valid until, seconds since the Unix epoch.
    pub not_after: i64,
    /// The SHA-256 of the DER, as colon-separated upper-case hex.
    pub sha256: String,
    /// The key's algorithm and size, e.g. `RSA 2048 bits`, `EC 256 bits`.
    pub key: KeyDescription,
    /// The signature algorithm's name (`sha256WithRSAEncryption`) or dotted OID.
    pub signature_algorithm: String,
}

/// A certificate's public key: which kind and how many bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDescription {
    /// The kind of key.
    pub algorithm: KeyAlgorithm,
    /// Its size in bits (0 when unknown).
    pub bits: usize,
}

/// The kind of a certificate's public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA.
    Rsa,
    /// An elliptic-curve key (ECDSA).
    Ec,
    /// Ed25519 or Ed448.
    EdDsa,
    /// Anything else.
    Other,
}

/// The fewest RSA bits accepted; rustls's crypto provider refuses shorter keys.
pub const MIN_RSA_BITS: usize = 2048;

impl KeyDescription {
    /// A key rustls refuses to verify with: RSA shorter than [`MIN_RSA_BITS`].
    pub fn is_weak(&self) -> bool {
        self.algorithm == KeyAlgorithm::Rsa && self.bits > 0 && self.bits < MIN_RSA_BITS
    }
}

impl fmt::Display for KeyDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.algorithm {
            KeyAlgorithm::Rsa => "RSA",
            KeyAlgorithm::Ec => "EC",
            KeyAlgorithm::EdDsa => "EdDSA",
            KeyAlgorithm::Other => "key",
        };
        if self.bits == 0 {
            f.write_str(name)
        } else {
            write!(f, "{name} {} bits", self.bits)
        }
    }
}

impl CertificateSummary {
    /// Reads one DER certificate; one that does not parse gives a summary saying so (with its
    /// fingerprint, which needs no parsing).
    pub fn from_der(der: &CertificateDer<'_>) -> Self {
        let sha256 = fingerprint(der.as_ref());
        match X509Certificate::from_der(der.as_ref()) {
            Ok((_, cert)) => Self::from_parsed(&cert, sha256),
            Err(_) => Self {
                subject: "(unreadable)".into(),
                issuer: "(unreadable)".into(),
                subject_alt_names: Vec::new(),
                has_subject_alt_name: false,
                not_before: 0,
                not_after: 0,
                sha256,
                key: KeyDescription {
                    algorithm: KeyAlgorithm::Other,
                    bits: 0,
                },
                signature_algorithm: String::new(),
            },
        }
    }

    fn from_parsed(cert: &X509Certificate<'_>, sha256: String) -> Self {
        let (has_san, sans) = match cert.subject_alternative_name() {
            Ok(Some(ext)) => (
                true,
                ext.value.general_names.iter().map(general_name).collect(),
            ),
            Ok(None) => (false, Vec::new()),
            Err(_) => (true, vec!["(unreadable)".to_owned()]),
        };
        let key = match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => KeyDescription {
                algorithm: KeyAlgorithm::Rsa,
                bits: rsa.key_size(),
            },
            Ok(PublicKey::EC(ec)) => KeyDescription {
                algorithm: KeyAlgorithm::Ec,
                bits: ec_bits(cert, ec.key_size()),
            },
            _ => {
                let oid = cert.public_key().algorithm.algorithm.to_id_string();
                let algorithm = match oid.as_str() {
                    "1.3.101.112" | "1.3.101.113" => KeyAlgorithm::EdDsa,
                    _ => KeyAlgorithm::Other,
                };
                KeyDescription { algorithm, bits: 0 }
            }
        };
        let sig = &cert.signature_algorithm.algorithm;
        let signature_algorithm = x509_parser::oid_registry::OidRegistry::default()
            .with_all_crypto()
            .get(sig)
            .map_or_else(|| sig.to_id_string(), |e| e.sn().to_owned());
        Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            subject_alt_names: sans,
            has_subject_alt_name: has_san,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            sha256,
            key,
            signature_algorithm,
        }
    }

    /// The subject's common names (CN), for saying that a name there is not used.
    pub fn common_names(der: &CertificateDer<'_>) -> Vec<String> {
        match X509Certificate::from_der(der.as_ref()) {
            Ok((_, cert)) => cert
                .subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl fmt::Display for CertificateSummary {
    /// Several lines: subject, issuer, names, validity, key, fingerprint.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "subject: {}", self.subject)?;
        writeln!(f, "issuer: {}", self.issuer)?;
        if self.has_subject_alt_name {
            writeln!(f, "subjectAltName: {}", self.subject_alt_names.join(", "))?;
        } else {
            writeln!(f, "subjectAltName: (none)")?;
        }
        writeln!(
            f,
            "valid: {} to {}",
            utc_date_time(self.not_before),
            utc_date_time(self.not_after)
        )?;
        writeln!(
            f,
            "key: {}; signed with {}",
            self.key, self.signature_algorithm
        )?;
        write!(f, "SHA-256 fingerprint: {}", self.sha256)
    }
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_date_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is in 1..=31 and m in 1..=12 by construction.
    (y, m as u32, d as u32)
}

fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

fn general_name(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(n) => format!("DNS:{n}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => {
                let a: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                format!("IP:{}", std::net::Ipv4Addr::from(a))
            }
            16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(bytes);
                format!("IP:{}", std::net::Ipv6Addr::from(a))
            }
            _ => "IP:(malformed)".to_owned(),
        },
        GeneralName::RFC822Name(n) => format!("email:{n}"),
        GeneralName::URI(n) => format!("URI:{n}"),
        other => format!("{other:?}"),
    }
}

/// An EC key's size from its named curve when known (the point's length says little for a
/// compressed point).
fn ec_bits(cert: &X509Certificate<'_>, point_bits: usize) -> usize {
    let curve = cert
        .public_key()
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    match curve.as_deref() {
        Some("1.2.840.10045.3.1.7") => 256,
        Some("1.3.132.0.34") => 384,
        Some("1.3.132.0.35") => 521,
        _ => point_bits,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_the_calendar_does() {
        for (secs, want) in [
            (0, "1970-01-01 00:00:00 UTC"),
            (978_307_200, "2001-01-01 00:00:00 UTC"),
            (951_782_400, "2000-02-29 00:00:00 UTC"),
            (1_796_112_648, "2026-12-01 08:10:48 UTC"),
            (-1, "1969-12-31 23:59:59 UTC"),
            (253_402_300_799, "9999-12-31 23:59:59 UTC"),
        ] {
            assert_eq!(utc_date_time(secs), want, "{secs}");
        }
    }

    #[test]
    fn garbage_is_summarised_not_a_panic() {
        for bytes in [&b""[..], b"\x30\x03\x02\x01", b"not a certificate at all"] {
            let s = CertificateSummary::from_der(&CertificateDer::from(bytes.to_vec()));
            assert_eq!(s.subject, "(unreadable)");
            assert_eq!(s.sha256.len(), 32 * 3 - 1);
        }
    }

    #[test]
    fn only_short_rsa_keys_are_weak() {
        let k = |algorithm, bits| KeyDescription { algorithm, bits };
        assert!(k(KeyAlgorithm::Rsa, 1024).is_weak());
        assert!(!k(KeyAlgorithm::Rsa, 2048).is_weak());
        assert!(!k(KeyAlgorithm::Ec, 256).is_weak());
        assert!(!k(KeyAlgorithm::Rsa, 0).is_weak());
        assert_eq!(k(KeyAlgorithm::Rsa, 1024).to_string(), "RSA 1024 bits");
    }
}
