//! Figures 1-3: bulk send over plain TCP and TLS, and bulk receive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Result};
use axon::{link_refs, Component, Control, Inbox, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{MakeSsl, SslReady, TcpClient, TlsSettings};
use kamaelia::Pipeline;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::harness::{alternate, median, mib_s, size, Table};
use crate::servers::{self, count_to_end, read_line, write_total, ServerTls, CHUNK};
use crate::tools::{self, Fill, Stdin, Tool};
use crate::Config;

/// How a sender gets to the bulk data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    Plain,
    /// TLS from the first byte (the library: `makessl` as soon as connected).
    Tls,
    /// A plaintext line and its answer, then `makessl`.
    StartTls,
}

#[derive(Clone, Copy)]
enum Side {
    Library,
    Tokio,
    Tool(usize),
}

/// Figures 1 and 2: `mode` Plain is figure 1 (with the command-line peers), the others figure 2.
pub(crate) async fn send(cfg: &Config, table: &mut Table, mode: Mode) -> Result<()> {
    let tls = match mode {
        Mode::Plain => ServerTls::Plain,
        Mode::Tls => ServerTls::FromStart(cfg.pki.sink_server_config()?),
        Mode::StartTls => ServerTls::StartTls(cfg.pki.sink_server_config()?),
    };
    let (addr, sink) = servers::sink(tls).await?;
    let chunk = Bytes::from(vec![0x5a_u8; CHUNK]);
    let client_config = cfg.pki.client_config()?;
    let settings = cfg.pki.settings();
    let n = cfg.bulk;

    let peers = match mode {
        Mode::Plain => bulk_tools(cfg, false),
        Mode::Tls => bulk_tools(cfg, true),
        Mode::StartTls => Vec::new(),
    };
    let what = format!("figure {}", if mode == Mode::Plain { 1 } else { 2 });
    match mode {
        Mode::Plain => tools::note_missing(
            table,
            &what,
            &["kamaelia send", "socat", "nc", "ncat"],
            &peers,
        ),
        Mode::Tls => tools::note_missing(
            table,
            &what,
            &["kamaelia send --tls", "socat", "ncat"],
            &peers,
        ),
        Mode::StartTls => {}
    }
    let small = cfg.dir.join("probe-1k");
    std::fs::write(&small, vec![0x5a_u8; 1024])?;
    let probe_fill = Fill {
        port: addr.port(),
        file: &small,
        ca: cfg.pki.ca_pem_file(),
    };
    let peers = tools::probed(peers, table, &what, |t| {
        let (fill, sink) = (&probe_fill, &sink);
        async move { t.probe_send(fill, 1024, sink).await }
    })
    .await;
    let file = cfg.dir.join("bulk");
    if !peers.is_empty() {
        // A sparse file: every program reads the same zero pages, no disk involved.
        std::fs::File::create(&file)?.set_len(n)?;
    }
    let fill = Fill {
        port: addr.port(),
        file: &file,
        ca: cfg.pki.ca_pem_file(),
    };

    let mut sides = vec![Side::Library, Side::Tokio];
    sides.extend((0..peers.len()).map(Side::Tool));
    let results = alternate(cfg.rounds, &sides, |side| {
        let (chunk, client_config, settings, sink, peers, fill) = (
            chunk.clone(),
            client_config.clone(),
            settings.clone(),
            &sink,
            &peers,
            &fill,
        );
        async move {
            let secs = match side {
                Side::Tool(i) => peers[i].send_file(fill, n, sink).await?,
                Side::Library | Side::Tokio => {
                    sink.drain().await;
                    let start = Instant::now();
                    match side {
                        Side::Library => {
                            library_send(addr.port(), mode, chunk, n, settings).await?
                        }
                        _ => tokio_send(addr, mode, &chunk, n, client_config).await?,
                    }
                    let got = sink.next(Duration::from_secs(30)).await?;
                    ensure!(got == n, "{mode:?}: the sink got {got} of {n} bytes");
                    start.elapsed().as_secs_f64()
                }
            };
            Ok(vec![secs])
        }
    })
    .await?;
    let _ = std::fs::remove_file(&file);

    let t: Vec<f64> = results.iter().map(|r| median(r, 0)).collect();
    let label = match mode {
        Mode::Plain => format!(
            "1 send {}: Pipeline(generator, TcpClient) vs tokio",
            size(n)
        ),
        Mode::Tls => format!(
            "2 send {} TLS from start: TcpClient+makessl vs tokio-rustls",
            size(n)
        ),
        Mode::StartTls => format!(
            "2 send {} STARTTLS (line, makessl) vs tokio-rustls",
            size(n)
        ),
    };
    table.row(label, mib_s(n, t[0]), mib_s(n, t[1]), t[0] / t[1], "<= 1.1");
    let fig = if mode == Mode::Plain { 1 } else { 2 };
    let kamaelia = peers
        .iter()
        .position(|p| p.name.starts_with("kamaelia send"));
    if let Some(k) = kamaelia {
        let tk = t[2 + k];
        let row = format!("{fig} `{}` {} vs tokio", peers[k].name, size(n));
        table.row(row, mib_s(n, tk), mib_s(n, t[1]), tk / t[1], "<= 1.1");
    }
    for (i, p) in peers.iter().enumerate() {
        if Some(i) == kamaelia {
            continue;
        }
        let tp = t[2 + i];
        match kamaelia {
            Some(k) => table.row(
                format!("{fig} `{}` vs {}", peers[k].name, p.name),
                mib_s(n, t[2 + k]),
                mib_s(n, tp),
                t[2 + k] / tp,
                "< 1",
            ),
            None => table.row(
                format!("{fig} (peer alone, for reference) {}", p.name),
                "-".to_string(),
                mib_s(n, tp),
                f64::NAN,
                "kamaelia faster",
            ),
        }
    }
    Ok(())
}

fn bulk_tools(cfg: &Config, tls: bool) -> Vec<Tool> {
    let mut v = Vec::new();
    if tls {
        v.extend(Tool::find(
            "kamaelia send --tls",
            &cfg.kamaelia,
            &[
                "send",
                "--tls",
                "--ca",
                "{ca}",
                "127.0.0.1",
                "{port}",
                "{file}",
            ],
            Stdin::Null,
        ));
        v.extend(Tool::find(
            "socat",
            "socat".as_ref(),
            &[
                "-u",
                "FILE:{file}",
                "OPENSSL:127.0.0.1:{port},cafile={ca},verify=1",
            ],
            Stdin::Null,
        ));
        v.extend(Tool::find(
            "ncat",
            "ncat".as_ref(),
            // ncat verifies DNS names only, not IP addresses: it is given `localhost`.
            &[
                "--ssl",
                "--ssl-verify",
                "--ssl-trustfile",
                "{ca}",
                "--send-only",
                "localhost",
                "{port}",
            ],
            Stdin::File,
        ));
    } else {
        v.extend(Tool::find(
            "kamaelia send",
            &cfg.kamaelia,
            &["send", "127.0.0.1", "{port}", "{file}"],
            Stdin::Null,
        ));
        v.extend(Tool::find(
            "socat",
            "socat".as_ref(),
            &["-u", "FILE:{file}", "TCP:127.0.0.1:{port}"],
            Stdin::Null,
        ));
        v.extend(Tool::find(
            "nc",
            "nc".as_ref(),
            &["-N", "127.0.0.1", "{port}"],
            Stdin::File,
        ));
        v.extend(Tool::find(
            "ncat",
            "ncat".as_ref(),
            &["--send-only", "127.0.0.1", "{port}"],
            Stdin::File,
        ));
    }
    v
}

/// The library's sender: Pipeline(generator, TcpClient); for TLS the generator also asks the
/// client to `makessl` and waits for `sslready` before sending.
async fn library_send(
    port: u16,
    mode: Mode,
    chunk: Bytes,
    total: u64,
    settings: TlsSettings,
) -> Result<()> {
    let generator = generator(chunk, total, mode);
    let client: Component = TcpClient::new("127.0.0.1", port).tls(settings).into();
    if mode != Mode::Plain {
        link_refs(&generator.boxref("makessl")?, &client.boxref("makessl")?)?;
        link_refs(&client.boxref("sslready")?, &generator.boxref("sslready")?)?;
    }
    let pipeline = Pipeline::new([generator, client])?;
    if mode == Mode::StartTls {
        // The server's answer comes out of the Pipeline and goes back to the generator.
        link_refs(&pipeline.boxref("outbox")?, &pipeline.boxref("inbox")?)?;
    }
    let report = Scheduler::new()
        .run(async {
            pipeline.activate();
        })
        .await;
    ensure!(report.is_ok(), "library send failed: {:?}", report.failures);
    Ok(())
}

/// Sends `total` bytes as shared [`CHUNK`]-sized `Bytes` (a reference count each, as a
/// zero-copy reader makes them), then ProducerFinished.
fn generator(chunk: Bytes, total: u64, mode: Mode) -> Component {
    let mut b = Component::build("Generator");
    let inbox = b.inbox::<Bytes>("inbox", "the server's answer (STARTTLS)");
    b.control();
    let outbox = b.outbox::<Bytes>("outbox", "the bytes to send");
    let signal = b.signal();
    let makessl = b.outbox::<MakeSsl>("makessl", "switch the connection to TLS");
    let sslready = b.inbox::<SslReady>("sslready", "TLS is up");
    b.main(move |_| async move {
        if mode == Mode::StartTls {
            outbox.send(Bytes::from_static(b"STARTTLS\n")).await?;
            let mut answer = Vec::new();
            while !answer.ends_with(b"\n") {
                answer.extend_from_slice(&inbox.recv().await);
            }
        }
        if mode != Mode::Plain {
            makessl.send(MakeSsl::new()).await?;
            sslready.recv().await;
        }
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            outbox.send(chunk.slice(..n)).await?;
            left -= n as u64;
        }
        signal.send(Control::producer_finished()).await?;
        Ok(())
    })
}

/// The hand-written sender.
async fn tokio_send(
    addr: std::net::SocketAddr,
    mode: Mode,
    chunk: &Bytes,
    total: u64,
    config: Arc<ClientConfig>,
) -> Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    if mode == Mode::Plain {
        write_total(&mut s, chunk, total).await?;
        s.shutdown().await?;
        return Ok(());
    }
    if mode == Mode::StartTls {
        s.write_all(b"STARTTLS\n").await?;
        read_line(&mut s).await?;
    }
    let name = ServerName::try_from("127.0.0.1")?;
    let mut t = TlsConnector::from(config).connect(name, s).await?;
    write_total(&mut t, chunk, total).await?;
    t.shutdown().await?;
    Ok(())
}

/// Figure 3: receive from a source server.
pub(crate) async fn receive(cfg: &Config, table: &mut Table) -> Result<()> {
    let n = cfg.bulk;
    let addr = servers::source(n).await?;
    let results = alternate(
        cfg.rounds,
        &[Side::Library, Side::Tokio],
        |side| async move {
            let start = Instant::now();
            let got = match side {
                Side::Library => library_receive(addr.port()).await?,
                _ => {
                    let mut s = TcpStream::connect(addr).await?;
                    s.shutdown().await?;
                    count_to_end(s).await?
                }
            };
            ensure!(got == n, "received {got} of {n} bytes");
            Ok(vec![start.elapsed().as_secs_f64()])
        },
    )
    .await?;
    let (a, b) = (median(&results[0], 0), median(&results[1], 0));
    table.row(
        format!(
            "3 receive {}: TcpClient outbox -> sink component vs tokio",
            size(n)
        ),
        mib_s(n, a),
        mib_s(n, b),
        a / b,
        "<= 1.1",
    );
    Ok(())
}

/// Pipeline(finisher, TcpClient waiting for the server to close, counter).
async fn library_receive(port: u16) -> Result<u64> {
    let total = Arc::new(AtomicU64::new(0));
    let pipeline = Pipeline::new([
        finisher(),
        TcpClient::new("127.0.0.1", port)
            .wait_for_server_close(true)
            .into(),
        counter(total.clone()),
    ])?;
    let report = tokio::time::timeout(
        Duration::from_secs(300),
        Scheduler::new().run(async {
            pipeline.activate();
        }),
    )
    .await
    .map_err(|_| anyhow!("library receive did not finish"))?;
    ensure!(
        report.is_ok(),
        "library receive failed: {:?}",
        report.failures
    );
    Ok(total.load(Ordering::Relaxed))
}

/// Sends nothing, then ProducerFinished: the client half-closes and keeps receiving.
fn finisher() -> Component {
    let mut b = Component::build("Finisher");
    b.outbox::<Bytes>("outbox", "nothing");
    b.control();
    let signal = b.signal();
    b.main(move |_| async move {
        signal.send(Control::producer_finished()).await?;
        Ok(())
    })
}

/// Counts the bytes it receives, as a user writes a sink first; ends on the final message.
fn counter(total: Arc<AtomicU64>) -> Component {
    let mut b = Component::build("Counter");
    let inbox: Inbox<Bytes> = b.inbox("inbox", "data");
    let control = b.control();
    let signal = b.signal();
    b.main(move |_| async move {
        let mut n = 0_u64;
        loop {
            tokio::select! {
                d = inbox.recv() => n += d.len() as u64,
                c = control.recv() => {
                    if c.is_final() {
                        while let Some(d) = inbox.try_recv() {
                            n += d.len() as u64;
                        }
                        total.store(n, Ordering::Relaxed);
                        let _ = signal.send(c).await;
                        return Ok(());
                    }
                }
            }
        }
    })
}
