//! The component: the proxy handshake on `Connected`, then bytes both ways.

use std::time::Duration;

use axon::{
    Component, Control, ControlWatch, Inbox, Outbox, TrySendError, WiringError, CONTROL, INBOX,
    OUTBOX, SIGNAL,
};
use bytes::Bytes;

use super::dialogue::Dialogue;
use super::error::ProxyError;
use super::spec::{HostPort, Proxy};
use crate::chassis::Graphline;
use crate::internet::{
    Connected, HowDied, MakeSsl, PeerHalfClosed, SslReady, TcpClient, TlsError, TlsSettings,
    Transferred, DEFAULT_LIMIT_BYTES,
};

/// How long a proxy may take to open the tunnel, counted from the moment the connection to it
/// is up, unless the component is told otherwise.
pub const DEFAULT_TUNNEL_TIMEOUT: Duration = Duration::from_secs(30);

axon::box_table! {
    /// The boxes of [`ProxyClient`], declared once, as data.
    const BOXES: ProxyBoxes {
        inbox: INBOX => "bytes from the user, held until the tunnel is open (and TLS is up, if asked for)",
        control: CONTROL => "the user's side's signal: its final message is passed on after its bytes",
        makessl: "makessl" => "the user's request to switch to TLS, passed on once the tunnel is open",
        fromserver: "fromserver" => "bytes from the connection to the proxy",
        connsignal: "connsignal" => "the connection's signal",
        sslready: "sslready" => "the connection's TLS details",
        outbox: OUTBOX => "bytes to the connection: the handshake, then the user's bytes",
        signal: SIGNAL => "to the connection's control: the user's final message, or ShutdownMicroprocess on failure",
        connmakessl: "connmakessl" => "to the connection's makessl",
        touser: "touser" => "the target's bytes once the tunnel is open, in order",
        connevents: "connevents" => "the connection's signal, passed on, with TunnelOpen or a ProxyError",
        tlsready: "tlsready" => "the TLS details, passed on",
    }
}

/// A notice on `connevents` (and so on the wrapped connection's `signal`): the proxy opened the
/// tunnel to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelOpen {
    /// The proxy, as a URL without its password.
    pub proxy: String,
    /// The target, `host:port`.
    pub target: String,
}

/// The client side of a proxy tunnel (`ncat --proxy`): on `Connected` it asks the proxy for a
/// tunnel to the target (HTTP `CONNECT`, or SOCKS5 `CONNECT` with the target's name for the
/// proxy to resolve), reads the proxy's reply, and then passes bytes through both ways.
///
/// Placed between the application and a [`TcpClient`] connected to the proxy, and before TLS:
/// a `makessl` from the application is held until the tunnel is open, so the handshake is with
/// the target. The TLS name to verify is the target's, not the proxy's: give the TcpClient
/// [`ProxyClient::tls_for_target`]'s settings. [`ProxyClient::around`] does both.
///
/// # Example
///
/// ```
/// use axon::{Inbox, Scheduler};
/// use kamaelia::internet::{Proxy, ProxyClient, TcpClient};
/// use kamaelia::{Graphline, OneShot};
/// # use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # // A proxy that opens every tunnel and answers "hello" itself, as the target would.
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let port = listener.local_addr()?.port();
/// # tokio::spawn(async move {
/// #     let (mut s, _) = listener.accept().await.unwrap();
/// #     let mut req = Vec::new();
/// #     while !req.ends_with(b"\r\n\r\n") {
/// #         let mut b = [0u8; 1];
/// #         if s.read(&mut b).await.unwrap() == 0 { return; }
/// #         req.push(b[0]);
/// #     }
/// #     s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\nhello").await.unwrap();
/// #     let _ = s.read_to_end(&mut req).await;
/// # });
/// let proxy: Proxy = format!("http://127.0.0.1:{port}").parse()?;
/// let connection = ProxyClient::new(proxy, "example.com", 80)
///     .around(TcpClient::new("127.0.0.1", port))?;
/// let session = Graphline::new()
///     .component("SAY", OneShot::new(bytes::Bytes::from_static(b"hi")))
///     .component("CONNECTION", connection)
///     .link(("SAY", "outbox"), ("CONNECTION", "inbox"))
///     .link(("SAY", "signal"), ("CONNECTION", "control"))
///     .link(("CONNECTION", "outbox"), ("", "outbox"))
///     .build()?;
/// let out = Inbox::<bytes::Bytes>::standalone("out", 8);
/// axon::link_refs(&session.boxref("outbox")?, &out.boxref())?;
/// let sched = Scheduler::new();
/// let run = sched.run(async { session.activate(); });
/// let report = tokio::time::timeout(std::time::Duration::from_secs(20), run).await?;
/// assert!(report.is_ok());
/// assert_eq!(out.recv().await, "hello");
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// The handshake is a state machine over the proxy's bytes, cut anywhere, with no sockets. The
/// HTTP reply is read line by line up to its empty line, each line at most
/// [`MAX_REPLY_LINE`](super::MAX_REPLY_LINE) bytes and all of them at most
/// [`MAX_REPLY_BYTES`](super::MAX_REPLY_BYTES); a SOCKS5 reply has a fixed size. Bytes that
/// follow the reply (the target speaking first, pipelined behind it) are handed on first, in
/// order. Nothing from the user is taken before the tunnel is open, nor, after a `makessl`,
/// before the connection's `sslready`: none of it leaves in plaintext.
///
/// `inbox` and `fromserver` hold at most [`DEFAULT_LIMIT_BYTES`] each, as a TcpClient's
/// boxes do, so a fast side is held back rather than queued.
///
/// The connection's count of plaintext bytes in `sslready` and its `Transferred` notice are
/// passed on less the handshake's own bytes, so the components above count only the tunnel's.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | bytes from the user, held until the tunnel is open (and TLS is up, if asked for) |
/// | `control` | `Control` | the user's side's signal: its final message is passed on after its bytes |
/// | `makessl` | `MakeSsl` | the user's request to switch to TLS, passed on once the tunnel is open |
/// | `fromserver` | `Bytes` | bytes from the connection to the proxy |
/// | `connsignal` | `Control` | the connection's signal |
/// | `sslready` | `SslReady` | the connection's TLS details |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | bytes to the connection: the handshake, then the user's bytes |
/// | `signal` | `Control` | to the connection's control: the user's final message, or ShutdownMicroprocess on failure |
/// | `connmakessl` | `MakeSsl` | to the connection's makessl |
/// | `touser` | `Bytes` | the target's bytes once the tunnel is open, in order |
/// | `connevents` | `Control` | the connection's signal, passed on, with TunnelOpen or a ProxyError |
/// | `tlsready` | `SslReady` | the TLS details, passed on |
///
/// # Shutdown
///
/// `ProducerFinished` on `control` is passed on to `signal` once the tunnel is open (and TLS
/// is up, if asked for) and every byte before it has gone; `ShutdownMicroprocess` at once. The component ends when the
/// connection's final message arrives on `connsignal`: it passes on what the connection
/// delivered before it, then that message on `connevents`.
///
/// # Errors
///
/// A [`ProxyError`] on `connevents` (then `ShutdownMicroprocess` on `signal`, which closes the
/// connection): the proxy refused (its status line, or the SOCKS5 reply code in words), wants
/// credentials or refused them, closed before the tunnel was open, sent a malformed or
/// overlong reply, or took longer than the timeout, counted from `Connected`.
#[derive(Debug, Clone)]
pub struct ProxyClient {
    proxy: Proxy,
    host: String,
    port: u16,
    timeout: Duration,
}

impl ProxyClient {
    /// A tunnel through `proxy` to `host` (a name, resolved by the proxy, or an IP literal)
    /// and `port`, with [`DEFAULT_TUNNEL_TIMEOUT`].
    pub fn new(proxy: Proxy, host: impl Into<String>, port: u16) -> Self {
        ProxyClient {
            proxy,
            host: host.into(),
            port,
            timeout: DEFAULT_TUNNEL_TIMEOUT,
        }
    }

    /// How long the proxy has to open the tunnel, counted from `Connected`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `settings` made to verify the target's name (or the name they already override it
    /// with), not the proxy's, which is the host the TcpClient connects to.
    pub fn tls_for_target(&self, settings: TlsSettings) -> Result<TlsSettings, TlsError> {
        let name = settings.server_name_for(&self.host)?.to_str().into_owned();
        Ok(settings.with_server_name(name))
    }

    /// This component and `connection` (a TcpClient connected to the proxy) as one component
    /// with a TcpClient's boxes: `inbox`, `control` and `makessl` in; `outbox`, `signal` and
    /// `sslready` out.
    pub fn around(self, connection: TcpClient) -> Result<Component, WiringError> {
        Graphline::new()
            .component("PROXY", self)
            .component("CONNECTION", connection)
            .link(("", INBOX), ("PROXY", INBOX))
            .link(("", CONTROL), ("PROXY", CONTROL))
            .link(("", "makessl"), ("PROXY", "makessl"))
            .link(("PROXY", OUTBOX), ("CONNECTION", INBOX))
            .link(("PROXY", SIGNAL), ("CONNECTION", CONTROL))
            .link(("PROXY", "connmakessl"), ("CONNECTION", "makessl"))
            .link(("CONNECTION", OUTBOX), ("PROXY", "fromserver"))
            .link(("CONNECTION", SIGNAL), ("PROXY", "connsignal"))
            .link(("CONNECTION", "sslready"), ("PROXY", "sslready"))
            .link(("PROXY", "touser"), ("", OUTBOX))
            .link(("PROXY", "connevents"), ("", SIGNAL))
            .link(("PROXY", "tlsready"), ("", "sslready"))
            .build()
    }
}

impl From<ProxyClient> for Component {
    fn from(p: ProxyClient) -> Component {
        let mut b = Component::build("ProxyClient");
        let boxes = Boxes {
            // Bounded in bytes as a TcpClient's boxes are: the wrapped connection's outbox
            // delivers here, and the user's bytes queue here before they reach it.
            inbox: b.inbox_from(BOXES.inbox).limit_bytes(DEFAULT_LIMIT_BYTES),
            control: b.control_from(BOXES.control),
            makessl: b.inbox_from(BOXES.makessl),
            from_server: b
                .inbox_from(BOXES.fromserver)
                .limit_bytes(DEFAULT_LIMIT_BYTES),
            conn_signal: b.inbox_from(BOXES.connsignal),
            sslready: b.inbox_from(BOXES.sslready),
            outbox: b.outbox_from(BOXES.outbox),
            signal: b.signal_from(BOXES.signal),
            conn_makessl: b.outbox_from(BOXES.connmakessl),
            to_user: b.outbox_from(BOXES.touser),
            conn_events: b.outbox_from(BOXES.connevents),
            tlsready: b.outbox_from(BOXES.tlsready),
        };
        b.main(move |cx| async move {
            let label = cx.label().to_string();
            let open = TunnelOpen {
                proxy: p.proxy.to_string(),
                target: HostPort(&p.host, p.port).to_string(),
            };
            let dialogue = Dialogue::new(&p.proxy, &p.host, p.port);
            Run {
                b: &boxes,
                label,
                dialogue,
                open,
                limit: p.timeout,
                phase: Phase::Connecting,
                requested: 0,
                tls_asked: None,
                tls_pending: false,
                down: None,
            }
            .run()
            .await;
            Ok(())
        })
    }
}

struct Boxes {
    inbox: Inbox<Bytes>,
    control: Inbox<Control>,
    makessl: Inbox<MakeSsl>,
    from_server: Inbox<Bytes>,
    conn_signal: Inbox<Control>,
    sslready: Inbox<SslReady>,
    outbox: Outbox<Bytes>,
    signal: Outbox<Control>,
    conn_makessl: Outbox<MakeSsl>,
    to_user: Outbox<Bytes>,
    conn_events: Outbox<Control>,
    tlsready: Outbox<SslReady>,
}

/// Where the component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the connection to the proxy.
    Connecting,
    /// The request is out; reading the proxy's reply.
    Talking,
    /// The tunnel is open: passing bytes through.
    Open,
    /// Failed: only passing on the connection's signal until it ends.
    Failed,
}

struct Run<'a> {
    b: &'a Boxes,
    label: String,
    dialogue: Dialogue,
    open: TunnelOpen,
    limit: Duration,
    phase: Phase,
    /// Bytes of our own requests to the proxy.
    requested: u64,
    /// A makessl that arrived before the tunnel was open.
    tls_asked: Option<MakeSsl>,
    /// A makessl went to the connection and its `sslready` has not come back: the user's
    /// bytes wait, so that none of them leaves before the handshake.
    tls_pending: bool,
    /// The target's bytes waiting for room on `touser`.
    down: Option<Bytes>,
}

impl Run<'_> {
    async fn run(mut self) {
        let b = self.b;
        // The clock starts when the connection to the proxy is up, not before.
        let deadline = tokio::time::sleep(self.limit);
        tokio::pin!(deadline);
        let mut clock_running = false;
        // The user's side's control (docs/semantics.md §5): its final message is kept until
        // its bytes have been passed on (ShutdownMicroprocess goes at once).
        let mut watch = Some(ControlWatch::new(&b.control, &b.signal));
        let mut up: Option<Bytes> = None;
        loop {
            let open = self.phase == Phase::Open;
            let relaying = open && !self.tls_pending;
            let drained = relaying && up.is_none() && b.inbox.is_empty();
            if let Some(w) = watch.take_if(|w| w.shutdown_requested() || (w.stopping() && drained))
            {
                w.finish(Control::producer_finished());
            }
            tokio::select! {
                biased;
                r = b.sslready.recv() => {
                    self.tls_pending = false;
                    let plaintext = r.plaintext.saturating_sub(self.dialogue.consumed());
                    let _ = b.tlsready.send(SslReady { plaintext, ..r }).await;
                }
                c = b.conn_signal.recv() => {
                    if c.is_final() {
                        self.finish(c).await;
                        return;
                    }
                    if c.payload::<Connected>().is_some() && self.phase == Phase::Connecting {
                        clock_running = true;
                        deadline.as_mut().reset(tokio::time::Instant::now() + self.limit);
                        let _ = b.conn_events.send(c).await;
                        if let Err(e) = self.request().await {
                            self.fail(e, &mut watch).await;
                        }
                        continue;
                    }
                    if c.payload::<PeerHalfClosed>().is_some() && self.phase == Phase::Talking {
                        // The proxy finished sending: what it sent before is queued, and either
                        // opens the tunnel or never will.
                        let mut outcome = Ok(());
                        while self.phase == Phase::Talking && outcome.is_ok() {
                            match b.from_server.try_recv() {
                                Some(d) => outcome = self.on_bytes(d).await,
                                None => outcome = Err(ProxyError::Closed),
                            }
                        }
                        if let Err(e) = outcome {
                            self.fail(e, &mut watch).await;
                        }
                    }
                    if c.payload::<PeerHalfClosed>().is_some() {
                        self.deliver_held().await;
                    }
                    let c = match c.payload::<Transferred>() {
                        Some(t) => Control::notice(Transferred {
                            sent: t.sent.saturating_sub(self.requested),
                            received: t.received.saturating_sub(self.dialogue.consumed()),
                            unsent: t.unsent,
                        }),
                        None => c,
                    };
                    let _ = b.conn_events.send(c).await;
                }
                c = b.control.recv() => crate::internet::handle_control(watch.as_mut(), &b.signal, c).await,
                d = b.from_server.recv(), if self.down.is_none() && self.phase != Phase::Failed => {
                    if let Err(e) = self.on_bytes(d).await {
                        self.fail(e, &mut watch).await;
                    }
                }
                _ = b.to_user.ready(), if self.down.is_some() => {
                    if let Some(d) = self.down.take() {
                        self.down = offer(&b.to_user, d);
                    }
                }
                d = b.inbox.recv(), if relaying && up.is_none() && watch.is_some() => {
                    up = offer(&b.outbox, d);
                }
                _ = b.outbox.ready(), if up.is_some() => {
                    if let Some(d) = up.take() {
                        up = offer(&b.outbox, d);
                    }
                }
                // Once open, after the user's bytes that came before it (the connection sends
                // what it has queued in plaintext, then starts the handshake).
                m = b.makessl.recv(), if !open || (up.is_none() && b.inbox.is_empty()) => {
                    if open {
                        self.tls_pending = true;
                        let _ = b.conn_makessl.send(m).await;
                    } else {
                        self.tls_asked = Some(m);
                    }
                }
                () = &mut deadline, if clock_running && self.phase == Phase::Talking => {
                    self.fail(ProxyError::TimedOut(self.limit), &mut watch).await;
                }
            }
        }
    }

    /// Sends the first request.
    async fn request(&mut self) -> Result<(), ProxyError> {
        let req = self.dialogue.request()?;
        self.phase = Phase::Talking;
        self.send(req).await;
        Ok(())
    }

    async fn send(&mut self, bytes: Vec<u8>) {
        self.requested += bytes.len() as u64;
        let _ = self.b.outbox.send(Bytes::from(bytes)).await;
    }

    /// Bytes from the connection: the proxy's reply while talking, the target's once open.
    async fn on_bytes(&mut self, d: Bytes) -> Result<(), ProxyError> {
        match self.phase {
            Phase::Open => {
                self.down = offer(&self.b.to_user, d);
                Ok(())
            }
            Phase::Talking => {
                let fed = self.dialogue.feed(&d)?;
                if let Some(req) = fed.send {
                    self.send(req).await;
                }
                if let Some(rest) = fed.open {
                    self.opened(rest).await;
                }
                Ok(())
            }
            Phase::Connecting => Err(ProxyError::Malformed(
                "the proxy spoke before it was asked".into(),
            )),
            Phase::Failed => Ok(()),
        }
    }

    /// Through an open tunnel, every byte received before the connection's half-close goes to
    /// the user before the half-close is passed on (a relay turns it into a FIN).
    async fn deliver_held(&mut self) {
        let b = self.b;
        if self.phase != Phase::Open {
            return;
        }
        if let Some(d) = self.down.take() {
            let _ = b.to_user.send(d).await;
        }
        while let Some(d) = b.from_server.try_recv() {
            let _ = b.to_user.send(d).await;
        }
    }

    /// The tunnel is open: say so, pass on a makessl that waited, then the target's first bytes.
    async fn opened(&mut self, rest: Bytes) {
        self.phase = Phase::Open;
        tracing::debug!(target = %self.open.target, "proxy: tunnel open");
        let _ = self
            .b
            .conn_events
            .send(Control::notice(self.open.clone()))
            .await;
        if let Some(m) = self.tls_asked.take() {
            self.tls_pending = true;
            let _ = self.b.conn_makessl.send(m).await;
        }
        if !rest.is_empty() {
            self.down = offer(&self.b.to_user, rest);
        }
    }

    /// The connection ended: what it delivered before its final message goes on (through the
    /// handshake if the tunnel was not open yet), then the message.
    async fn finish(&mut self, last: Control) {
        let b = self.b;
        if let Some(d) = self.down.take() {
            let _ = b.to_user.send(d).await;
        }
        while let Some(d) = b.from_server.try_recv() {
            match self.phase {
                Phase::Open => {
                    let _ = b.to_user.send(d).await;
                }
                Phase::Talking => match self.dialogue.feed(&d) {
                    Ok(fed) => {
                        if let Some(rest) = fed.open {
                            self.opened(rest).await;
                            if let Some(d) = self.down.take() {
                                let _ = b.to_user.send(d).await;
                            }
                        }
                    }
                    Err(e) => {
                        self.phase = Phase::Failed;
                        let _ = b
                            .conn_events
                            .send(Control::error(self.label.as_str(), e))
                            .await;
                    }
                },
                Phase::Connecting | Phase::Failed => {}
            }
        }
        // The proxy closed (a reset or a failure is the connection's own error; a shutdown
        // was asked for).
        let closed = matches!(
            last.payload::<HowDied>(),
            None | Some(HowDied::PeerClosed | HowDied::Finished)
        );
        if self.phase == Phase::Talking && closed {
            let e = ProxyError::Closed;
            let _ = b
                .conn_events
                .send(Control::error(self.label.as_str(), e))
                .await;
        }
        let _ = b.conn_events.send(last).await;
    }

    /// Reports `e` and closes the connection; the component then waits for it to end.
    async fn fail(&mut self, e: ProxyError, watch: &mut Option<ControlWatch<'_>>) {
        self.phase = Phase::Failed;
        let _ = self
            .b
            .conn_events
            .send(Control::error(self.label.as_str(), e))
            .await;
        if let Some(mut w) = watch.take() {
            // ShutdownMicroprocess, even if the user's side had finished: the connection closes.
            w.handle(Control::shutdown()).await;
            w.finish(Control::shutdown());
        }
    }
}

/// Sends `d` if there is room now; otherwise hands it back to be retried when there is.
fn offer(out: &Outbox<Bytes>, d: Bytes) -> Option<Bytes> {
    match out.try_send(d) {
        Ok(()) | Err(TrySendError::Closed(_)) => None,
        Err(TrySendError::Full(d) | TrySendError::Unlinked(d)) => Some(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axon::{link_refs, Inbox, Outbox, Scheduler};

    /// Through an open tunnel the connection sends the target's bytes, then its half-close,
    /// all queued before the component runs, with the user's box full: the half-close is
    /// passed on only after every byte.
    #[tokio::test(flavor = "current_thread")]
    async fn the_targets_half_close_follows_its_bytes() {
        let proxy = Proxy::new(super::super::ProxyKind::HttpConnect, "127.0.0.1", 3128);
        let client: Component = ProxyClient::new(proxy, "target.test", 443).into();
        let from_server = Outbox::<Bytes>::standalone("server");
        let conn_signal = Outbox::<Control>::standalone("conn signal");
        let to_conn = Inbox::<Bytes>::standalone("to conn", 8);
        let user = Inbox::<Bytes>::standalone("user", 1);
        let events = Inbox::<Control>::standalone("events", 16);
        let r = |n: &str| client.boxref(n).unwrap();
        link_refs(&from_server.boxref(), &r("fromserver")).unwrap();
        link_refs(&conn_signal.boxref(), &r("connsignal")).unwrap();
        link_refs(&r(axon::OUTBOX), &to_conn.boxref()).unwrap();
        link_refs(&r("touser"), &user.boxref()).unwrap();
        link_refs(&r("connevents"), &events.boxref()).unwrap();
        let sched = Scheduler::new();
        let run = sched.run(async {
            client.activate();
            conn_signal
                .send(Control::notice(Connected {
                    peer: ([127, 0, 0, 1], 3128).into(),
                    local: ([127, 0, 0, 1], 40000).into(),
                }))
                .await
                .unwrap();
            assert!(to_conn.recv().await.starts_with(b"CONNECT target.test:443"));
            from_server
                .send(Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n"))
                .await
                .unwrap();
            loop {
                if events.recv().await.payload::<TunnelOpen>().is_some() {
                    break;
                }
            }
            crate::internet::layer_tests::half_close_follows_the_bytes(
                &from_server,
                &conn_signal,
                &user,
                &events,
            )
            .await;
            conn_signal
                .send(Control::producer_finished())
                .await
                .unwrap();
        });
        tokio::time::timeout(std::time::Duration::from_secs(10), run)
            .await
            .expect("the component ends");
    }
}
