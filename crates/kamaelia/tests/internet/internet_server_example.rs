//! The `echo_server` example program, run as a child process: it prints its address, echoes,
//! ends with exit status 0 on Ctrl-C (SIGINT), and exits 2 on a bad port or one in use.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use crate::server::{echo_through, example_bin, ChildGuard};
use kamaelia_test::bounded;
use kamaelia_test::{random_bytes, sha256};
use tokio::net::TcpStream;
use tokio::task::spawn_blocking;

/// Starts the example on an OS-chosen port and reads the address it prints.
async fn start_echo_server(bin: std::path::PathBuf) -> (ChildGuard, SocketAddr) {
    spawn_blocking(move || {
        let mut child = Command::new(bin)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let child = ChildGuard(child);
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        (child, addr)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn echo_server_example_echoes_and_ends_cleanly_on_ctrl_c() {
    let Some(bin) = example_bin("echo_server") else {
        return;
    };
    bounded(async {
        let (mut child, addr) = start_echo_server(bin).await;
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        let data = random_bytes(9, 300_000);
        let got = echo_through(TcpStream::connect(addr).await.unwrap(), &data, 9, 9000).await;
        assert_eq!(sha256(&got), sha256(&data));
        // One connection still open when Ctrl-C arrives: it is closed too.
        let _open = TcpStream::connect(addr).await.unwrap();
        let pid = child.0.id().to_string();
        let status = spawn_blocking(move || {
            let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
            assert!(kill.success());
            child.0.wait().unwrap()
        })
        .await
        .unwrap();
        assert!(status.success(), "{status}");
    })
    .await;
}

#[tokio::test]
async fn echo_server_example_reports_bad_arguments_and_a_port_in_use() {
    let Some(bin) = example_bin("echo_server") else {
        return;
    };
    bounded(spawn_blocking(move || {
        let out = Command::new(&bin).arg("http").output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("\"http\" is not a port number"), "{err}");

        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port().to_string();
        let out = Command::new(&bin).arg(&port).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{err}"
        );
    }))
    .await
    .unwrap();
}
