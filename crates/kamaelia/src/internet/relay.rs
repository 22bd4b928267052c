//! Relay: one accepted connection relayed to a target through a TcpClient (socat
//! `TCP-LISTEN,fork TCP:…`, stunnel), made per connection by a TcpServer's protocol factory.

use std::fmt;
use std::net::SocketAddr;

use axon::{
    link_refs, Component, Context, Control, Inbox, MainResult, Outbox, CONTROL, INBOX, OUTBOX,
    SIGNAL,
};
use bytes::Bytes;

use super::messages::{
    Connected, HowDied, MakeSsl, PeerHalfClosed, SocketShutdown, TcpError, Transferred,
};
use super::{StartTlsError, TcpClient, DEFAULT_LIMIT_BYTES};

/// A notice on a [`Relay`]'s `report` outbox: the connection to the target is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayOpened {
    /// The client whose connection is relayed.
    pub client: Option<SocketAddr>,
    /// The target's address, as connected to.
    pub target: SocketAddr,
}

impl fmt::Display for RelayOpened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.client {
            Some(c) => write!(f, "opened: {c} -> {}", self.target),
            None => write!(f, "opened: -> {}", self.target),
        }
    }
}

/// How a relayed connection ended.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RelayEnding {
    /// Both sides finished sending and closed: everything was relayed.
    Closed,
    /// The client's connection failed (reset, broken pipe, TLS, idle timeout); the target's was
    /// closed at once.
    ClientFailed(TcpError),
    /// The target could not be reached, or its connection failed; the client's was closed at
    /// once.
    TargetFailed(TcpError),
    /// The STARTTLS dialogue with the target failed (refused, not offered, an injection, a
    /// timeout; see [`Relay::layer`]); the client's connection was closed at once.
    TargetDialogue(StartTlsError),
    /// The relay was shut down (ShutdownMicroprocess) before both sides had finished.
    Shutdown,
}

impl fmt::Display for RelayEnding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelayEnding::Closed => f.write_str("both sides closed"),
            RelayEnding::ClientFailed(e) => write!(f, "the client's connection failed: {e}"),
            RelayEnding::TargetFailed(e) => write!(f, "the target's connection failed: {e}"),
            RelayEnding::TargetDialogue(e) => {
                write!(f, "the STARTTLS dialogue with the target failed: {e}")
            }
            RelayEnding::Shutdown => f.write_str("shut down"),
        }
    }
}

/// A notice on a [`Relay`]'s `report` outbox when it ends: the bytes each way and how it
/// ended. Exactly one per relay.
#[derive(Clone, Debug)]
pub struct RelayClosed {
    /// The client whose connection was relayed.
    pub client: Option<SocketAddr>,
    /// Bytes the target's connection sent (from the client).
    pub to_target: u64,
    /// Bytes the client's connection sent (from the target).
    pub to_client: u64,
    /// How it ended.
    pub ending: RelayEnding,
}

impl fmt::Display for RelayClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("closed: ")?;
        if let Some(c) = self.client {
            write!(f, "{c}, ")?;
        }
        write!(
            f,
            "{} bytes to the target, {} bytes to the client; {}",
            self.to_target, self.to_client, self.ending
        )
    }
}

/// Relays one connection to a target (socat's `TCP-LISTEN,fork TCP:host:port`, stunnel): made
/// per accepted connection by a [`super::TcpServer`]'s protocol factory, it runs a
/// [`TcpClient`] to the target and passes bytes both ways, and the half-close end to end.
///
/// # Example
///
/// ```
/// use kamaelia::internet::{OnFinish, Relay, TcpServer};
/// use kamaelia::TcpClient;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The target: answers "pong" to whatever it reads, then closes.
/// let target = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let port = target.local_addr()?.port();
/// tokio::spawn(async move {
///     let (mut s, _) = target.accept().await.unwrap();
///     let mut got = Vec::new();
///     s.read_to_end(&mut got).await.unwrap();
///     s.write_all(b"pong").await.unwrap();
/// });
/// let server = TcpServer::bind("127.0.0.1:0", move |info| {
///     Relay::new(TcpClient::new("127.0.0.1", port)).client(info.peer).into()
/// })?
/// .on_finish(OnFinish::HalfClose);
/// let addr = server.local_addr();
/// let sched = axon::Scheduler::new();
/// let running = sched.run(async { server.activate(); });
/// let client = async {
///     let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
///     s.write_all(b"ping").await.unwrap();
///     s.shutdown().await.unwrap(); // our FIN reaches the target: it answers
///     let mut got = Vec::new();
///     s.read_to_end(&mut got).await.unwrap();
///     assert_eq!(got, b"pong");
/// };
/// tokio::select! { _ = running => unreachable!(), _ = client => {} }
/// sched.shutdown_all();
/// # Ok(())
/// # }
/// ```
///
/// # How it works
///
/// When activated it makes the target's TcpClient (with [`super::OnFinish::HalfClose`], so
/// the client's FIN becomes the target's FIN and what the target sends after it is still
/// relayed) and links its own `inbox` straight into the TcpClient's `inbox` and the
/// TcpClient's `outbox` straight out of its own `outbox`: the bytes pass without a copy or a
/// hop through the relay. The TcpClient (and a [`Relay::layer`]) runs in the relay's task
/// ([`axon::Context::activate_beside`]; a relay activated alone hosts a group of its own), and
/// a [`super::TcpServer`] runs the relay in its client connection's task: both connections of
/// a relayed connection are polled in one task, so a chunk read from one side is written to
/// the other in the same poll, with no wake-up of another task or thread
/// (docs/semantics.md §10). With [`Relay::tls`] a [`MakeSsl`] is queued first, so nothing goes
/// to the target before its certificate has been verified.
/// With [`Relay::layer`] a STARTTLS client component sits between the relay and the TcpClient
/// (wired as in `kamaelia connect --starttls`): it speaks the protocol's dialogue with the target
/// and switches to TLS, holding the client's bytes until then; it passes the target's
/// half-close on after every byte received before it.
///
/// The relay watches both connections: the client's through `connevents` (a TcpServer links
/// the connection's events there) and `control`, the target's through the TcpClient's
/// `signal`. The client's half-close ([`PeerHalfClosed`], or ProducerFinished on `control`)
/// becomes ProducerFinished to the target's client (everything queued is sent, then FIN); the
/// target's half-close becomes ProducerFinished on `signal`, which a TcpServer links to the
/// client's connection (everything queued is sent, then FIN). A failure on one side
/// (reset, refused, TLS, idle timeout) closes the other at once (ShutdownMicroprocess).
///
/// Every box is bounded in bytes: the bytes from the client wait in the target connection's
/// `inbox` (bounded by its [`super::Limits`], 256 KiB by default), and those from the target in
/// the client connection's `inbox`; when one is full the connection feeding it stops reading,
/// and TCP's flow control holds back the fast side. A relay holds about 1 MiB at most.
///
/// # Inboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `inbox` | `Bytes` | bytes from the client (linked on to the target's connection) |
/// | `control` | `Control` | ProducerFinished: the client finished sending; ShutdownMicroprocess: close both now |
/// | `connevents` | `Control` | the client connection's signal (PeerHalfClosed, errors, Transferred, SocketShutdown) |
/// | `_target` | `Control` | the target's TcpClient's signal |
///
/// # Outboxes
///
/// | name | type | meaning |
/// |---|---|---|
/// | `outbox` | `Bytes` | bytes from the target (linked from the target's connection) |
/// | `signal` | `Control` | to the client's connection: ProducerFinished when the target finished sending, ShutdownMicroprocess when it failed |
/// | `report` | `Control` | RelayOpened, the target's errors, then one RelayClosed |
/// | `_targetControl` | `Control` | to the target's TcpClient: ProducerFinished or ShutdownMicroprocess |
/// | `_makessl` | `MakeSsl` | to the target's TcpClient, with [`Relay::tls`] |
///
/// # Shutdown
///
/// It ends once the target's TcpClient has ended and the client's connection has ended
/// ([`SocketShutdown`] on `connevents`), or, after the target's has ended, on
/// ShutdownMicroprocess; then it sends one [`RelayClosed`] on `report`.
///
/// # Errors
///
/// The target's failures ([`TcpError`]: refused, reset, TLS) are passed on on `report` as
/// `Control::Error` and named in [`RelayEnding::TargetFailed`] (a layer's
/// [`StartTlsError`] in [`RelayEnding::TargetDialogue`]); the client's are on the
/// TcpServer's `signal` and in [`RelayEnding::ClientFailed`].
#[derive(Debug)]
pub struct Relay {
    target: Target,
    client: Option<SocketAddr>,
    tls: bool,
    layer: Option<Component>,
}

axon::box_table! {
    /// The relay's boxes, declared once: the builder declares them from here, and a test checks
    /// the rustdoc tables against the declarations.
    const BOXES: RelayBoxes {
        inbox: INBOX => "bytes from the client (linked on to the target's connection)",
        control: CONTROL => "ProducerFinished: the client finished sending; ShutdownMicroprocess: close both now",
        connevents: "connevents" => "the client connection's signal (PeerHalfClosed, errors, Transferred, SocketShutdown)",
        target: "_target" => "the target's TcpClient's signal",
        outbox: OUTBOX => "bytes from the target (linked from the target's connection)",
        signal: SIGNAL => "to the client's connection: ProducerFinished when the target finished sending, ShutdownMicroprocess when it failed",
        report: "report" => "RelayOpened, the target's errors, then one RelayClosed",
        target_control: "_targetControl" => "to the target's TcpClient: ProducerFinished or ShutdownMicroprocess",
        makessl: "_makessl" => "to the target's TcpClient, with [`Relay::tls`]",
    }
}

/// What the relay connects through.
#[derive(Debug)]
enum Target {
    /// A TcpClient, set to half-close when the relay starts.
    Client(TcpClient),
    /// Any component with a TcpClient's boxes and messages, set up by the caller.
    Wired(Component),
}

impl Relay {
    /// A relay to `target`, a TcpClient set up as wanted (TLS settings, timeouts, limits); its
    /// [`super::OnFinish`] is set to half-close.
    pub fn new(target: TcpClient) -> Self {
        Self::with_target(Target::Client(target))
    }

    /// A relay through `target`: any component with a TcpClient's boxes and messages, for
    /// example a [`ProxyClient`](super::ProxyClient) around a TcpClient
    /// ([`ProxyClient::around`](super::ProxyClient::around)). Give its TcpClient
    /// [`OnFinish::HalfClose`](super::OnFinish::HalfClose), so that the half-close passes end
    /// to end.
    pub fn through(target: impl Into<Component>) -> Self {
        Self::with_target(Target::Wired(target.into()))
    }

    fn with_target(target: Target) -> Self {
        Relay {
            target,
            client: None,
            tls: false,
            layer: None,
        }
    }

    /// The client's address, named in the reports.
    pub fn client(mut self, peer: SocketAddr) -> Self {
        self.client = Some(peer);
        self
    }

    /// Speaks TLS to the target from the first byte (verified by the TcpClient's settings).
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Puts `layer` between the relay and the target's TcpClient: a component with the boxes
    /// of the STARTTLS clients ([`super::SmtpStartTlsClient`] and the others, or
    /// [`super::TlsGate`]), which speaks the protocol's dialogue with the target, switches the
    /// connection to TLS, and then passes bytes both ways.
    pub fn layer(mut self, layer: impl Into<Component>) -> Self {
        self.layer = Some(layer.into());
        self
    }
}

struct Boxes {
    inbox: Inbox<Bytes>,
    control: Inbox<Control>,
    connevents: Inbox<Control>,
    target: Inbox<Control>,
    outbox: Outbox<Bytes>,
    signal: Outbox<Control>,
    report: Outbox<Control>,
    target_control: Outbox<Control>,
    makessl: Outbox<MakeSsl>,
}

impl From<Relay> for Component {
    fn from(relay: Relay) -> Component {
        let mut b = Component::build("Relay");
        b.hosts_group();
        let boxes = Boxes {
            inbox: b.inbox_from(BOXES.inbox).limit_bytes(DEFAULT_LIMIT_BYTES),
            control: b.control_from(BOXES.control),
            connevents: b.inbox_from(BOXES.connevents),
            target: b.inbox_from(BOXES.target),
            outbox: b.outbox_from(BOXES.outbox).limit_bytes(DEFAULT_LIMIT_BYTES),
            signal: b.signal_from(BOXES.signal),
            report: b.outbox_from(BOXES.report),
            target_control: b.outbox_from(BOXES.target_control),
            makessl: b.outbox_from(BOXES.makessl),
        };
        b.main(move |cx| run(relay, boxes, cx))
    }
}

/// What the relay has seen so far, and what it must do next: plain state, no I/O.
#[derive(Debug, Default)]
struct Tracker {
    /// The client has finished sending (its FIN reached us), or its connection ended.
    client_finished: bool,
    /// The client's connection has ended, and how.
    client_ended: Option<HowDied>,
    /// The target's TcpClient has ended, and how.
    target_ended: Option<HowDied>,
    /// The target's half-close was passed to the client (ProducerFinished on `signal`), or the
    /// client was told to close (ShutdownMicroprocess): `signal`'s final message is spent.
    client_told: bool,
    /// The target was told to finish (ProducerFinished) or to stop (ShutdownMicroprocess).
    target_told: Option<bool>,
    /// Shut down from outside.
    shutdown: bool,
    /// The first failure, on either side: the other side was closed because of it.
    first_failure: Option<RelayEnding>,
    to_target: u64,
    to_client: u64,
}

/// Something that happened to one of the two connections.
#[derive(Debug)]
enum Event {
    /// The client finished sending (PeerHalfClosed on `connevents`, or ProducerFinished on
    /// `control`).
    ClientFinished,
    /// The client's connection ended.
    ClientEnded(HowDied),
    /// What the client's connection sent and received.
    ClientTransferred(Transferred),
    /// The target finished sending.
    TargetFinished,
    /// What the target's connection sent and received.
    TargetTransferred(Transferred),
    /// The target's TcpClient ended.
    TargetEnded(HowDied),
    /// ShutdownMicroprocess on `control`.
    Shutdown,
    /// The layer's dialogue with the target failed (it then closes the target's connection).
    TargetDialogueFailed(StartTlsError),
}

/// What the relay does about an event.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// ProducerFinished to the target's TcpClient.
    FinishTarget,
    /// ShutdownMicroprocess to the target's TcpClient.
    StopTarget,
    /// ProducerFinished on `signal`: the client's connection sends what is queued, then FIN.
    FinishClient,
    /// ShutdownMicroprocess on `signal`: the client's connection closes now.
    StopClient,
}

impl Tracker {
    fn on(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::ClientFinished => self.client_finished = true,
            Event::ClientEnded(how) => {
                self.client_finished = true;
                if let (HowDied::Failed(e), None) = (&how, &self.first_failure) {
                    self.first_failure = Some(RelayEnding::ClientFailed(e.clone()));
                }
                if matches!(how, HowDied::Failed(_) | HowDied::Shutdown { .. }) {
                    self.stop_target(&mut out);
                }
                // A connection cannot be told anything once it has ended.
                self.client_told = true;
                self.client_ended = Some(how);
            }
            Event::ClientTransferred(t) => self.to_client = t.sent,
            Event::TargetTransferred(t) => self.to_target = t.sent,
            Event::TargetFinished => self.finish_client(&mut out),
            Event::TargetEnded(how) => {
                if let (HowDied::Failed(e), None) = (&how, &self.first_failure) {
                    self.first_failure = Some(RelayEnding::TargetFailed(e.clone()));
                }
                if matches!(how, HowDied::Failed(_) | HowDied::Shutdown { .. }) {
                    self.stop_client(&mut out);
                } else {
                    self.finish_client(&mut out);
                }
                self.target_told = Some(true);
                self.target_ended = Some(how);
            }
            Event::TargetDialogueFailed(e) => {
                if self.first_failure.is_none() {
                    self.first_failure = Some(RelayEnding::TargetDialogue(e));
                }
                self.stop_client(&mut out);
            }
            Event::Shutdown => {
                self.shutdown = true;
                self.stop_target(&mut out);
                self.stop_client(&mut out);
            }
        }
        if self.client_finished && self.target_told.is_none() {
            self.target_told = Some(false);
            out.push(Action::FinishTarget);
        }
        out
    }

    fn stop_target(&mut self, out: &mut Vec<Action>) {
        if self.target_told != Some(true) && self.target_ended.is_none() {
            self.target_told = Some(true);
            out.push(Action::StopTarget);
        }
    }

    fn finish_client(&mut self, out: &mut Vec<Action>) {
        if !self.client_told {
            self.client_told = true;
            out.push(Action::FinishClient);
        }
    }

    fn stop_client(&mut self, out: &mut Vec<Action>) {
        if !self.client_told {
            self.client_told = true;
            out.push(Action::StopClient);
        }
    }

    /// Both connections have ended (or, shut down, the target's has).
    fn done(&self) -> bool {
        self.target_ended.is_some() && (self.client_ended.is_some() || self.shutdown)
    }

    fn ending(&self) -> RelayEnding {
        if let Some(first) = &self.first_failure {
            return first.clone();
        }
        let stopped = |h: &Option<HowDied>| matches!(h, Some(HowDied::Shutdown { .. }));
        if self.shutdown || stopped(&self.client_ended) || stopped(&self.target_ended) {
            RelayEnding::Shutdown
        } else {
            RelayEnding::Closed
        }
    }
}

async fn run(relay: Relay, b: Boxes, cx: Context) -> MainResult {
    let target: Component = match relay.target {
        Target::Client(c) => c.on_finish(super::OnFinish::HalfClose).into(),
        Target::Wired(c) => c,
    };
    let layer = match relay.layer {
        // The relay's side of the target: the TcpClient itself.
        None => {
            link_refs(&b.inbox.boxref(), &target.boxref(INBOX)?)?;
            toward_client(&target.boxref(OUTBOX)?, &b.outbox.boxref())?;
            link_refs(&target.boxref(SIGNAL)?, &b.target.boxref())?;
            link_refs(&b.target_control.boxref(), &target.boxref(CONTROL)?)?;
            link_refs(&b.makessl.boxref(), &target.boxref("makessl")?)?;
            None
        }
        // A protocol layer between: the relay talks to it as a console talks to a STARTTLS
        // client component.
        Some(layer) => {
            let pairs = [
                (b.inbox.boxref(), layer.boxref(INBOX)?),
                (b.target_control.boxref(), layer.boxref(CONTROL)?),
                (layer.boxref(OUTBOX)?, target.boxref(INBOX)?),
                (layer.boxref(SIGNAL)?, target.boxref(CONTROL)?),
                (target.boxref(OUTBOX)?, layer.boxref("fromserver")?),
                (target.boxref(SIGNAL)?, layer.boxref("connsignal")?),
                (target.boxref("sslready")?, layer.boxref("sslready")?),
                (layer.boxref("connevents")?, b.target.boxref()),
                (layer.boxref("makessl")?, target.boxref("makessl")?),
            ];
            for (from, to) in &pairs {
                link_refs(from, to)?;
            }
            toward_client(&layer.boxref("touser")?, &b.outbox.boxref())?;
            Some(cx.activate_beside(layer))
        }
    };
    if relay.tls {
        let _ = b.makessl.send(MakeSsl::new()).await;
    }
    let target = cx.activate_beside(target);
    let mut t = Tracker::default();
    while !t.done() {
        let event = tokio::select! {
            c = b.control.recv() => match c {
                c if c.is_shutdown() => Some(Event::Shutdown),
                c if c.is_final() => Some(Event::ClientFinished),
                _ => None,
            },
            c = b.connevents.recv() => client_event(&c),
            c = b.target.recv(), if t.target_ended.is_none() => {
                target_event(c, relay.client, &b.report).await
            }
        };
        let Some(event) = event else { continue };
        for action in t.on(event) {
            let (out, msg) = match action {
                Action::FinishTarget => (&b.target_control, Control::producer_finished()),
                Action::StopTarget => (&b.target_control, Control::shutdown()),
                Action::FinishClient => (&b.signal, Control::producer_finished()),
                Action::StopClient => (&b.signal, Control::shutdown()),
            };
            // Forced: a control inbox has room for these, and a full one must not stall us.
            let _ = out.force_send(msg);
        }
    }
    target.join().await;
    if let Some(layer) = layer {
        layer.join().await;
    }
    let closed = RelayClosed {
        client: relay.client,
        to_target: t.to_target,
        to_client: t.to_client,
        ending: t.ending(),
    };
    let _ = b.report.send(Control::notice(closed)).await;
    Ok(())
}

/// Links `from` into the relay's `outbox`, which leads to the client's connection. If that
/// connection has already ended (a client that failed at once, e.g. not speaking TLS), the link
/// is refused as closed: nothing can reach the client any more, and the relay goes on to see
/// its end on `connevents` and stop the target.
fn toward_client(from: &axon::BoxRef, outbox: &axon::BoxRef) -> Result<(), axon::WiringError> {
    match link_refs(from, outbox) {
        Ok(_) | Err(axon::WiringError::Closed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The client connection's message as an event (errors are reported by the TcpServer).
fn client_event(c: &Control) -> Option<Event> {
    if c.payload::<PeerHalfClosed>().is_some() {
        Some(Event::ClientFinished)
    } else if let Some(t) = c.payload::<Transferred>() {
        Some(Event::ClientTransferred(t.clone()))
    } else if let Some(SocketShutdown(how)) = c.payload::<SocketShutdown>() {
        Some(Event::ClientEnded(how.clone()))
    } else if c.is_final() {
        // Only the runtime sends a final message on a connection's signal: it failed.
        Some(Event::ClientEnded(HowDied::Shutdown {
            dropped_messages: 0,
            dropped_bytes: 0,
        }))
    } else {
        None
    }
}

/// The target's TcpClient's message as an event; its Connected and errors go on `report`.
async fn target_event(
    c: Control,
    client: Option<SocketAddr>,
    report: &Outbox<Control>,
) -> Option<Event> {
    if let Some(Connected { peer, .. }) = c.payload::<Connected>() {
        let opened = RelayOpened {
            client,
            target: *peer,
        };
        let _ = report.send(Control::notice(opened)).await;
        None
    } else if c.payload::<PeerHalfClosed>().is_some() {
        Some(Event::TargetFinished)
    } else if let Some(t) = c.payload::<Transferred>() {
        Some(Event::TargetTransferred(t.clone()))
    } else if c.is_final() {
        let how = match &c {
            Control::ProducerFinished { detail } | Control::ShutdownMicroprocess { detail } => {
                detail
                    .as_ref()
                    .and_then(|d| d.downcast_ref::<HowDied>())
                    .cloned()
            }
            _ => None,
        };
        Some(Event::TargetEnded(how.unwrap_or(HowDied::Finished)))
    } else {
        let dialogue = c.error_ref::<StartTlsError>().cloned();
        if let Control::Error(_) = &c {
            let _ = report.send(c).await;
        }
        dialogue.map(Event::TargetDialogueFailed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn reset() -> HowDied {
        HowDied::Failed(TcpError::Reset {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
        })
    }

    fn run(events: Vec<Event>) -> (Vec<Vec<Action>>, Tracker) {
        let mut t = Tracker::default();
        let actions = events.into_iter().map(|e| t.on(e)).collect();
        (actions, t)
    }

    /// Each row: the events in order, the actions each one gives, whether the relay is done,
    /// and how it ended.
    #[test]
    fn the_relay_passes_half_closes_and_failures_across() {
        use Action::*;
        let stopped = || HowDied::Shutdown {
            dropped_messages: 0,
            dropped_bytes: 0,
        };
        type Row = (
            &'static str,
            Vec<Event>,
            Vec<Vec<Action>>,
            bool,
            &'static str,
        );
        let rows: Vec<Row> = vec![
            (
                "client FIN first, then the target's",
                vec![
                    Event::ClientFinished,
                    Event::TargetFinished,
                    Event::TargetEnded(HowDied::PeerClosed),
                    Event::ClientEnded(HowDied::Finished),
                ],
                vec![vec![FinishTarget], vec![FinishClient], vec![], vec![]],
                true,
                "both sides closed",
            ),
            (
                "target FIN first: the client still sends",
                vec![
                    Event::TargetFinished,
                    Event::ClientFinished,
                    Event::TargetEnded(HowDied::Finished),
                    Event::ClientEnded(HowDied::PeerClosed),
                ],
                vec![vec![FinishClient], vec![FinishTarget], vec![], vec![]],
                true,
                "both sides closed",
            ),
            (
                "the target refuses",
                vec![Event::TargetEnded(reset()), Event::ClientEnded(stopped())],
                vec![vec![StopClient], vec![]],
                true,
                "the target's connection failed",
            ),
            (
                "the client resets mid-stream",
                vec![Event::ClientEnded(reset()), Event::TargetEnded(stopped())],
                vec![vec![StopTarget], vec![]],
                true,
                "the client's connection failed",
            ),
            (
                "shut down from outside",
                vec![Event::Shutdown, Event::TargetEnded(stopped())],
                vec![vec![StopTarget, StopClient], vec![]],
                true,
                "shut down",
            ),
            (
                "the target refuses STARTTLS",
                vec![
                    Event::TargetDialogueFailed(StartTlsError::Closed),
                    Event::TargetEnded(stopped()),
                    Event::ClientEnded(stopped()),
                ],
                vec![vec![StopClient], vec![], vec![]],
                true,
                "the STARTTLS dialogue with the target failed",
            ),
            (
                "only the client finished: not done",
                vec![Event::ClientFinished],
                vec![vec![FinishTarget]],
                false,
                "both sides closed",
            ),
        ];
        for (name, events, want, done, ending) in rows {
            let (got, t) = run(events);
            assert_eq!(got, want, "{name}");
            assert_eq!(t.done(), done, "{name}");
            assert!(
                t.ending().to_string().starts_with(ending),
                "{name}: {}",
                t.ending()
            );
        }
    }

    #[test]
    fn counts_come_from_each_side_and_reports_read_plainly() {
        let (_, t) = run(vec![
            Event::ClientTransferred(Transferred {
                sent: 7,
                received: 5,
                unsent: 0,
            }),
            Event::TargetTransferred(Transferred {
                sent: 5,
                received: 7,
                unsent: 0,
            }),
        ]);
        let closed = RelayClosed {
            client: Some(SocketAddr::from(([127, 0, 0, 1], 5000))),
            to_target: t.to_target,
            to_client: t.to_client,
            ending: RelayEnding::ClientFailed(TcpError::Io {
                peer: SocketAddr::from(([127, 0, 0, 1], 5000)),
                source: Arc::new(std::io::Error::other("boom")),
            }),
        };
        assert_eq!(
            closed.to_string(),
            "closed: 127.0.0.1:5000, 5 bytes to the target, 7 bytes to the client; \
             the client's connection failed: i/o error on the connection to 127.0.0.1:5000: boom"
        );
    }
}
