//! OneShot, ConsoleReader and ConsoleEchoer: in process against in-memory streams, and end to
//! end through the `console_echo` example run as a real child process.

use std::error::Error as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axon::{Component, ComponentFailure, Control, Inbox, Outbox, Scheduler};
use bytes::Bytes;
use kamaelia::{ConsoleEchoer, ConsoleError, ConsoleReader, OneShot, OneShotError, ReadMode};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

/// The error a component returned, from the runtime's `Control::Error` on its signal.
fn failure_source<E: std::error::Error + 'static>(c: &Control) -> &E {
    let failure = c
        .error_ref::<ComponentFailure>()
        .unwrap_or_else(|| panic!("expected an error on signal, got {c}"));
    failure
        .source()
        .and_then(|e| e.downcast_ref::<E>())
        .unwrap_or_else(|| panic!("unexpected failure {failure}"))
}

/// Collects `signal` up to and including its final message.
async fn until_final(signal: &Inbox<Control>) -> Vec<Control> {
    let mut out = Vec::new();
    loop {
        let c = signal.recv().await;
        let last = c.is_final();
        out.push(c);
        if last {
            return out;
        }
    }
}

/// Runs `c` alone in a scheduler of its own, to its end (within [`LIMIT`]).
async fn run_alone(c: Component) -> axon::RunReport {
    timeout(
        LIMIT,
        Scheduler::new().run(async {
            c.activate();
        }),
    )
    .await
    .unwrap()
}

fn link_out<T: Send + 'static>(c: &Component, name: &str, capacity: usize) -> Inbox<T> {
    let sink = Inbox::<T>::standalone(name, capacity);
    axon::link_refs(&c.boxref(name).unwrap(), &sink.boxref()).unwrap();
    sink
}

fn link_in<T: Send + 'static>(c: &Component, name: &str) -> Outbox<T> {
    let feed = Outbox::<T>::standalone(name);
    axon::link_refs(&feed.boxref(), &c.boxref(name).unwrap()).unwrap();
    feed
}

// ---------------------------------------------------------------------------------------------
// OneShot

#[tokio::test]
async fn one_shot_sends_its_message_then_producer_finished() {
    let shot: Component = OneShot::new(String::from("hello")).into();
    let outbox = link_out::<String>(&shot, "outbox", 4);
    let signal = link_out::<Control>(&shot, "signal", 4);
    let report = run_alone(shot).await;
    assert!(report.is_ok());
    assert_eq!(outbox.try_recv().as_deref(), Some("hello"));
    assert!(outbox.try_recv().is_none());
    let signals = until_final(&signal).await;
    assert_eq!(signals.len(), 1);
    assert!(signals[0].is_producer_finished());
    assert!(signal.try_recv().is_none());
}

#[tokio::test]
async fn one_shot_stuck_on_a_full_inbox_stops_on_shutdown() {
    let shot: Component = OneShot::new(2_u32).into();
    let full = link_out::<u32>(&shot, "outbox", 1);
    let other = Outbox::<u32>::standalone("other");
    axon::link(&other, &full).unwrap();
    other.try_send(1).unwrap();
    let signal = link_out::<Control>(&shot, "signal", 4);
    let report = timeout(
        LIMIT,
        Scheduler::new().run(async {
            // The inbox is full and nobody drains it: only the shutdown can end OneShot.
            assert!(shot.activate().stop());
        }),
    )
    .await
    .unwrap();
    assert!(report.is_ok());
    assert_eq!(full.try_recv(), Some(1));
    assert!(full.try_recv().is_none());
    assert!(until_final(&signal).await[0].is_shutdown());
}

#[tokio::test]
async fn one_shot_to_an_ended_component_reports_outbox_closed() {
    let mut b = Component::build("Gone");
    let inbox = b.inbox::<u32>("inbox", "never read");
    let gone = b.main(|_cx| async move {
        drop(inbox);
        Ok(())
    });
    let shot: Component = OneShot::new(7_u32).into();
    axon::link_refs(
        &shot.boxref("outbox").unwrap(),
        &gone.boxref("inbox").unwrap(),
    )
    .unwrap();
    let signal = link_out::<Control>(&shot, "signal", 4);
    let sched = Scheduler::new();
    timeout(
        LIMIT,
        sched.run(async {
            gone.activate();
        }),
    )
    .await
    .unwrap();
    let report = timeout(
        LIMIT,
        sched.run(async {
            shot.activate();
        }),
    )
    .await
    .unwrap();
    assert_eq!(report.failures.len(), 1);
    let signals = until_final(&signal).await;
    assert_eq!(
        failure_source::<OneShotError>(&signals[0]),
        &OneShotError::OutboxClosed
    );
    assert!(signals[1].is_producer_finished());
}

// ---------------------------------------------------------------------------------------------
// ConsoleEchoer and ConsoleReader in process

/// Runs an echoer that writes into a pipe whose other end is read to completion.
async fn echo_in_process(
    echoer: impl FnOnce(tokio::io::DuplexStream) -> ConsoleEchoer,
    setup: impl FnOnce(&Component),
) -> (axon::RunReport, Vec<u8>) {
    let (write, mut read) = tokio::io::duplex(1024);
    let echoer: Component = echoer(write).into();
    setup(&echoer);
    let sched = Scheduler::new();
    let running = sched.run(async {
        echoer.activate();
    });
    let reading = async {
        let mut out = Vec::new();
        read.read_to_end(&mut out).await.unwrap();
        out
    };
    timeout(LIMIT, async { tokio::join!(running, reading) })
        .await
        .unwrap()
}

#[tokio::test]
async fn echoer_writes_everything_queued_before_it_finishes() {
    let mut signal = None;
    let (report, out) = echo_in_process(ConsoleEchoer::with_writer, |e| {
        let data = link_in::<Bytes>(e, "inbox");
        let control = link_in::<Control>(e, "control");
        signal = Some(link_out::<Control>(e, "signal", 8));
        // All of it queued before the echoer starts: it sees ProducerFinished first, and must
        // still write the data that came before it.
        for chunk in [&b"\0\xff\xfe"[..], b"not utf-8: \xc3\x28", b"\r\n", b""] {
            data.try_send(Bytes::from_static(chunk)).unwrap();
        }
        control.try_send(Control::notice(5_u8)).unwrap();
        control.try_send(Control::producer_finished()).unwrap();
    })
    .await;
    assert!(report.is_ok());
    assert_eq!(out, b"\0\xff\xfenot utf-8: \xc3\x28\r\n");
    let signals = until_final(signal.as_ref().unwrap()).await;
    assert_eq!(signals.len(), 2);
    assert_eq!(signals[0].payload::<u8>(), Some(&5));
    assert!(signals[1].is_producer_finished());
}

#[tokio::test]
async fn echoer_as_forwarder_passes_each_message_on() {
    let mut copies = None;
    let (report, out) = echo_in_process(
        |w| ConsoleEchoer::with_writer(w).forwarder(true),
        |e| {
            let data = link_in::<Bytes>(e, "inbox");
            let control = link_in::<Control>(e, "control");
            copies = Some(link_out::<Bytes>(e, "outbox", 8));
            data.try_send(Bytes::from_static(b"a")).unwrap();
            data.try_send(Bytes::from_static(b"b")).unwrap();
            control.try_send(Control::shutdown()).unwrap();
        },
    )
    .await;
    assert!(report.is_ok());
    assert_eq!(out, b"ab");
    let copies = copies.unwrap();
    assert_eq!(copies.try_recv().unwrap(), "a");
    assert_eq!(copies.try_recv().unwrap(), "b");
}

#[tokio::test]
async fn echoer_reports_a_broken_pipe_on_signal() {
    let (write, read) = tokio::io::duplex(64);
    drop(read);
    let echoer: Component = ConsoleEchoer::with_writer(write).into();
    let data = link_in::<Bytes>(&echoer, "inbox");
    let signal = link_out::<Control>(&echoer, "signal", 8);
    data.try_send(Bytes::from_static(b"into the void")).unwrap();
    let report = run_alone(echoer).await;
    assert_eq!(report.failures.len(), 1);
    let signals = until_final(&signal).await;
    assert!(matches!(
        failure_source::<ConsoleError>(&signals[0]),
        ConsoleError::BrokenPipe
    ));
    assert!(signals[1].is_producer_finished());
}

#[tokio::test]
async fn reader_sends_lines_then_producer_finished_at_end_of_input() {
    let reader: Component = ConsoleReader::from_reader(&b"one\ntwo\nthree"[..])
        .read_mode(ReadMode::Lines)
        .into();
    let outbox = link_out::<Bytes>(&reader, "outbox", 8);
    let signal = link_out::<Control>(&reader, "signal", 8);
    let report = run_alone(reader).await;
    assert!(report.is_ok());
    let lines: Vec<Bytes> = std::iter::from_fn(|| outbox.try_recv()).collect();
    assert_eq!(lines, ["one\n", "two\n", "three"]);
    assert!(until_final(&signal).await[0].is_producer_finished());
}

#[tokio::test]
async fn reader_waiting_for_input_stops_on_shutdown() {
    // The writing end is kept open and silent: the read never completes by itself.
    let (_silent, read) = tokio::io::duplex(64);
    let reader: Component = ConsoleReader::from_reader(read).into();
    let control = link_in::<Control>(&reader, "control");
    let signal = link_out::<Control>(&reader, "signal", 8);
    control.try_send(Control::notice("first")).unwrap();
    control.try_send(Control::shutdown()).unwrap();
    let report = run_alone(reader).await;
    assert!(report.is_ok());
    let signals = until_final(&signal).await;
    assert_eq!(signals.len(), 2);
    assert_eq!(signals[0].payload::<&str>(), Some(&"first"));
    assert!(signals[1].is_shutdown());
}

#[tokio::test]
async fn reader_with_input_always_ready_still_stops_on_shutdown() {
    // Input that never waits: the reader must look at control between messages on its own,
    // not only when a read or a send has to wait (the outbox has room for 64 messages).
    let reader: Component = ConsoleReader::from_reader(tokio::io::repeat(b'x'))
        .chunk_size(16)
        .into();
    let control = link_in::<Control>(&reader, "control");
    let outbox = link_out::<Bytes>(&reader, "outbox", 64);
    let signal = link_out::<Control>(&reader, "signal", 8);
    control.try_send(Control::shutdown()).unwrap();
    let report = run_alone(reader).await;
    assert!(report.is_ok());
    assert!(until_final(&signal).await[0].is_shutdown());
    // It stopped for the shutdown, with room left downstream.
    assert!(outbox.len() < 64, "{} messages sent", outbox.len());
}

#[tokio::test]
async fn echoer_fed_without_pause_still_finishes_on_producer_finished() {
    let echoer: Component = ConsoleEchoer::with_writer(tokio::io::sink()).into();
    let data = link_in::<Bytes>(&echoer, "inbox");
    let control = link_in::<Control>(&echoer, "control");
    let signal = link_out::<Control>(&echoer, "signal", 8);
    control.try_send(Control::producer_finished()).unwrap();
    // A producer that never stops: the echoer must still see ProducerFinished and end.
    let feeding =
        tokio::spawn(async move { while data.send(Bytes::from_static(b"more")).await.is_ok() {} });
    let report = run_alone(echoer).await;
    assert!(report.is_ok());
    assert!(until_final(&signal).await[0].is_producer_finished());
    timeout(LIMIT, feeding).await.unwrap().unwrap();
}

/// A reader that always fails.
struct Failing;

impl AsyncRead for Failing {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut TaskContext<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Err(std::io::Error::other("disk on fire")))
    }
}

#[tokio::test]
async fn reader_reports_a_read_error_on_signal() {
    let reader: Component = ConsoleReader::from_reader(Failing).into();
    let signal = link_out::<Control>(&reader, "signal", 8);
    let report = run_alone(reader).await;
    assert_eq!(report.failures.len(), 1);
    let signals = until_final(&signal).await;
    let err = failure_source::<ConsoleError>(&signals[0]);
    assert!(matches!(err, ConsoleError::Read { .. }), "{err:?}");
    assert_eq!(err.source().unwrap().to_string(), "disk on fire");
    assert!(signals[1].is_producer_finished());
}

// ---------------------------------------------------------------------------------------------
// The console_echo example as a child process: real stdin, real stdout.

/// The built `console_echo` example (built here if `cargo test` has not built it).
fn console_echo() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| kamaelia_test::examples::example_bin("kamaelia", "console_echo"))
}

struct Echoed {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs console_echo with `input` on its stdin (closed afterwards); `read_stdout: false` closes
/// its stdout before anything is written. Killed if it outlives the time bound.
async fn console_echo_with(input: Vec<u8>, read_stdout: bool) -> Echoed {
    let bin = console_echo();
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stdout = read_stdout.then_some(stdout);
    let child = Arc::new(Mutex::new(child));
    let waiter = Arc::clone(&child);
    let talk = tokio::task::spawn_blocking(move || {
        // Written from its own thread so a child that fills its stdout pipe cannot deadlock us.
        let writer = std::thread::spawn(move || {
            // A child that stopped reading (closed stdout) makes this fail; that is its test.
            let _ = stdin.write_all(&input);
        });
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).unwrap();
            s
        });
        let mut out = Vec::new();
        if let Some(mut stdout) = stdout {
            stdout.read_to_end(&mut out).unwrap();
        }
        writer.join().unwrap();
        let stderr = errors.join().unwrap();
        let status = waiter.lock().unwrap().wait().unwrap();
        Echoed {
            status,
            stdout: out,
            stderr,
        }
    });
    match timeout(LIMIT, talk).await {
        Ok(done) => done.unwrap(),
        Err(_) => {
            if let Ok(mut c) = child.try_lock() {
                let _ = c.kill();
            }
            panic!("console_echo did not finish within {LIMIT:?}");
        }
    }
}

#[tokio::test]
async fn console_echo_round_trips_binary_data_byte_exact() {
    let mut input = b"plain line\n\0nul\0\xff\xfe\xc3\x28 invalid utf-8\r\n".to_vec();
    input.extend((0..=255u8).cycle().take(3 * 256));
    input.extend_from_slice(b"no newline at the end");
    let out = console_echo_with(input.clone(), true).await;
    assert!(out.status.success(), "{:?}: {}", out.status, out.stderr);
    assert!(out.stdout == input, "output differs from input");
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn console_echo_exits_0_at_end_of_input() {
    // Kamaelia's ConsoleReader raised EOFError here and took the process down.
    let out = console_echo_with(Vec::new(), true).await;
    assert!(out.status.success(), "{:?}: {}", out.status, out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr, "");
}

#[tokio::test]
async fn console_echo_round_trips_several_mib() {
    let mut input = vec![0; 5 * 1024 * 1024 + 3];
    rand::thread_rng().fill_bytes(&mut input);
    let out = console_echo_with(input.clone(), true).await;
    assert!(out.status.success(), "{:?}: {}", out.status, out.stderr);
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input, "output differs from input");
}

#[tokio::test]
async fn console_echo_reports_a_closed_stdout_and_exits_1() {
    let out = console_echo_with(b"nobody reads this\n".to_vec(), false).await;
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("broken pipe"), "{}", out.stderr);
}
