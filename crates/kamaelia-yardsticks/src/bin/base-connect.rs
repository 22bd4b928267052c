//! A diagnostic row for figure 6, not its yardstick (nc, socat and ncat are): what a relay
//! between standard input/output and a TCP connection costs in tokio with nothing else in it.
//! A `current_thread` runtime; one task that waits on both directions at once; standard input
//! and output are pipes driven by the reactor (opened again through `/proc/self/fd`, as
//! `kamaelia connect` does, so the shell's pipe keeps its flags); at end of input the write
//! side is shut, and the program ends when the server closes.
//!
//! ```text
//! base-connect HOST PORT        # stdin and stdout must be pipes
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [host, port] =
        <[String; 2]>::try_from(args).map_err(|_| "usage: base-connect HOST PORT")?;
    let port: u16 = port.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut stdin = pipe::OpenOptions::new().open_receiver("/proc/self/fd/0")?;
        let mut stdout = pipe::OpenOptions::new().open_sender("/proc/self/fd/1")?;
        let mut sock = TcpStream::connect((host.as_str(), port)).await?;
        let (mut from_server, mut to_server) = sock.split();
        let mut up = vec![0_u8; 64 * 1024];
        let mut down = vec![0_u8; 64 * 1024];
        let mut input_open = true;
        loop {
            tokio::select! {
                n = stdin.read(&mut up), if input_open => {
                    match n? {
                        0 => {
                            to_server.shutdown().await?;
                            input_open = false;
                        }
                        n => to_server.write_all(&up[..n]).await?,
                    }
                }
                n = from_server.read(&mut down) => {
                    match n? {
                        0 => return Ok(()),
                        n => stdout.write_all(&down[..n]).await?,
                    }
                }
            }
        }
    })
}
