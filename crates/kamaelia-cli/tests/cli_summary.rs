//! What `send`'s last line says about the time a transfer took, against the time the peer saw:
//! the peer times the connection itself (from its accept to the end of what it read), and the
//! summary must not claim a shorter transfer, or must say that it timed something else.

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::servers::{read_to_end_paced, serve_each};
use support::{args, random_bytes, run, Input, Run, TempDir};

const LIMIT: Duration = Duration::from_secs(60);

/// How a test peer behaves.
#[derive(Clone, Copy)]
struct Peer {
    /// Says "bye" and half-closes before it reads anything (`/tmp/slack14/peer.py halfclose`).
    half_closes_first: bool,
    /// Reads at most this many bytes a second (sleeping between reads); `None`: as fast as it
    /// can.
    rate: Option<u64>,
}

/// A peer that reads every connection to its end as `peer` says, then closes; reports how
/// many bytes it read and how long from its accept to the end of what it read.
fn timed_peer(peer: Peer) -> (SocketAddr, mpsc::Receiver<(u64, Duration)>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let addr = serve_each("127.0.0.1:0", move |mut s: TcpStream| {
        let accepted = Instant::now();
        if peer.half_closes_first {
            let _ = s.write_all(b"bye\n");
            let _ = s.shutdown(Shutdown::Write);
        }
        let n = read_to_end_paced(&mut s, peer.rate, accepted);
        let lasted = accepted.elapsed();
        let _ = tx.lock().unwrap().send((n, lasted));
    });
    (addr, rx)
}

/// `kamaelia send` of `size` random bytes to `peer`: the run, the bytes the peer read, and
/// the time it saw.
fn send_to(peer: Peer, size: usize) -> (Run, u64, Duration) {
    let (addr, got) = timed_peer(peer);
    let dir = TempDir::new("summary");
    let file = dir.write("payload", &random_bytes(size));
    let r = run(
        args(&[
            "send",
            "127.0.0.1",
            &addr.port().to_string(),
            file.to_str().unwrap(),
        ]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    let (n, lasted) = got.recv_timeout(LIMIT).expect("the peer never finished");
    (r, n, lasted)
}

/// The summary line, and the time it gives (`in 2.99 s`, `in 15 ms`, `in 0.4 ms`) with the
/// most its rounding can have taken off.
fn summary(r: &Run) -> (String, Duration, Duration) {
    let line = r
        .stderr
        .lines()
        .find(|l| l.starts_with("kamaelia: sent "))
        .unwrap_or_else(|| panic!("no summary line: {}", r.stderr))
        .to_owned();
    let after = line.split(" in ").nth(1).expect("no time in the summary");
    let mut words = after.split([' ', ',', ')']);
    let number = words.next().unwrap();
    let value: f64 = number.parse().expect("the time is a number");
    let unit = words.next().unwrap();
    let decimals = number.split('.').nth(1).map_or(0, str::len) as i32;
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e-3,
        other => panic!("unknown unit {other:?} in {line}"),
    };
    let rounding = 0.5 * 10f64.powi(-decimals) * scale;
    (
        line,
        Duration::from_secs_f64(value * scale),
        Duration::from_secs_f64(rounding),
    )
}

/// A server that reads everything and closes after our half-close: the summary's time runs
/// from before connecting to the connection's end, after the peer's last read, so it is never
/// shorter than what the peer saw. (Timed from when the observer noticed `Connected`, it was:
/// the group had handed megabytes to the kernel by then.)
#[test]
fn the_summary_is_never_shorter_than_the_transfer_the_server_saw() {
    for rate in [None, Some(8_000_000)] {
        let peer = Peer {
            half_closes_first: false,
            rate,
        };
        let size = 16_000_000;
        let (r, n, peer_saw) = send_to(peer, size);
        r.expect_code(0);
        assert_eq!(n, size as u64);
        let (line, said, rounding) = summary(&r);
        eprintln!(
            "{line}  (the peer read for {:.4} s)",
            peer_saw.as_secs_f64()
        );
        assert!(
            said + rounding >= peer_saw,
            "{line}: shorter than the {:.4} s the peer read for",
            peer_saw.as_secs_f64()
        );
        // Generous: the process's start and a loaded machine's scheduling may come in between.
        assert!(
            said <= peer_saw + Duration::from_secs(5),
            "{line}: the peer read for {:.4} s",
            peer_saw.as_secs_f64()
        );
        assert!(
            line.contains("(from connecting until the connection closed)"),
            "{line}"
        );
    }
}

/// A server that half-closes first and then reads slowly (the case of session 15: "20.00 MB
/// in 0.01 s"): the connection ends when the kernel has taken our last byte, megabytes before
/// the server has read them. The summary must not give that as the transfer's time and rate;
/// it says what it timed instead.
#[test]
fn the_summary_says_it_timed_the_kernel_when_the_server_closed_its_side_first() {
    let rate = 4_000_000;
    let size = 12_000_000;
    let peer = Peer {
        half_closes_first: true,
        rate: Some(rate),
    };
    let (r, n, peer_saw) = send_to(peer, size);
    r.expect_code(0);
    assert_eq!(n, size as u64);
    assert_eq!(r.stdout, b"bye\n");
    let (line, said, rounding) = summary(&r);
    eprintln!(
        "{line}  (the peer read for {:.4} s)",
        peer_saw.as_secs_f64()
    );
    let names_the_kernel = line.contains("to the last byte handed to the kernel")
        && line.contains("the server had closed its side first");
    assert!(
        said + rounding >= peer_saw || names_the_kernel,
        "{line}: shorter than the {:.4} s the peer read for, and not said to be",
        peer_saw.as_secs_f64()
    );
    if names_the_kernel {
        assert!(!line.contains("/s"), "{line}: a rate over the wrong time");
    }
    assert!(
        said <= peer_saw + Duration::from_secs(5),
        "{line}: the peer read for {:.4} s",
        peer_saw.as_secs_f64()
    );
}
