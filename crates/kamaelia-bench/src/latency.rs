//! 64-byte ping-pong round trips, p50 and p99: through the library (figure 8) and through the
//! command-line relays (figure 6), placed by the kernel and then all on one CPU ([`OneCpu`]).

use std::time::Duration;

use anyhow::{ensure, Result};
use axon::{link_refs, Component, Control, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{PeerHalfClosed, TcpClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{alternate, median, quantile, ratio_range, Table};
use crate::pin::OneCpu;
use crate::procs::ServerProc;
use crate::servers;
use crate::tools::{self, Fill, Stdin, Tool};
use crate::Config;

#[derive(Clone, Copy)]
enum Side {
    Library,
    Tokio,
}

/// The library and the hand-written responder answer a pinger server that times each round trip.
pub(crate) async fn library(cfg: &Config, table: &mut Table) -> Result<()> {
    let n = cfg.pings;
    let (addr, reports) = servers::pinger(n).await?;
    let results = alternate(cfg.rounds, &[Side::Library, Side::Tokio], |side| {
        let reports = &reports;
        async move {
            reports.drain().await;
            match side {
                Side::Library => library_responder(addr.port()).await?,
                Side::Tokio => tokio_responder(addr).await?,
            }
            let mut rtts = reports.next(Duration::from_secs(10)).await?;
            ensure!(rtts.len() == n, "{} of {n} round trips", rtts.len());
            Ok(vec![quantile(&mut rtts, 0.5), quantile(&mut rtts, 0.99)])
        }
    })
    .await?;
    for (metric, q) in [(0, "p50"), (1, "p99")] {
        let (a, b) = (median(&results[0], metric), median(&results[1], metric));
        table.row(
            format!("8 ping-pong 64 B x {n}, {q}: TcpClient + responder vs tokio"),
            format!("{a:.1} us"),
            format!("{b:.1} us"),
            a / b,
            "<= 1.2",
        );
    }
    Ok(())
}

/// TcpClient with its outbox into a responder and the responder's outbox back into it.
async fn library_responder(port: u16) -> Result<()> {
    let client: Component = TcpClient::new("127.0.0.1", port).nodelay(true).into();
    let responder = responder();
    link_refs(&client.boxref("outbox")?, &responder.boxref("inbox")?)?;
    link_refs(&responder.boxref("outbox")?, &client.boxref("inbox")?)?;
    link_refs(&client.boxref("signal")?, &responder.boxref("control")?)?;
    link_refs(&responder.boxref("signal")?, &client.boxref("control")?)?;
    let report = tokio::time::timeout(
        Duration::from_secs(300),
        Scheduler::new().run(async {
            client.activate();
            responder.activate();
        }),
    )
    .await?;
    ensure!(
        report.is_ok(),
        "library responder failed: {:?}",
        report.failures
    );
    Ok(())
}

/// Sends back what it gets; when the server has finished (or the connection ended) it asks the
/// client to close.
fn responder() -> Component {
    let mut b = Component::build("Responder");
    let inbox = b.inbox::<Bytes>("inbox", "pings");
    let control = b.control();
    let outbox = b.outbox::<Bytes>("outbox", "pongs");
    let signal = b.signal();
    b.main(move |_| async move {
        loop {
            tokio::select! {
                d = inbox.recv() => outbox.send(d).await?,
                c = control.recv() => {
                    if c.is_final() || c.payload::<PeerHalfClosed>().is_some() {
                        let _ = signal.send(Control::producer_finished()).await;
                        return Ok(());
                    }
                }
            }
        }
    })
}

async fn tokio_responder(addr: std::net::SocketAddr) -> Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut buf = vec![0_u8; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await?;
    }
    s.shutdown().await?;
    Ok(())
}

/// Figure 6's diagnostic peer: a hand-written tokio relay (`crates/kamaelia-yardsticks/src/bin/base-connect.rs`).
const BASE_CONNECT: &str = "base-connect";

/// `kamaelia connect` and the peers as stdin/stdout relays to an echo server: rounds as the
/// kernel places the processes, then the same rounds with all of them on one CPU.
pub(crate) async fn relays(cfg: &Config, table: &mut Table) -> Result<()> {
    let what = "figure 6";
    // The echo server is a process of its own, like the relays measured.
    let echo = ServerProc::echo().await?;
    let ca = cfg.pki.ca_pem_file();
    let fill = Fill {
        port: echo.port,
        file: ca,
        ca,
    };
    let mut found = Vec::new();
    found.extend(Tool::find(
        "kamaelia connect",
        &cfg.kamaelia,
        &["connect", "127.0.0.1", "{port}"],
        Stdin::Piped,
    ));
    found.extend(Tool::find(
        "nc",
        "nc".as_ref(),
        &["-N", "127.0.0.1", "{port}"],
        Stdin::Piped,
    ));
    found.extend(Tool::find(
        "socat",
        "socat".as_ref(),
        &["-", "TCP:127.0.0.1:{port}"],
        Stdin::Piped,
    ));
    found.extend(Tool::find(
        "ncat",
        "ncat".as_ref(),
        &["127.0.0.1", "{port}"],
        Stdin::Piped,
    ));
    // Not a yardstick (the goal is nc, socat and ncat): tokio alone, stdin and stdout on the
    // reactor, one task; what any tokio relay pays, and so how far below nc one can get.
    let exe = std::env::current_exe()?;
    found.extend(Tool::find(
        BASE_CONNECT,
        &exe.with_file_name(BASE_CONNECT),
        &["127.0.0.1", "{port}"],
        Stdin::Piped,
    ));
    tools::note_missing(
        table,
        what,
        &["kamaelia connect", "nc", "socat", "ncat", BASE_CONNECT],
        &found,
    );
    let peers = tools::probed(found, table, what, |t| {
        let fill = &fill;
        async move { t.relay_pings(fill, 1, 3).await.map(|_| ()) }
    })
    .await;
    if peers.is_empty() {
        return Ok(());
    }
    relay_rounds(cfg, table, &peers, &fill, "").await?;
    drop(echo);
    // The same rounds with every process on one CPU: see [`OneCpu`].
    let Some(pin) = OneCpu::pin_or_note(table, what).await else {
        return Ok(());
    };
    let pinned = async {
        let echo = ServerProc::echo().await?;
        let fill = Fill {
            port: echo.port,
            file: ca,
            ca,
        };
        relay_rounds(cfg, table, &peers, &fill, &pin.label()).await
    }
    .await;
    pin.restore().await?;
    pinned
}

/// Figure 6's alternating rounds of `peers` against the echo server in `fill`, and their rows
/// (`label` says how the processes were placed).
async fn relay_rounds(
    cfg: &Config,
    table: &mut Table,
    peers: &[Tool],
    fill: &Fill<'_>,
    label: &str,
) -> Result<()> {
    let n = cfg.relay_pings;
    let sides: Vec<usize> = (0..peers.len()).collect();
    let results = alternate(cfg.rounds, &sides, |i| async move {
        let mut rtts = peers[i].relay_pings(fill, 20, n).await?;
        Ok(vec![quantile(&mut rtts, 0.5), quantile(&mut rtts, 0.99)])
    })
    .await?;
    let kamaelia = peers.iter().position(|p| p.name == "kamaelia connect");
    for (metric, q) in [(0, "p50"), (1, "p99")] {
        for (i, p) in peers.iter().enumerate() {
            let v = median(&results[i], metric);
            match kamaelia {
                Some(k) if k == i => {}
                Some(k) => {
                    let ours = median(&results[k], metric);
                    let (lo, hi) = ratio_range(&results[k], &results[i], metric);
                    table.row_spread(
                        format!(
                            "6 relay ping-pong x {n}{label}, {q}: `kamaelia connect` vs {}",
                            p.name
                        ),
                        format!("{ours:.1} us"),
                        format!("{v:.1} us"),
                        ours / v,
                        format!("{lo:.2}–{hi:.2}"),
                        if p.name == BASE_CONNECT {
                            "- (diagnostic)"
                        } else {
                            "< 1"
                        },
                    );
                }
                None => table.row(
                    format!(
                        "6 relay ping-pong x {n}{label}, {q}: (peer alone) {}",
                        p.name
                    ),
                    "-".to_string(),
                    format!("{v:.1} us"),
                    f64::NAN,
                    "kamaelia faster",
                ),
            }
        }
    }
    Ok(())
}
