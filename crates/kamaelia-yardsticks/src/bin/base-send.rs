//! The yardstick for `kamaelia send`: the simplest hand-written sender. A `current_thread`
//! tokio runtime, `std::fs::File::read` into one 64 KiB buffer, `write_all`, `shutdown`, then
//! waiting for the server to close. With `--tls CA.pem`, the same over tokio-rustls trusting
//! only that CA (and verifying the server's address against its certificate).
//!
//! ```text
//! base-send [--tls CA.pem] HOST PORT FILE
//! ```

use std::io::Read as _;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let ca = match args.first().map(String::as_str) {
        Some("--tls") if args.len() > 1 => {
            let ca = args.remove(1);
            args.remove(0);
            Some(ca)
        }
        _ => None,
    };
    let [host, port, file] = <[String; 3]>::try_from(args)
        .map_err(|_| "usage: base-send [--tls CA.pem] HOST PORT FILE")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let file = std::fs::File::open(&file)?;
        let s = TcpStream::connect((host.as_str(), port.parse::<u16>()?)).await?;
        match ca {
            None => send(s, file).await,
            Some(ca) => {
                use rustls_pki_types::pem::PemObject as _;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_pki_types::CertificateDer::pem_file_iter(&ca)? {
                    roots.add(cert?)?;
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = rustls_pki_types::ServerName::try_from(host)?;
                let t = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, s)
                    .await?;
                send(t, file).await
            }
        }
    })
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    mut file: std::fs::File,
) -> Result<(), Error> {
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await?;
    }
    s.shutdown().await?;
    // Wait for the server to close (what it says, if anything, is read and dropped). A TLS
    // server that closes without close_notify has closed all the same.
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
