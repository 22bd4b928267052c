//! The test support code proves itself: the fault proxy and the small servers.

use std::io;
use std::time::Duration;

use kamaelia_test::bounded;
use kamaelia_test::proxy::{DirectionFaults, FaultProxy, Faults};
use kamaelia_test::servers::{
    echo_server, echo_server_on, sink_server, slow_reader_server, speaks_first_server,
};
use kamaelia_test::sha256;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    data
}

#[tokio::test]
async fn one_byte_fragments_deliver_every_byte_intact() {
    bounded(async {
        let (sink, report) = sink_server().await;
        let proxy = FaultProxy::start(
            sink.addr,
            Faults::upstream(DirectionFaults::default().fragment()),
        )
        .await;
        let data = random_bytes(32 * 1024);
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
        let report = report.await.unwrap();
        assert_eq!(report.error, None);
        assert_eq!(report.bytes, data.len() as u64);
        assert_eq!(report.sha256, sha256(&data));
        assert_eq!(proxy.bytes_to_upstream(), data.len() as u64);
    })
    .await;
}

#[tokio::test]
async fn fragmented_downstream_echo_round_trips() {
    bounded(async {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(
            echo.addr,
            Faults::downstream(DirectionFaults::default().fragment()),
        )
        .await;
        let data = random_bytes(8 * 1024);
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(sha256(&back), sha256(&data));
        assert_eq!(proxy.bytes_to_client(), data.len() as u64);
    })
    .await;
}

#[tokio::test]
async fn reset_mid_stream_gives_the_client_connection_reset() {
    bounded(async {
        let (sink, report) = sink_server().await;
        let proxy = FaultProxy::start(
            sink.addr,
            Faults::upstream(DirectionFaults::default().reset_after(1000)),
        )
        .await;
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client.write_all(&random_bytes(4096)).await.unwrap();
        proxy.wait_reset(1).await;
        let mut buf = [0u8; 16];
        let err = client.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
        // The upstream got exactly the bytes before the reset point, then a reset too.
        let report = report.await.unwrap();
        assert_eq!(report.bytes, 1000);
        assert_eq!(report.error, Some(io::ErrorKind::ConnectionReset));
    })
    .await;
}

#[tokio::test]
async fn stall_holds_bytes_until_released() {
    bounded(async {
        let echo = echo_server().await;
        let proxy = FaultProxy::start(
            echo.addr,
            Faults::upstream(DirectionFaults::default().stall_after(100)),
        )
        .await;
        let data = random_bytes(300);
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client.write_all(&data).await.unwrap();
        proxy.wait_stalled(1).await;
        assert_eq!(proxy.bytes_to_upstream(), 100);
        let mut first = vec![0u8; 100];
        client.read_exact(&mut first).await.unwrap();
        assert_eq!(first, data[..100]);
        proxy.release();
        let mut rest = vec![0u8; 200];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, data[100..]);
    })
    .await;
}

#[tokio::test]
async fn delay_per_chunk_slows_delivery() {
    bounded(async {
        let server = speaks_first_server(b"hello\r\n".to_vec()).await;
        let delay = Duration::from_millis(20);
        let proxy = FaultProxy::start(
            server.addr,
            Faults::downstream(DirectionFaults::default().fragment().delay(delay)),
        )
        .await;
        let started = Instant::now();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut greeting = [0u8; 7];
        client.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"hello\r\n");
        assert!(started.elapsed() >= delay * 7, "{:?}", started.elapsed());
    })
    .await;
}

#[tokio::test]
async fn slow_reader_still_receives_everything() {
    bounded(async {
        let (server, report) = slow_reader_server(4096, Duration::from_millis(1)).await;
        let data = random_bytes(256 * 1024);
        let mut client = TcpStream::connect(server.addr).await.unwrap();
        client.write_all(&data).await.unwrap();
        client.shutdown().await.unwrap();
        let report = report.await.unwrap();
        assert_eq!(report.bytes, data.len() as u64);
        assert_eq!(report.sha256, sha256(&data));
    })
    .await;
}

#[tokio::test]
async fn echo_server_on_ipv6_loopback() {
    bounded(async {
        let echo = echo_server_on("[::1]:0").await;
        assert!(echo.addr.is_ipv6());
        let mut client = TcpStream::connect(echo.addr).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        client.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
    })
    .await;
}
