//! The client commands' own runtime (`session::run_single`, a `current_thread` runtime with
//! `axon::block_on`'s Ctrl-C handling): an interrupt while connected stops `connect` and
//! `send` with status 130, as it does `serve`. And standard output as a regular file, which
//! is written in place: at the offset the shell gave it. And the threads a plain `send` makes:
//! none beyond the main one when stderr is a file.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use support::{args, exit_within};

const LIMIT: Duration = Duration::from_secs(20);

/// Starts `kamaelia ARGS... 127.0.0.1 PORT [tail]` against a server written here that accepts
/// one connection and reads it without ever answering, waits until it is connected, sends
/// SIGINT, and returns the exit code.
fn interrupted_while_connected(before: &[&str], tail: &[&str]) -> Option<i32> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (accepted, connected) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let _ = accepted.send(());
        let mut buf = [0_u8; 1024];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut list: Vec<&str> = before.to_vec();
    list.extend(["127.0.0.1", &port]);
    list.extend(tail);
    // Standard input stays open (a pipe nobody writes to): only the interrupt can end it.
    let mut child = args(&list)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    connected
        .recv_timeout(LIMIT)
        .expect("kamaelia did not connect");
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -INT failed");
    let status = exit_within(&mut child, LIMIT).expect("kamaelia did not exit after Ctrl-C");
    status.code()
}

#[test]
fn connect_exits_130_on_ctrl_c() {
    assert_eq!(interrupted_while_connected(&["connect"], &[]), Some(130));
}

#[test]
fn send_from_stdin_exits_130_on_ctrl_c() {
    assert_eq!(interrupted_while_connected(&["send"], &["-"]), Some(130));
}

/// `{ echo first; kamaelia connect ...; } >> file`: the bytes go after what was in the file and
/// what was written before, not over them (the output shares the shell's open file).
#[test]
fn connect_writes_a_regular_file_stdout_at_the_shells_offset() {
    let dir = support::TempDir::new("stdout-file");
    let path = dir.write("out", b"before\n");
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    out.write_all(b"first\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let payload = support::random_bytes(300_000);
    let sent = payload.clone();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(&sent).unwrap();
        // Closing ends the session: connect exits once its input has ended too.
    });
    let mut child = args(&["connect", "127.0.0.1", &port])
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = exit_within(&mut child, LIMIT).expect("kamaelia did not exit");
    assert!(status.success(), "{status:?}");
    out.write_all(b"after\n").unwrap();
    let got = std::fs::read(&path).unwrap();
    let mut want = b"before\nfirst\n".to_vec();
    want.extend_from_slice(&payload);
    want.extend_from_slice(b"after\n");
    assert!(got == want, "{} bytes, expected {}", got.len(), want.len());
}

/// Where `send_holding` sends its stderr.
enum Stderr {
    File,
    Pipe,
}

/// Runs `kamaelia send` of a small file to a server written here that reads everything and
/// then holds the connection open; once the "connected to" line is on stderr, returns how many
/// threads the process has, and lets it finish (exit 0).
fn threads_while_connected(stderr: Stderr) -> usize {
    let dir = support::TempDir::new("threads");
    let file = dir.write("input", &[0x5a; 1024]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (release, released) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0_u8; 1024];
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
        // Hold the connection (the client waits for the server to close) until released.
        let _ = released.recv_timeout(LIMIT);
    });
    let log = dir.path().join("stderr");
    let mut cmd = args(&["send", "127.0.0.1", &port, file.to_str().unwrap()]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    match stderr {
        Stderr::File => cmd.stderr(std::fs::File::create(&log).unwrap()),
        Stderr::Pipe => cmd.stderr(Stdio::piped()),
    };
    let mut child = cmd.spawn().unwrap();
    let (seen, line_seen) = mpsc::channel::<()>();
    if let Some(mut pipe) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let mut buf = [0_u8; 256];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                text.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&text).contains("connected to") {
                    let _ = seen.send(());
                }
            }
        });
    } else {
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + LIMIT;
            while std::time::Instant::now() < deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("connected to") {
                    let _ = seen.send(());
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
    }
    line_seen
        .recv_timeout(LIMIT)
        .expect("no \"connected to\" line on stderr");
    let threads = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .count();
    drop(release);
    let status = exit_within(&mut child, LIMIT).expect("kamaelia did not exit");
    assert!(status.success(), "{status:?}");
    threads
}

/// Event lines to a file (or `/dev/null`) are written in place, and so are lines to a pipe
/// that is read (opened again non-blocking): a plain `send` of a file runs on the main thread
/// alone. Only a line that would wait starts the writer thread, which never lets a reader that
/// does not read hold the program up (`serve_keeps_accepting_while_nobody_reads_its_stderr`).
#[test]
fn send_of_a_file_runs_on_one_thread_with_stderr_a_file_or_a_pipe() {
    assert_eq!(threads_while_connected(Stderr::File), 1);
    assert_eq!(threads_while_connected(Stderr::Pipe), 1);
}
