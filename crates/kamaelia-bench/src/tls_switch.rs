//! Figure 9: TLS switches per second. Each session connects, exchanges a line in plaintext,
//! switches to TLS (`makessl`), exchanges a line over TLS and closes; a few sessions run at
//! once. The server is hand-written and the same for every side.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use axon::{link_refs, BoxError, Component, Control, Inbox, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{MakeSsl, SslReady, TcpClient, TlsSettings};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::harness::{alternate, median, Table};
use crate::servers::{self, read_line};
use crate::Config;

/// Sessions in flight at once.
const CONCURRENCY: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Library,
    /// One `ClientConfig` for every connection, as a hand-written program builds it.
    Tokio,
    /// A `ClientConfig` built per connection, as the library's `makessl` does.
    TokioFreshConfig,
}

pub(crate) async fn figure(cfg: &Config, table: &mut Table) -> Result<()> {
    let addr = servers::starttls_echo(cfg.pki.server_config()?).await?;
    let pki = cfg.pki.clone();
    let shared = cfg.pki.client_config()?;
    let settings = cfg.pki.settings();
    let n = cfg.switches;
    let sides = [Side::Library, Side::Tokio, Side::TokioFreshConfig];
    let results = alternate(cfg.rounds, &sides, |side| {
        let (pki, shared, settings) = (pki.clone(), shared.clone(), settings.clone());
        async move {
            let start = Instant::now();
            let mut workers = Vec::new();
            for w in 0..CONCURRENCY {
                let count = n / CONCURRENCY + usize::from(w < n % CONCURRENCY);
                let (pki, shared, settings) = (pki.clone(), shared.clone(), settings.clone());
                workers.push(tokio::spawn(async move {
                    for _ in 0..count {
                        let one = async {
                            match side {
                                Side::Library => {
                                    library_session(addr.port(), settings.clone()).await
                                }
                                Side::Tokio => tokio_session(addr, shared.clone()).await,
                                Side::TokioFreshConfig => {
                                    tokio_session(addr, pki.client_config()?).await
                                }
                            }
                        };
                        tokio::time::timeout(Duration::from_secs(20), one)
                            .await
                            .map_err(|_| anyhow!("a TLS switch session hung"))??;
                    }
                    anyhow::Ok(())
                }));
            }
            for w in workers {
                w.await??;
            }
            Ok(vec![start.elapsed().as_secs_f64()])
        }
    })
    .await?;
    let t: Vec<f64> = results.iter().map(|r| median(r, 0)).collect();
    let rate = |secs: f64| format!("{:.0} /s", n as f64 / secs);
    table.row(
        format!("9 TLS switches ({n}, {CONCURRENCY} at once): TcpClient makessl vs tokio-rustls"),
        rate(t[0]),
        rate(t[1]),
        t[0] / t[1],
        "-",
    );
    table.row(
        "9 (diagnosis) same vs tokio-rustls building a ClientConfig per connection",
        rate(t[0]),
        rate(t[2]),
        t[0] / t[2],
        "-",
    );
    Ok(())
}

async fn library_session(port: u16, settings: TlsSettings) -> Result<()> {
    let client: Component = TcpClient::new("127.0.0.1", port).tls(settings).into();
    let session = session();
    for (src, dst) in [
        (session.boxref("outbox")?, client.boxref("inbox")?),
        (client.boxref("outbox")?, session.boxref("inbox")?),
        (session.boxref("makessl")?, client.boxref("makessl")?),
        (client.boxref("sslready")?, session.boxref("sslready")?),
        (session.boxref("signal")?, client.boxref("control")?),
        (client.boxref("signal")?, session.boxref("control")?),
    ] {
        link_refs(&src, &dst)?;
    }
    let report = Scheduler::new()
        .run(async {
            client.activate();
            session.activate();
        })
        .await;
    ensure!(
        report.is_ok(),
        "library session failed: {:?}",
        report.failures
    );
    Ok(())
}

/// Drives one TcpClient through the session: line, answer, makessl, sslready, line, echo, close.
fn session() -> Component {
    let mut b = Component::build("SwitchSession");
    let inbox = b.inbox::<Bytes>("inbox", "from the server");
    let control = b.control();
    let outbox = b.outbox::<Bytes>("outbox", "to the server");
    let signal = b.signal();
    let makessl = b.outbox::<MakeSsl>("makessl", "switch to TLS");
    let sslready = b.inbox::<SslReady>("sslready", "TLS is up");
    b.main(move |_| async move {
        outbox.send(Bytes::from_static(b"HELLO\n")).await?;
        watching(&control, line(&inbox)).await?;
        makessl.send(MakeSsl::new()).await?;
        watching(&control, sslready.recv()).await?;
        outbox.send(Bytes::from_static(b"PING\n")).await?;
        let echoed = watching(&control, line(&inbox)).await?;
        if echoed != b"PING\n" {
            return Err("the server echoed something else".into());
        }
        signal.send(Control::producer_finished()).await?;
        Ok(())
    })
}

async fn line(inbox: &Inbox<Bytes>) -> Vec<u8> {
    let mut l = Vec::new();
    while !l.ends_with(b"\n") {
        l.extend_from_slice(&inbox.recv().await);
    }
    l
}

/// Runs `f` unless the connection reports an error or ends first.
async fn watching<F: Future>(control: &Inbox<Control>, f: F) -> Result<F::Output, BoxError> {
    tokio::pin!(f);
    loop {
        tokio::select! {
            v = &mut f => return Ok(v),
            c = control.recv() => {
                if c.is_final() || matches!(c, Control::Error(_)) {
                    return Err(format!("the connection ended: {c}").into());
                }
            }
        }
    }
}

async fn tokio_session(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"HELLO\n").await?;
    read_line(&mut s).await?;
    let name = ServerName::try_from("127.0.0.1")?;
    let mut t = TlsConnector::from(config).connect(name, s).await?;
    t.write_all(b"PING\n").await?;
    t.flush().await?;
    let echoed = read_line(&mut t).await?;
    ensure!(echoed == b"PING\n", "the server echoed something else");
    t.shutdown().await?;
    Ok(())
}
