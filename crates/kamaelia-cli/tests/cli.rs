//! The `kamaelia` program end to end: the built binary, real pipes, servers in this process.
//! Every run is bounded by a deadline and killed if it overruns.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use kamaelia_test::{sha256, unshare_works};
use support::certs::Pki;
use support::servers;
use support::{args, random_bytes, run, start, starttls_args, Input, TempDir};

const LIMIT: Duration = Duration::from_secs(30);

fn port(addr: std::net::SocketAddr) -> String {
    addr.port().to_string()
}

// connect: the page's SSL Graphline with the real console.

#[test]
fn connect_plain_echoes_stdin_and_exits_0_after_the_server_closes() {
    let addr = servers::echo_server("127.0.0.1:0");
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(b"hello\nworld\n".to_vec()),
        LIMIT,
    );
    r.expect_code(0)
        .expect_stderr(&format!("connected to {addr}"))
        .expect_stderr("closed");
    assert_eq!(r.stdout, b"hello\nworld\n");
}

#[test]
fn connect_tls_verifies_against_the_given_ca() {
    let pki = Pki::new();
    let addr = servers::tls_echo_server(pki.server_config(), true);
    let ca = pki.ca_pem.to_str().unwrap();
    let r = run(
        args(&[
            "connect",
            "--tls",
            "--ca",
            ca,
            "localhost",
            &port(addr),
            "-4",
        ]),
        Input::Bytes(b"over TLS\n".to_vec()),
        LIMIT,
    );
    r.expect_code(0).expect_stderr("TLS established: TLSv1.3");
    assert_eq!(r.stdout, b"over TLS\n");
    assert!(!r.stderr.contains("truncation"), "{}", r.stderr);
}

#[test]
fn connect_tls_without_close_notify_warns_of_truncation_and_exits_0() {
    let pki = Pki::new();
    let addr = servers::tls_echo_server(pki.server_config(), false);
    let r = run(
        args(&[
            "connect",
            "--tls",
            "--ca",
            pki.ca_pem.to_str().unwrap(),
            "127.0.0.1",
            &port(addr),
        ]),
        Input::Bytes(b"x".to_vec()),
        LIMIT,
    );
    r.expect_code(0).expect_stderr("possible truncation");
    assert_eq!(r.stdout, b"x");
}

#[test]
fn connect_starttls_smtp_switches_after_the_dialogue() {
    let pki = Pki::new();
    let addr = servers::smtp_server(pki.server_config(), b"");
    let r = run(
        args(&[
            "connect",
            "--starttls",
            "smtp",
            "--ca",
            pki.ca_pem.to_str().unwrap(),
            "--servername",
            "localhost",
            // The fake server echoes until close_notify (a real one closes after QUIT).
            "--shutdown",
            "127.0.0.1",
            &port(addr),
        ]),
        Input::Bytes(b"EHLO again\r\nQUIT\r\n".to_vec()),
        LIMIT,
    );
    r.expect_code(0).expect_stderr("TLS established");
    // Only what came after the switch, byte-exact: the plaintext dialogue is not on stdout.
    assert_eq!(r.stdout, b"EHLO again\r\nQUIT\r\n");
}

#[test]
fn connect_starttls_refuses_plaintext_injected_after_the_go_ahead() {
    let pki = Pki::new();
    let addr = servers::smtp_server(pki.server_config(), b"250 injected\r\n");
    let r = run(
        args(&[
            "connect",
            "--starttls",
            "smtp",
            "--ca",
            pki.ca_pem.to_str().unwrap(),
            "127.0.0.1",
            &port(addr),
        ]),
        Input::KeepOpen(b"secret\r\n".to_vec()),
        LIMIT,
    );
    r.expect_code(1).expect_stderr("injection");
    assert!(r.stdout.is_empty());
}

#[test]
fn serve_and_connect_speak_tls_and_starttls_to_each_other() {
    let pki = Pki::new();
    for extra in [&[][..], &["--starttls"][..]] {
        let mut serve = args(&[
            "serve",
            "0",
            "--cert",
            pki.cert_pem.to_str().unwrap(),
            "--key",
            pki.key_pem.to_str().unwrap(),
        ]);
        serve
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut server = support::KillOnDrop(serve.spawn().unwrap());
        let mut line = String::new();
        BufReader::new(server.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr: std::net::SocketAddr = line.trim().parse().expect("serve prints its address");
        let mode: &[&str] = if extra.is_empty() {
            &["--tls"]
        } else {
            // An echo server answers only what it is sent and never closes first: the
            // half-close (not STARTTLS's default) ends the session.
            &["--starttls", "smtp", "--shutdown"]
        };
        let mut c = args(&["connect"]);
        c.args(mode).args([
            "--ca",
            pki.ca_pem.to_str().unwrap(),
            "localhost",
            &port(addr),
        ]);
        let r = run(c, Input::Bytes(b"ping\n".to_vec()), LIMIT);
        drop(server);
        r.expect_code(0).expect_stderr("TLS established");
        assert_eq!(r.stdout, b"ping\n");
    }
}

#[test]
fn connect_binary_data_comes_back_byte_exact() {
    let addr = servers::echo_server("127.0.0.1:0");
    let mut data: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    data.extend(random_bytes(1 << 20));
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(data.clone()),
        LIMIT,
    );
    r.expect_code(0);
    assert_eq!(r.stdout.len(), data.len());
    assert!(r.stdout == data, "binary data differs");
}

#[test]
fn connect_20_mib_both_ways_at_once_does_not_deadlock() {
    let addr = servers::echo_server("127.0.0.1:0");
    let data = random_bytes(20 << 20);
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(data.clone()),
        Duration::from_secs(120),
    );
    r.expect_code(0);
    assert_eq!(r.stdout.len(), data.len());
    assert_eq!(sha256(&r.stdout), sha256(&data));
}

#[test]
fn connect_ipv6_loopback_with_and_without_brackets() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    }
    let addr = servers::echo_server("[::1]:0");
    for host in ["::1", "[::1]"] {
        let r = run(
            args(&["connect", "-6", host, &port(addr)]),
            Input::Bytes(b"six\n".to_vec()),
            LIMIT,
        );
        r.expect_code(0).expect_stderr("connected to [::1]:");
        assert_eq!(r.stdout, b"six\n");
    }
}

#[test]
fn connect_a_name_that_resolves_to_ipv6_only() {
    if std::net::TcpListener::bind("[::1]:0").is_err() || !unshare_works(&["-m"]) {
        eprintln!("skipped: needs IPv6 loopback and `unshare -m` (root) to mount a hosts file");
        return;
    }
    let addr = servers::echo_server("[::1]:0");
    let dir = TempDir::new("hosts");
    let hosts = dir.write("hosts", b"::1 v6only.test\n");
    let script = format!(
        "mount --bind {} /etc/hosts && exec \"$0\" connect v6only.test {}",
        hosts.display(),
        addr.port()
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "sh", "-c", &script, env!("CARGO_BIN_EXE_kamaelia")]);
    let r = run(c, Input::Bytes(b"via ::1\n".to_vec()), LIMIT);
    r.expect_code(0).expect_stderr("connected to [::1]:");
    assert_eq!(r.stdout, b"via ::1\n");
}

/// Runs `kamaelia ARGS` with a terminal (a pty that stays open) as its standard input.
fn with_terminal_stdin(list: &[&str]) -> std::process::Command {
    const PTY: &str = "import pty, subprocess, sys\n\
        master, slave = pty.openpty()\n\
        sys.exit(subprocess.run(sys.argv[1:], stdin=slave).returncode)\n";
    let mut c = std::process::Command::new("python3");
    c.args(["-c", PTY, env!("CARGO_BIN_EXE_kamaelia")])
        .args(list);
    c
}

#[test]
fn connect_typed_at_a_terminal_ends_when_the_server_closes() {
    let addr = servers::closing_server(b"221 bye\n");
    let r = run(
        with_terminal_stdin(&["connect", "127.0.0.1", &port(addr)]),
        Input::KeepOpen(Vec::new()),
        Duration::from_secs(10),
    );
    r.expect_code(0);
    assert_eq!(r.stdout, b"221 bye\n");
}

#[test]
fn connect_json_events_prints_signal_messages_as_json() {
    let addr = servers::echo_server("127.0.0.1:0");
    let r = run(
        args(&["connect", "--json-events", "127.0.0.1", &port(addr)]),
        Input::Bytes(b"j".to_vec()),
        LIMIT,
    );
    r.expect_code(0)
        .expect_stderr("\"type\":\"Connected\"")
        .expect_stderr("\"kind\":\"producer_finished\"");
    for line in r.stderr.lines() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }
}

// Failures: exit 1 at once, with stdin still open, and one line in plain words.

fn fails_with(extra: &[&str], host: &str, port: &str, line: &str) {
    let mut c = args(&["connect"]);
    c.args(extra).args([host, port]);
    let r = run(c, Input::KeepOpen(Vec::new()), Duration::from_secs(15));
    r.expect_code(1).expect_stderr(line);
    assert!(r.stdout.is_empty());
}

#[test]
fn connect_refused() {
    fails_with(
        &[],
        "127.0.0.1",
        &port(servers::closed_port()),
        "connection refused",
    );
}

#[test]
fn connect_timed_out() {
    let hanging = kamaelia_test::net::full_backlog();
    let addr = hanging.addr;
    let started = std::time::Instant::now();
    fails_with(
        &["--connect-timeout", "0.5"],
        "127.0.0.1",
        &port(addr),
        "timed out",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn connect_could_not_resolve() {
    if !unshare_works(&["-n"]) {
        eprintln!("skipped: `unshare -n` is not available, and a real resolver may hang");
        return;
    }
    let mut c = std::process::Command::new("unshare");
    c.args([
        "-n",
        env!("CARGO_BIN_EXE_kamaelia"),
        "connect",
        "no-such-host.invalid",
        "80",
    ]);
    let r = run(c, Input::KeepOpen(Vec::new()), Duration::from_secs(20));
    r.expect_code(1)
        .expect_stderr("could not resolve no-such-host.invalid");
}

#[test]
fn connect_reset_by_peer() {
    let addr = servers::resetting_server();
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::KeepOpen(Vec::new()),
        Duration::from_secs(15),
    );
    r.expect_code(1).expect_stderr("connection reset by peer");
    assert_eq!(r.stdout, b"hi\n");
}

#[test]
fn connect_tls_certificate_not_trusted() {
    let pki = Pki::new();
    let addr = servers::tls_echo_server(pki.server_config(), true);
    fails_with(
        &["--tls"],
        "localhost",
        &port(addr),
        "TLS certificate not trusted",
    );
}

#[test]
fn connect_tls_name_mismatch() {
    let pki = Pki::new();
    let addr = servers::tls_echo_server(pki.server_config(), true);
    fails_with(
        &[
            "--tls",
            "--ca",
            pki.ca_pem.to_str().unwrap(),
            "--servername",
            "wrong.example",
        ],
        "127.0.0.1",
        &port(addr),
        "TLS certificate name mismatch",
    );
}

#[test]
fn connect_tls_to_a_plaintext_server_fails_the_handshake() {
    let addr = servers::closing_server(b"this is not TLS at all\r\n");
    fails_with(&["--tls"], "127.0.0.1", &port(addr), "TLS handshake failed");
}

// Usage errors: exit 2 with a message, before anything runs.

#[test]
fn usage_errors_exit_2() {
    let cases: &[(&[&str], &str)] = &[
        (&["connect", "localhost", "70000"], "out of range"),
        (&["connect", "localhost"], "PORT"),
        (&["connect", "localhost", "0"], "port 0"),
        (&["connect", "--delay", "soon", "localhost", "1"], "seconds"),
        (
            &["connect", "-4", "-6", "localhost", "1"],
            "cannot be used with",
        ),
        (
            &["connect", "--ca", "/nonexistent.pem", "--tls", "h", "1"],
            "/nonexistent.pem",
        ),
        (
            &["send", "--rate", "0", "localhost", "1", "-"],
            "at least 1 byte",
        ),
        (
            &["send", "localhost", "1", "/nonexistent-file"],
            "cannot read",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (argv, text) in cases {
        let r = run(args(argv), Input::Bytes(Vec::new()), LIMIT);
        assert_eq!(r.code(), 2, "{argv:?}: {}", r.stderr);
        assert!(r.stderr.contains(text), "{argv:?}: {}", r.stderr);
    }
}

// send: the page's Pipeline.

#[test]
fn send_paces_the_file_at_the_rate_within_25_percent() {
    // Timed where the bytes arrive, from the connection's accept to its end: the process's
    // own start (a debug build, slow on a loaded machine) is not the pace.
    let (addr, got) = servers::sink_server_timed();
    let dir = TempDir::new("rate");
    let file = dir.write("payload", &random_bytes(300_000));
    let r = run(
        args(&[
            "send",
            "--rate",
            "200k",
            "127.0.0.1",
            &port(addr),
            file.to_str().unwrap(),
        ]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(0).expect_stderr("sent 300000 bytes");
    let (n, lasted) = got.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(n, 300_000);
    assert_eq!(r.stdout, b"got 300000\n");
    let secs = lasted.as_secs_f64();
    eprintln!(
        "the connection lasted {secs:.3} s (the process {:.3} s)",
        r.elapsed.as_secs_f64()
    );
    assert!(
        (1.125..=1.875).contains(&secs),
        "the connection lasted {secs:.3} s, want 1.5 s ± 25%"
    );
}

#[test]
fn send_stdin_over_tls_arrives_whole() {
    let pki = Pki::new();
    let addr = servers::tls_echo_server(pki.server_config(), true);
    let data = random_bytes(512 * 1024);
    let r = run(
        args(&[
            "send",
            "--tls",
            "--ca",
            pki.ca_pem.to_str().unwrap(),
            "--chunk-size",
            "16k",
            "localhost",
            &port(addr),
            "-",
        ]),
        Input::Bytes(data.clone()),
        LIMIT,
    );
    r.expect_code(0)
        .expect_stderr("TLS established")
        .expect_stderr("sent 524288 bytes");
    assert!(r.stdout == data, "the echo differs");
}

#[test]
fn send_to_a_refused_port_fails_with_a_summary() {
    let dir = TempDir::new("refused");
    let file = dir.write("f", b"data");
    let r = run(
        args(&[
            "send",
            "127.0.0.1",
            &port(servers::closed_port()),
            file.to_str().unwrap(),
        ]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(1)
        .expect_stderr("connection refused")
        .expect_stderr("sent ");
}

// demo: the README's first command.

#[test]
fn demo_runs_offline_and_exits_0() {
    let r = start(args(&["demo"]), Input::Bytes(Vec::new())).finish(Duration::from_secs(60));
    r.expect_code(0);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.contains("All checks passed."), "{out}");
    assert!(out.contains("TLS established: TLSv1.3"), "{out}");
    assert!(out.contains("digraph axon {"), "{out}");
}

// The server's half-close ends what it sends, never the upload (issue 8, §1).

const GREETING: &[u8] = &[b'g'; 1000];

#[test]
fn connect_sends_all_its_input_after_the_server_half_closes() {
    let (addr, rx) = servers::half_closing_server(GREETING);
    let data = random_bytes(20 << 20);
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(data.clone()),
        LIMIT,
    );
    r.expect_code(0);
    assert_eq!(r.stdout, GREETING);
    let got = rx.recv_timeout(LIMIT).expect("the server's report");
    assert_eq!(got.bytes, data.len() as u64, "{}", r.stderr);
    assert_eq!(got.sha256, sha256(&data));
}

#[test]
fn send_delivers_the_whole_file_to_a_receive_only_peer() {
    let (addr, rx) = servers::half_closing_server(b"");
    let dir = TempDir::new("recv-only");
    let data = random_bytes(100_000_000);
    let file = dir.write("100MB.bin", &data);
    let r = run(
        args(&["send", "127.0.0.1", &port(addr), file.to_str().unwrap()]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(0).expect_stderr("sent 100000000 bytes");
    let got = rx.recv_timeout(LIMIT).expect("the server's report");
    assert_eq!(got.bytes, data.len() as u64, "{}", r.stderr);
    assert_eq!(got.sha256, sha256(&data));
}

/// One of nc, ncat, socat as the server: `tool_args` with `{P}` for the port, stdin from
/// `server_input`; returns what it wrote to its stdout once `client` has run against it.
fn against_tool(
    tool: &str,
    tool_args: &[&str],
    server_input: &[u8],
    client: impl FnOnce(u16) -> support::Run,
) -> Option<(support::Run, support::servers::Received)> {
    let path = support::peer_tool(tool)?;
    let dir = TempDir::new(tool);
    let input = dir.write("server-in", server_input);
    let output = dir.path().join("server-out");
    let p = support::free_port();
    let mut child = support::KillOnDrop(
        std::process::Command::new(path)
            .args(tool_args.iter().map(|a| a.replace("{P}", &p.to_string())))
            .stdin(std::fs::File::open(&input).unwrap())
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_listening(p, LIMIT);
    let r = client(p);
    support::wait_child(&mut child.0, LIMIT);
    Some((r, support::sha256_file(&output)))
}

#[test]
fn connect_sends_all_its_input_after_nc_ncat_or_socat_half_close() {
    let data = random_bytes(20 << 20);
    let servers: [(&str, &[&str]); 3] = [
        ("nc", &["-N", "-l", "127.0.0.1", "{P}"]),
        ("ncat", &["-l", "127.0.0.1", "{P}"]),
        (
            "socat",
            &[
                "-t",
                "30",
                "TCP-LISTEN:{P},bind=127.0.0.1,reuseaddr",
                "STDIO",
            ],
        ),
    ];
    for (tool, tool_args) in servers {
        let client = |p: u16| {
            run(
                args(&["connect", "127.0.0.1", &p.to_string()]),
                Input::Bytes(data.clone()),
                LIMIT,
            )
        };
        let Some((r, got)) = against_tool(tool, tool_args, GREETING, client) else {
            continue;
        };
        r.expect_code(0);
        assert_eq!(r.stdout, GREETING, "{tool}");
        assert_eq!(got.bytes, data.len() as u64, "{tool}: {}", r.stderr);
        assert_eq!(got.sha256, sha256(&data), "{tool}");
    }
}

#[test]
fn send_delivers_the_whole_file_to_receive_only_nc_and_ncat() {
    let dir = TempDir::new("send-tools");
    let data = random_bytes(100_000_000);
    let file = dir.write("100MB.bin", &data);
    let servers: [(&str, &[&str]); 3] = [
        ("ncat", &["-l", "--recv-only", "127.0.0.1", "{P}"]),
        ("nc", &["-N", "-l", "127.0.0.1", "{P}"]),
        ("ncat", &["-l", "127.0.0.1", "{P}"]),
    ];
    for (tool, tool_args) in servers {
        let client = |p: u16| {
            run(
                args(&["send", "127.0.0.1", &p.to_string(), file.to_str().unwrap()]),
                Input::Bytes(Vec::new()),
                LIMIT,
            )
        };
        // The server's stdin is empty: it half-closes at once.
        let Some((r, got)) = against_tool(tool, tool_args, b"", client) else {
            continue;
        };
        r.expect_code(0);
        assert_eq!(
            got.bytes,
            data.len() as u64,
            "{tool} {tool_args:?}: {}",
            r.stderr
        );
        assert_eq!(got.sha256, sha256(&data), "{tool}");
    }
}

// Flag values that parse but cannot be honoured are usage errors, never a panic (§2.10, §2.12).

#[test]
fn a_huge_chunk_size_or_duration_is_a_usage_error() {
    let dir = TempDir::new("huge-flags");
    let file = dir.write("small.txt", b"small\n");
    let f = file.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["send", "--chunk-size", "100G", "127.0.0.1", "1", f],
            "too large",
        ),
        (
            &["send", "--chunk-size", "100G", "127.0.0.1", "1", "-"],
            "too large",
        ),
        (
            &["connect", "--connect-timeout", "1e19", "127.0.0.1", "1"],
            "too long",
        ),
        (
            &["connect", "--delay", "1e300", "127.0.0.1", "1"],
            "too long",
        ),
        (
            &["connect", "--idle-timeout", "inf", "127.0.0.1", "1"],
            "too long",
        ),
        (
            &["connect", "--connect-timeout", "NaN", "127.0.0.1", "1"],
            "seconds",
        ),
        (
            &["connect", "--idle-timeout", "0", "127.0.0.1", "1"],
            "more than 0",
        ),
        (
            &["connect", "--connect-timeout", "1e-300", "127.0.0.1", "1"],
            "more than 0",
        ),
    ];
    for (argv, text) in cases {
        let r = run(args(argv), Input::Bytes(Vec::new()), LIMIT);
        assert_eq!(r.code(), 2, "{argv:?}: {}", r.stderr);
        assert!(r.stderr.contains(text), "{argv:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{argv:?}: {}", r.stderr);
    }
}

#[test]
fn the_longest_durations_accepted_do_not_overflow_a_clock() {
    let p = port(servers::closed_port());
    let r = run(
        args(&[
            "connect",
            "--connect-timeout",
            "1e9",
            "--idle-timeout",
            "1e9",
            "127.0.0.1",
            &p,
        ]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(1).expect_stderr("connection refused");
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

// send reads what it is given once, and checks the size of regular files only (§2.8, §2.9).

#[test]
fn send_from_a_fifo_opens_it_once_and_sends_what_the_writer_wrote() {
    let (addr, rx) = servers::sink_server();
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("ff");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        // Opening for writing waits for the reader; a reader that opened, closed and opened
        // again would leave the second open waiting for a writer that has gone.
        std::thread::spawn(move || std::fs::write(fifo, b"data\n"))
    };
    let r = run(
        args(&["send", "127.0.0.1", &port(addr), fifo.to_str().unwrap()]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(0);
    assert!(writer.join().unwrap().is_ok());
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 5);
    assert_eq!(r.stdout, b"got 5\n");
}

#[test]
fn send_from_a_proc_file_sends_every_byte_and_exits_0() {
    let (addr, rx) = servers::sink_server();
    let r = run(
        args(&["send", "127.0.0.1", &port(addr), "/proc/self/status"]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(0);
    assert!(!r.stderr.contains("only"), "{}", r.stderr);
    let got = rx.recv_timeout(LIMIT).unwrap();
    assert!(got > 0);
    r.expect_stderr(&format!("sent {got} bytes"));
}

// --crlf: LF sent as CRLF, CRLF left alone, across reads (§1).

#[test]
fn connect_crlf_sends_bare_lf_as_crlf() {
    let (addr, rx) = servers::half_closing_server(b"");
    let r = run(
        args(&["connect", "--crlf", "127.0.0.1", &port(addr)]),
        Input::Bytes(b"EHLO me\nDATA\r\n.\n\nQUIT".to_vec()),
        LIMIT,
    );
    r.expect_code(0);
    let got = rx.recv_timeout(LIMIT).unwrap();
    let want = b"EHLO me\r\nDATA\r\n.\r\n\r\nQUIT";
    assert_eq!(got.bytes, want.len() as u64);
    assert_eq!(got.sha256, sha256(want));
}

// The STARTTLS client dialogue: its clock, its caps, and IMAP's BYE (§2.6, §2.13).

#[test]
fn connect_starttls_dialogue_clock_starts_when_connected_not_during_the_delay() {
    let pki = Pki::new();
    let addr = servers::smtp_server(pki.server_config(), b"");
    let p = port(addr);
    let argv = starttls_args(
        &pki,
        "smtp",
        &p,
        &["--delay", "1.5", "--starttls-timeout", "1", "--shutdown"],
    );
    let r = run(args(&argv), Input::Bytes(b"after\r\n".to_vec()), LIMIT);
    r.expect_code(0).expect_stderr("TLS established");
    assert_eq!(r.stdout, b"after\r\n");
}

#[test]
fn connect_starttls_imap_bye_before_the_tagged_reply_fails_at_once() {
    let pki = Pki::new();
    let addr = servers::scripted_server(b"* OK ready\r\n", b"* BYE server shutting down\r\n");
    let p = port(addr);
    let r = run(
        args(&starttls_args(&pki, "imap", &p, &[])),
        Input::KeepOpen(Vec::new()),
        LIMIT,
    );
    r.expect_code(1).expect_stderr("said goodbye");
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
}

#[test]
fn connect_starttls_endless_continuation_lines_are_cut_off() {
    let pki = Pki::new();
    let addr = servers::endless_ehlo_server();
    let p = port(addr);
    let r = run(
        args(&starttls_args(&pki, "smtp", &p, &[])),
        Input::KeepOpen(Vec::new()),
        LIMIT,
    );
    r.expect_code(1).expect_stderr("reply lines");
    assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
}

// How a session ends: --no-shutdown, --idle-timeout, a peer gone mid-upload, and the last line.

#[test]
fn connect_no_shutdown_gets_every_reply_from_a_server_that_hangs_up_on_half_close() {
    let input = b"EHLO me\r\nMAIL FROM:<a@b>\r\nQUIT\r\n".to_vec();
    let want = b"250 EHLO me\r\n250 MAIL FROM:<a@b>\r\n250 QUIT\r\n";
    let (addr, rx) = servers::hangs_up_on_half_close_server();
    let r = run(
        args(&["connect", "--no-shutdown", "127.0.0.1", &port(addr)]),
        Input::Bytes(input.clone()),
        LIMIT,
    );
    r.expect_code(0)
        .expect_stderr("input ended (32 bytes sent); the server closed after sending 44 bytes");
    assert_eq!(r.stdout, want);
    assert!(rx.recv_timeout(LIMIT).unwrap(), "the server did not answer");

    // Without it, the half-close makes such a server hang up before it answers; the last line
    // says what to try.
    let (addr, rx) = servers::hangs_up_on_half_close_server();
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(input),
        LIMIT,
    );
    r.expect_code(0)
        .expect_stderr("the server closed after sending 0 bytes")
        .expect_stderr("try --no-shutdown");
    assert!(r.stdout.is_empty());
    assert!(!rx.recv_timeout(LIMIT).unwrap());
}

/// A user asking for 1 s of silence gets at least 1 s after the last byte, measured from an
/// event the program cannot precede: the server's clock read before it writes that byte.
/// (Measured from the spawn as read after it, the test once saw 491 ms of a 0.5 s timeout:
/// its own clock had started late.) The server is quiet for 0.3 s before the byte, so a
/// timeout counted from the connection, not from the last byte, would end the session too
/// early (0.7 s after the byte); 0.7 s of margin for the server's threads under load.
#[test]
fn connect_idle_timeout_ends_a_quiet_session_with_exit_1() {
    let (addr, sent) = servers::late_byte_server(Duration::from_millis(300), b'x');
    let r = run(
        args(&["connect", "--idle-timeout", "1", "127.0.0.1", &port(addr)]),
        Input::KeepOpen(Vec::new()),
        LIMIT,
    );
    r.expect_code(1)
        .expect_stderr("idle timeout: no traffic either way for 1 s");
    assert_eq!(r.stdout, b"x");
    let sent = sent.recv_timeout(LIMIT).expect("the server sent its byte");
    let quiet = r.ended.duration_since(sent);
    assert!(quiet >= Duration::from_secs(1), "{quiet:?}");
    assert!(quiet < Duration::from_secs(10), "{quiet:?}");
}

#[test]
fn send_to_a_peer_that_closes_mid_upload_exits_1_saying_what_was_not_delivered() {
    let (addr, rx) = servers::closing_mid_upload_server(1 << 20);
    let dir = TempDir::new("mid-upload");
    let file = dir.write("20MB.bin", &random_bytes(20_000_000));
    let r = run(
        args(&["send", "127.0.0.1", &port(addr), file.to_str().unwrap()]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(1).expect_stderr(" of 20000000 bytes sent, ");
    assert!(
        r.stderr.contains("connection reset by peer") || r.stderr.contains("broken pipe"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not delivered"), "{}", r.stderr);
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), 1 << 20);
}

#[test]
fn connect_to_a_peer_that_closes_mid_upload_exits_1_saying_what_was_not_delivered() {
    let (addr, _rx) = servers::closing_mid_upload_server(1 << 20);
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(random_bytes(20 << 20)),
        LIMIT,
    );
    r.expect_code(1)
        .expect_stderr(" bytes sent, ")
        .expect_stderr("not delivered");
}

#[test]
fn the_last_line_says_what_the_server_sent_and_that_the_input_was_sent_whole() {
    let (addr, _rx) = servers::half_closing_server(GREETING);
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(b"12345".to_vec()),
        LIMIT,
    );
    // Which came first (the server's FIN or the end of our 5 bytes) is a race; the line
    // tells them in the order they happened.
    r.expect_code(0)
        .expect_stderr("the server closed after sending 1000 bytes")
        .expect_stderr("input ended (5 bytes sent)");
    // The server echoes, so it closes after our input ended.
    let addr = servers::echo_server("127.0.0.1:0");
    let r = run(
        args(&["connect", "127.0.0.1", &port(addr)]),
        Input::Bytes(b"12345".to_vec()),
        LIMIT,
    );
    r.expect_code(0)
        .expect_stderr("input ended (5 bytes sent); the server closed after sending 5 bytes");
}

#[test]
fn crlf_idle_timeout_and_a_peer_gone_mid_upload_against_nc_and_ncat() {
    // --crlf: ncat as the receiver.
    let client = |p: u16| {
        run(
            args(&["connect", "--crlf", "127.0.0.1", &p.to_string()]),
            Input::Bytes(b"HELO a\nQUIT\r\n".to_vec()),
            LIMIT,
        )
    };
    if let Some((r, got)) = against_tool("ncat", &["-l", "127.0.0.1", "{P}"], b"", client) {
        r.expect_code(0);
        assert_eq!(got.sha256, sha256(b"HELO a\r\nQUIT\r\n"), "{}", r.stderr);
    }

    // --idle-timeout: nc as a server that never sends and never closes (no -N).
    let client = |p: u16| {
        run(
            args(&[
                "connect",
                "--idle-timeout",
                "0.5",
                "127.0.0.1",
                &p.to_string(),
            ]),
            Input::KeepOpen(Vec::new()),
            LIMIT,
        )
    };
    if let Some((r, _)) = against_tool("nc", &["-l", "127.0.0.1", "{P}"], b"", client) {
        r.expect_code(1).expect_stderr("idle timeout");
    }

    // A peer gone mid-upload: ncat whose reader stops after 1 MiB.
    if support::peer_tool("ncat").is_some() {
        let client = |p: u16| {
            run(
                args(&["connect", "127.0.0.1", &p.to_string()]),
                Input::Bytes(random_bytes(20 << 20)),
                LIMIT,
            )
        };
        let script = "ncat -l 127.0.0.1 {P} | head -c 1048576 > /dev/null";
        if let Some((r, _)) = against_tool("sh", &["-c", script], b"", client) {
            r.expect_code(1).expect_stderr("not delivered");
        }
    }
}

// The pipes a shell shares with us are never left non-blocking, however we end (§2.7).

#[test]
fn a_connect_killed_by_timeout_leaves_the_shared_pipes_blocking() {
    let addr = servers::silent_server();
    // The issue's reproduction: `cat` after a killed kamaelia reads the same stdin pipe (the
    // writer is late on purpose), and python reports both pipes' O_NONBLOCK.
    let script = r#"{ sleep 0.5; echo late; } | { timeout 0.2 "$0" connect -q 127.0.0.1 "$1"; cat; python3 -c 'import fcntl, os; print(fcntl.fcntl(0, fcntl.F_GETFL) & os.O_NONBLOCK, fcntl.fcntl(1, fcntl.F_GETFL) & os.O_NONBLOCK)'; } | cat"#;
    let mut c = std::process::Command::new("sh");
    c.args(["-c", script, env!("CARGO_BIN_EXE_kamaelia"), &port(addr)]);
    let r = run(c, Input::Bytes(Vec::new()), LIMIT);
    r.expect_code(0);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "late\n0 0\n",
        "{}",
        r.stderr
    );
}

// The program never dies from a signal it did not ask for, nor panics, when its output goes
// away (§1, "never dies from a signal").

/// Runs `cmd` with stdout and/or stderr a pipe whose reader has already gone.
fn with_closed_outputs(
    mut cmd: std::process::Command,
    stdout: bool,
    stderr: bool,
) -> std::process::ExitStatus {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    // Keep the other one drained, so only the closed one fails.
    let keep_out = (!stdout).then(|| std::thread::spawn(move || servers::read_all(out)));
    let keep_err = (!stderr).then(|| std::thread::spawn(move || servers::read_all(err)));
    let status = support::wait_child(&mut child, LIMIT);
    drop((keep_out, keep_err));
    status
}

#[test]
fn closed_stdout_or_stderr_ends_with_a_status_not_a_signal_or_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let refused = port(servers::closed_port());
    let talker = servers::closing_server(&[b'x'; 1 << 20]);
    let talker = port(talker);
    let cases: Vec<(Vec<&str>, bool, bool, i32)> = vec![
        // A failure line to a closed stderr: still exit 1.
        (vec!["connect", "127.0.0.1", &refused], false, true, 1),
        (vec!["send", "127.0.0.1", &refused, "-"], false, true, 1),
        // A usage error to a closed stderr: still exit 2.
        (
            vec!["connect", "--delay", "soon", "127.0.0.1", "1"],
            false,
            true,
            2,
        ),
        // ... whether clap or validation found it.
        (
            vec!["send", "127.0.0.1", "1", "/nonexistent-file"],
            false,
            true,
            2,
        ),
        // The server's bytes to a closed stdout: the reader went away, not an error.
        (vec!["connect", "127.0.0.1", &talker], true, false, 0),
        (vec!["connect", "127.0.0.1", &talker], true, true, 0),
        (vec!["--help"], true, true, 0),
    ];
    for (argv, stdout, stderr, code) in cases {
        let status = with_closed_outputs(args(&argv), stdout, stderr);
        assert_eq!(status.signal(), None, "{argv:?}: {status:?}");
        assert_eq!(
            status.code(),
            Some(code),
            "{argv:?} stdout closed {stdout}, stderr closed {stderr}"
        );
    }
}

// A CA file that is not a PEM file is a usage error with a clear line, however long (§2.11).

#[test]
fn a_bad_or_endless_pem_file_is_a_usage_error() {
    let dir = TempDir::new("bad-pem");
    let garbage = dir.write("garbage.pem", b"this is not a certificate\n");
    let cases: &[(&str, &str)] = &[
        ("/dev/zero", "too long for a PEM file"),
        (garbage.to_str().unwrap(), "no certificates"),
    ];
    for (ca, text) in cases {
        let r = run(
            args(&["connect", "--tls", "--ca", ca, "localhost", "1"]),
            Input::Bytes(Vec::new()),
            LIMIT,
        );
        r.expect_code(2).expect_stderr(text).expect_stderr(ca);
        assert!(r.elapsed < Duration::from_secs(10), "{:?}", r.elapsed);
    }
}

#[test]
fn connect_starttls_keeps_the_write_side_open_by_default_so_the_server_answers() {
    let pki = Pki::new();
    let addr = servers::smtp_server_answering_quit(pki.server_config());
    let p = port(addr);
    let r = run(
        args(&starttls_args(&pki, "smtp", &p, &[])),
        Input::Bytes(b"QUIT\r\n".to_vec()),
        LIMIT,
    );
    // The counts are the connection's, the plaintext dialogue included.
    r.expect_code(0)
        .expect_stderr("input ended (")
        .expect_stderr("; the server closed after sending ");
    assert_eq!(r.stdout, b"221 bye\r\n");

    // --shutdown gives the half-close (close_notify, FIN) back: such a server hangs up.
    let addr = servers::smtp_server_answering_quit(pki.server_config());
    let p = port(addr);
    let r = run(
        args(&starttls_args(&pki, "smtp", &p, &["--shutdown"])),
        Input::Bytes(b"QUIT\r\n".to_vec()),
        LIMIT,
    );
    assert!(r.stdout.is_empty(), "{}", r.stderr);
}
