//! Unix domain sockets (issue 10 §6) through real processes: `connect --unix`, `listen --unix`
//! and `serve --unix`, byte-exact, against each other and against socat's UNIX-LISTEN and
//! UNIX-CONNECT; the stale-socket rule; TLS refused over --unix.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use kamaelia_test::sha256;
use support::hostile::Served;
use support::{args, peer_tool, random_bytes, run, start, Input, TempDir};

const LIMIT: Duration = Duration::from_secs(120);

/// Waits (bounded) until a socket file is at `path`.
fn wait_for_socket(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(started.elapsed() < LIMIT, "no socket at {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn connect_unix_to_serve_unix_echoes_byte_exact() {
    let dir = TempDir::new("unix-serve");
    let path = dir.path().join("echo.sock");
    let p = path.display().to_string();
    let served = Served::spawn(&["serve", "--unix", &p], support::hostile::Stderr::Collect);
    assert_eq!(served.printed, p, "serve prints the path");
    let data = random_bytes(3_000_000);
    let got = run(
        args(&["connect", "--unix", &p]),
        Input::Bytes(data.clone()),
        LIMIT,
    );
    got.expect_code(0)
        .expect_stderr(&format!("connected to {p}"));
    assert_eq!(sha256(&got.stdout), sha256(&data));
    // A second server on the same path is refused while the first listens.
    let second = run(
        args(&["serve", "--unix", &p]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    second
        .expect_code(1)
        .expect_stderr("another server is listening on it");
    served.interrupt();
    let (status, _) = served.finish(LIMIT);
    assert_eq!(status.code(), Some(130));
    assert!(!path.exists(), "the socket file is removed when serve ends");
}

#[test]
fn listen_unix_takes_a_std_client_both_ways_and_replaces_a_stale_socket() {
    let dir = TempDir::new("unix-listen");
    let path = dir.path().join("listen.sock");
    // A stale socket: bound, then its listener gone.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let p = path.display().to_string();
    let upload = random_bytes(2_000_000);
    let listening = start(
        args(&["listen", "--unix", &p]),
        Input::Bytes(upload.clone()),
    );
    // The stale file is replaced by a listening socket: wait until it answers.
    let started = Instant::now();
    let mut c = loop {
        match UnixStream::connect(&path) {
            Ok(c) => break c,
            Err(_) => {
                assert!(started.elapsed() < LIMIT, "listen --unix never listened");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    c.set_read_timeout(Some(LIMIT)).unwrap();
    let download = random_bytes(1_000_000);
    c.write_all(&download).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    let run = listening.finish(LIMIT);
    run.expect_code(0)
        .expect_stderr(&format!("listening on {p}"))
        .expect_stderr(&format!("connection on {p}"));
    assert_eq!(sha256(&got), sha256(&upload));
    assert_eq!(sha256(&run.stdout), sha256(&download));
}

#[test]
fn listen_unix_refuses_a_file_that_is_not_a_socket() {
    let dir = TempDir::new("unix-notsock");
    let path = dir.write("plain-file", b"keep me");
    let run = run(
        args(&["listen", "--unix", &path.display().to_string()]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    run.expect_code(1).expect_stderr("not a socket");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn unix_against_socat_listen_and_connect() {
    let Some(socat) = peer_tool("socat") else {
        return;
    };
    let dir = TempDir::new("unix-socat");
    // connect --unix to socat UNIX-LISTEN.
    let path = dir.path().join("socat.sock");
    let mut cmd = std::process::Command::new(&socat);
    cmd.args(["-t", "10", &format!("UNIX-LISTEN:{}", path.display()), "-"]);
    let peer = start(cmd, Input::Bytes(b"from socat\n".to_vec()));
    wait_for_socket(&path);
    let ours = run(
        args(&["connect", "--unix", &path.display().to_string()]),
        Input::Bytes(b"from kamaelia\n".to_vec()),
        LIMIT,
    );
    ours.expect_code(0);
    assert_eq!(ours.stdout, b"from socat\n");
    let theirs = peer.finish(LIMIT);
    assert_eq!(theirs.stdout, b"from kamaelia\n");

    // socat UNIX-CONNECT to listen --unix.
    let path = dir.path().join("listen.sock");
    let p = path.display().to_string();
    let listening = start(
        args(&["listen", "--unix", &p]),
        Input::Bytes(b"to socat\n".to_vec()),
    );
    wait_for_socket(&path);
    let mut cmd = std::process::Command::new(&socat);
    cmd.args(["-t", "10", "-", &format!("UNIX-CONNECT:{p}")]);
    let theirs = run(cmd, Input::Bytes(b"to listen\n".to_vec()), LIMIT);
    theirs.expect_code(0);
    assert_eq!(theirs.stdout, b"to socat\n");
    let ours = listening.finish(LIMIT);
    ours.expect_code(0);
    assert_eq!(ours.stdout, b"to listen\n");
}

#[test]
fn tls_over_unix_is_a_usage_error() {
    let run = run(
        args(&["connect", "--unix", "/nonexistent.sock", "--tls"]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    run.expect_code(2)
        .expect_stderr("TLS over --unix is not supported");
    let missing = connect_to_a_missing_socket();
    missing
        .expect_code(1)
        .expect_stderr("cannot connect to the Unix socket");
}

fn connect_to_a_missing_socket() -> support::Run {
    run(
        args(&["connect", "--unix", "/nonexistent-dir/none.sock"]),
        Input::Bytes(Vec::new()),
        LIMIT,
    )
}
