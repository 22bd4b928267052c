//! Addresses where connecting fails in a known way: a listener whose accept queue is full (the
//! connect hangs), and a port nobody listens on (the connect is refused).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// A listener on 127.0.0.1 whose accept queue is full: further connects hang (Linux drops the
/// SYNs). It hangs as long as this value lives.
#[derive(Debug)]
pub struct FullBacklog {
    /// Where it listens.
    pub addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<TcpStream>,
}

/// Makes a [`FullBacklog`]: listens with a backlog of 0 and connects until a connect hangs.
pub fn full_backlog() -> FullBacklog {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(c) => fillers.push(c),
            Err(_still_pending) => {
                return FullBacklog {
                    addr,
                    _listener: listener,
                    _fillers: fillers,
                }
            }
        }
    }
    panic!("the accept queue never filled; this needs Linux SYN-drop behaviour");
}

/// An address on `ip` that nobody listens on (bound to port 0, then closed).
pub fn closed_port(ip: &str) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}
