//! Small protocol components for [`super::TcpServer`]: echo and discard.

use axon::Component;
use bytes::Bytes;

/// A protocol that sends back everything it receives.
///
/// Boxes: `inbox` (`Bytes`), `control`, `outbox` (`Bytes`), `signal`. On a final control
/// message (the connection's ProducerFinished when the peer has finished sending) it passes on
/// what is still queued and forwards the message on `signal`, which closes the connection after
/// the echo is flushed.
pub struct EchoProtocol;

impl EchoProtocol {
    /// A new echo protocol component.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Component {
        relay("EchoProtocol", true)
    }
}

/// A protocol that reads and throws away everything it receives (a sink).
pub struct DiscardProtocol;

impl DiscardProtocol {
    /// A new discard protocol component.
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> Component {
        relay("DiscardProtocol", false)
    }
}

fn relay(name: &'static str, echo: bool) -> Component {
    let mut b = Component::build(name);
    let inbox = b.inbox::<Bytes>("inbox", "data from the connection");
    let control = b.control();
    let outbox = b.outbox::<Bytes>("outbox", "data to the connection");
    let signal = b.signal();
    b.main(move |_| async move {
        let mut batch = Vec::with_capacity(64);
        loop {
            tokio::select! {
                _ = inbox.recv_many(&mut batch, 64) => {
                    for d in batch.drain(..) {
                        if echo {
                            outbox.send(d).await?;
                        }
                    }
                }
                c = control.recv() => {
                    while let Some(d) = inbox.try_recv() {
                        if echo {
                            outbox.send(d).await?;
                        }
                    }
                    let last = c.is_final();
                    let _ = signal.send(c).await;
                    if last {
                        return Ok(());
                    }
                }
            }
        }
    })
}
