//! The TCPClient page's two examples against local servers, in-process (the same component
//! graphs the example programs build) and as the example programs themselves, run as child
//! processes: a file sent to a sink (SHA-256 equal), and the SSL Graphline against a TLS echo
//! server trusting a CA made at test time.

use crate::client;
use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::client::{random_bytes, rng, trusting};
use axon::{Control, Inbox, Scheduler};
use kamaelia::{
    graphline, pipeline, ConsoleEchoer, ConsoleReader, MakeSsl, OneShot, RateControlledFileReader,
    TcpClient,
};
use kamaelia_test::bounded;
use kamaelia_test::pki::{TempFile, TestPki};
use kamaelia_test::servers::sink_server;
use kamaelia_test::sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `Pipeline(RateControlledFileReader("myfile", rate=100000), TCPClient(host, port))`.
#[tokio::test]
async fn send_file_pipeline_delivers_the_file() {
    bounded(async {
        let mut r = rng();
        let data = random_bytes(&mut r, 64 * 1024);
        let myfile = TempFile::new("myfile", &data);
        let (sink, report) = sink_server().await;
        let p = pipeline![
            RateControlledFileReader::new(myfile.path()).rate(100_000),
            TcpClient::new("127.0.0.1", sink.addr.port()),
        ]
        .unwrap();
        let signal = Inbox::<Control>::standalone("signal", 64);
        axon::link_refs(&p.boxref("signal").unwrap(), &signal.boxref()).unwrap();
        let run = Scheduler::new()
            .run(async {
                p.activate();
            })
            .await;
        assert!(run.is_ok(), "{:?}", run.failures);
        let all: Vec<Control> = std::iter::from_fn(|| signal.try_recv()).collect();
        let s = client::split_signals(all);
        assert_eq!(s.error_count(), 0, "{s:?}");
        assert!(s.last.is_producer_finished());
        let report = report.await.unwrap();
        assert_eq!(report.error, None);
        assert_eq!(report.bytes, data.len() as u64);
        assert_eq!(report.sha256, sha256(&data));
    })
    .await;
}

#[tokio::test]
async fn send_file_example_program_delivers_the_file() {
    let Some(bin) = client::example_bin("send_file") else {
        return;
    };
    bounded(async {
        let mut r = rng();
        let data = random_bytes(&mut r, 512 * 1024);
        let myfile = TempFile::new("myfile", &data);
        let (sink, report) = sink_server().await;
        let port = sink.addr.port().to_string();
        let out = client::output_of(
            &bin,
            &[
                "127.0.0.1".as_ref(),
                port.as_ref(),
                myfile.path().as_os_str(),
                "--rate".as_ref(),
                "10000000".as_ref(),
            ],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = report.await.unwrap();
        assert_eq!(report.bytes, data.len() as u64);
        assert_eq!(report.sha256, sha256(&data));
    })
    .await;
}

#[tokio::test]
async fn send_file_example_program_reports_refused_and_exits_1() {
    let Some(bin) = client::example_bin("send_file") else {
        return;
    };
    bounded(async {
        let myfile = TempFile::new("myfile", b"x");
        let port = kamaelia_test::net::closed_port("127.0.0.1")
            .port()
            .to_string();
        let out = client::output_of(
            &bin,
            &[
                "127.0.0.1".as_ref(),
                port.as_ref(),
                myfile.path().as_os_str(),
            ],
        )
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("refused"), "{stderr}");
    })
    .await;
}

/// The page's SSL Graphline, with the console's ends given to the test: what is typed (once
/// TLS is up) goes to a TLS echo server and comes back to the echoer; the end of input
/// half-closes, the echo server closes, and everything ends.
#[tokio::test]
async fn ssl_graphline_round_trips_through_a_tls_echo_server() {
    bounded(async {
        let pki = TestPki::new();
        let (addr, mut handshakes, _server) = client::tls_echo_notifying(pki.server_config()).await;
        let (mut keyboard, console_in) = tokio::io::duplex(64 * 1024);
        let (console_out, mut screen) = tokio::io::duplex(64 * 1024);
        let g = graphline! {
            MAKESSL = OneShot::new(MakeSsl::new()),
            CONSOLE = ConsoleReader::from_reader(console_in),
            ECHO = ConsoleEchoer::with_writer(console_out),
            CONNECTION = TcpClient::new("127.0.0.1", addr.port())
                .tls(trusting(&pki))
                .wait_for_server_close(true),
            linkages = {
                ("MAKESSL", "outbox"): ("CONNECTION", "makessl"),
                ("CONSOLE", "outbox"): ("CONNECTION", "inbox"),
                ("CONNECTION", "outbox"): ("ECHO", "inbox"),
                ("CONSOLE", "signal"): ("CONNECTION", "control"),
                ("CONNECTION", "signal"): ("ECHO", "control"),
            }
        }
        .unwrap();
        let signal = Inbox::<Control>::standalone("signal", 64);
        axon::link_refs(&g.boxref("signal").unwrap(), &signal.boxref()).unwrap();
        let run = tokio::spawn(async move {
            Scheduler::new()
                .run(async {
                    g.activate();
                })
                .await
        });
        handshakes.recv().await.unwrap();
        let typed = b"hello over TLS\nand a second line\n";
        keyboard.write_all(typed).await.unwrap();
        drop(keyboard);
        let mut shown = Vec::new();
        let reading = screen.read_to_end(&mut shown);
        let (report, read) = tokio::join!(run, reading);
        read.unwrap();
        let report = report.unwrap();
        assert!(report.is_ok(), "{:?}", report.failures);
        assert_eq!(shown, typed);
        let all: Vec<Control> = std::iter::from_fn(|| signal.try_recv()).collect();
        assert!(
            !all.iter().any(|c| matches!(c, Control::Error(_))),
            "{all:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn ssl_console_example_program_round_trips_through_a_tls_echo_server() {
    let Some(bin) = client::example_bin("ssl_console") else {
        return;
    };
    bounded(async {
        let pki = TestPki::new();
        let ca = pki.write_ca_pem();
        let (addr, mut handshakes, _server) = client::tls_echo_notifying(pki.server_config()).await;
        let port = addr.port().to_string();
        let mut child = Command::new("timeout")
            .arg(kamaelia_test::TEST_TIMEOUT.as_secs().to_string())
            .arg(&bin)
            .args([OsStr::new("127.0.0.1"), port.as_ref(), "--ca".as_ref()])
            .arg(ca.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // Type only once TLS is up: input already waiting when the switch happens would be
        // sent before it, in plaintext (see the example's header).
        handshakes.recv().await.unwrap();
        let typed = b"GET / HTTP/1.0\r\n\r\n";
        let out = tokio::task::spawn_blocking(move || {
            stdin.write_all(typed).unwrap();
            drop(stdin);
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(out.stdout, typed);
        assert!(stderr.contains("TLS established: TLSv1.3"), "{stderr}");
    })
    .await;
}

#[tokio::test]
async fn ssl_console_example_program_rejects_an_untrusted_server() {
    let Some(bin) = client::example_bin("ssl_console") else {
        return;
    };
    bounded(async {
        let pki = TestPki::new();
        let stranger = TestPki::new();
        let ca = stranger.write_ca_pem();
        let (addr, _handshakes, _server) = client::tls_echo_notifying(pki.server_config()).await;
        let port = addr.port().to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new("timeout")
                .arg(kamaelia_test::TEST_TIMEOUT.as_secs().to_string())
                .arg(&bin)
                .args([OsStr::new("127.0.0.1"), port.as_ref(), "--ca".as_ref()])
                .arg(ca.path())
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("not trusted"), "{stderr}");
        assert!(out.stdout.is_empty());
    })
    .await;
}
