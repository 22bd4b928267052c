//! PEM files are read with a size cap (issue 8 §2 item 11): an endless file such as
//! `/dev/zero` is a clear `TlsError::Config` at once, and arbitrary bytes as a CA file, a
//! certificate chain or a key give a configuration or a clear error, never a panic.

use std::time::Duration;

use kamaelia::internet::{ServerTls, TlsError, TlsSettings, Trust, MAX_PEM_BYTES};
use kamaelia_test::pki::{TempFile, TestPki};
use kamaelia_test::with_timeout;
use proptest::prelude::*;

fn config_error(r: Result<impl std::fmt::Debug, TlsError>) -> String {
    match r {
        Err(TlsError::Config(why)) => why,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_endless_pem_file_is_a_clear_error_at_once() {
    with_timeout(Duration::from_secs(20), async {
        tokio::task::spawn_blocking(|| {
            let pki = TestPki::new();
            let (cert, key) = pki.write_server_pem();
            let why = config_error(ServerTls::from_pem_files("/dev/zero", key.path()));
            assert!(
                why.contains("/dev/zero") && why.contains("too long"),
                "{why}"
            );
            let why = config_error(ServerTls::from_pem_files(cert.path(), "/dev/zero"));
            assert!(
                why.contains("/dev/zero") && why.contains("too long"),
                "{why}"
            );
            let settings = TlsSettings::new().with_trust(Trust::PemFile("/dev/zero".into()));
            let why = config_error(settings.client_config());
            assert!(why.contains("too long"), "{why}");
        })
        .await
        .unwrap();
    })
    .await;
}

#[test]
fn a_pem_file_just_over_the_cap_is_refused_and_a_real_one_is_read() {
    let pki = TestPki::new();
    let (cert, key) = pki.write_server_pem();
    assert!(ServerTls::from_pem_files(cert.path(), key.path()).is_ok());
    // A real certificate followed by padding past the cap.
    let mut big = std::fs::read(cert.path()).unwrap();
    big.resize(MAX_PEM_BYTES as usize + 1, b'\n');
    let big = TempFile::new("big.pem", &big);
    let why = config_error(ServerTls::from_pem_files(big.path(), key.path()));
    assert!(why.contains("too long"), "{why}");
}

/// Bytes that look like PEM often enough to reach the parser's corners: armour lines, base64,
/// junk, in any order.
fn pemish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
        Just(b"-----END CERTIFICATE-----\n".to_vec()),
        Just(b"-----BEGIN PRIVATE KEY-----\n".to_vec()),
        Just(b"-----END PRIVATE KEY-----\n".to_vec()),
        Just(b"-----BEGIN RSA PRIVATE KEY-----\n".to_vec()),
        Just(b"-----BEGIN EC PRIVATE KEY-----\n".to_vec()),
        "[A-Za-z0-9+/=]{0,80}\n".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_pem_files_give_a_result_or_a_clear_error(
        bytes in prop_oneof![pemish(), prop::collection::vec(any::<u8>(), 0..2048)]
    ) {
        let file = TempFile::new("fuzz.pem", &bytes);
        let as_server = ServerTls::from_pem_files(file.path(), file.path());
        if let Err(e) = &as_server {
            prop_assert!(!e.to_string().is_empty());
        }
        let settings = TlsSettings::new().with_trust(Trust::PemFile(file.path().to_owned()));
        if let Err(e) = settings.client_config() {
            prop_assert!(matches!(e, TlsError::Config(_)), "{e:?}");
        }
    }
}
