//! The yardstick for `kamaelia forward`: the simplest hand-written relay. A `current_thread`
//! tokio runtime; per accepted connection, a task that connects to the target and runs
//! `tokio::io::copy_bidirectional`.
//!
//! ```text
//! base-relay LISTEN_PORT HOST PORT     # first stdout line: the bound address
//! ```

use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, host, port] =
        <[String; 3]>::try_from(args).map_err(|_| "usage: base-relay LISTEN_PORT HOST PORT")?;
    let (listen, port): (u16, u16) = (listen.parse()?, port.parse()?);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", listen)).await?;
        println!("{}", listener.local_addr()?);
        loop {
            let (mut inbound, _) = listener.accept().await?;
            let host = host.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect((host.as_str(), port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}
