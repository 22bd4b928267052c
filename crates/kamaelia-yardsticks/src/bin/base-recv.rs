//! The yardstick for `kamaelia listen > file`: the simplest hand-written receiver. A
//! `current_thread` tokio runtime, one listener, one connection, one 64 KiB buffer: what it
//! reads is written to standard output (a file) until the sender half-closes.
//!
//! ```text
//! base-recv PORT > file        # PORT 0: any; "listening on ADDR" on stderr
//! ```

use std::io::Write as _;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: base-recv PORT")?
        .parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        eprintln!("listening on {}", listener.local_addr()?);
        let (mut s, _) = listener.accept().await?;
        let mut out = std::io::stdout().lock();
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
        Ok(())
    })
}
