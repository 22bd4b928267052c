//! What `connect`, `send` and the demo share: the page's Graphline around a TcpClient, the
//! observer that turns its signal into stderr lines and an exit status, and the runtime.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axon::{
    link_refs, Component, Control, Inbox, Outbox, Scheduler, WiringError, CONTROL, INBOX, OUTBOX,
    SIGNAL,
};
use std::sync::Arc;

use kamaelia::internet::{
    Connected, FtpStartTlsClient, HowDied, ImapStartTlsClient, IrcStartTlsClient,
    LdapStartTlsClient, Limits, LmtpStartTlsClient, MysqlStartTlsClient, NntpStartTlsClient,
    OnFinish, PeerCertificates, PeerHalfClosed, Pop3StartTlsClient, PostgresStartTlsClient, Proxy,
    ProxyClient, SieveStartTlsClient, SmtpStartTlsClient, TlsGate, TlsInfo, Transferred,
    TunnelOpen, UnixClient, XmppStartTlsClient,
};
use kamaelia::{ConsoleEchoer, Graphline, MakeSsl, OneShot, SslReady, TcpClient};

use crate::errors::{judge, unanswered_certificate_request, Verdict};
use crate::events::Events;
use crate::flags::{Endpoint, StartTlsDialogue, StartTlsProto, TlsMode};
use crate::progress::Counts;

/// The connection for `ep`: a UnixClient with `--unix`, a TcpClient, or with `--proxy` a
/// [`ProxyClient`] around a TcpClient to the proxy (see [`proxied_client`]). At the end of
/// input it half-closes and waits for the server to close, or with `--no-shutdown` (the
/// default for STARTTLS) keeps its write side open until the server closes.
pub(crate) fn client(ep: &Endpoint) -> anyhow::Result<Component> {
    client_with(ep, Limits::default())
}

/// [`client`] with the connection's queues bounded by `limits`.
pub(crate) fn client_with(ep: &Endpoint, limits: Limits) -> anyhow::Result<Component> {
    if let Some(path) = &ep.unix {
        return Ok(UnixClient::new(path)
            .connect_timeout(ep.connect_timeout)
            .idle_timeout(ep.idle_timeout)
            .on_finish(on_finish(ep))
            .limits(limits)
            .into());
    }
    match &ep.proxy {
        Some(proxy) => proxied_client(ep, proxy, limits),
        None => Ok(tcp_client_with(ep, limits).into()),
    }
}

/// What the connection does at the end of input.
fn on_finish(ep: &Endpoint) -> OnFinish {
    if ep.keep_open {
        OnFinish::KeepOpen
    } else {
        OnFinish::HalfClose
    }
}

/// The TcpClient for `ep`'s host and port, with its TLS settings and `limits` on its boxes
/// and queues (`forward`'s target).
pub(crate) fn tcp_client_with(ep: &Endpoint, limits: Limits) -> TcpClient {
    with_tls(ep, tcp_client_to(ep, ep.host.clone(), ep.port, limits))
}

/// `c` with `ep`'s TLS settings, if any.
fn with_tls(ep: &Endpoint, c: TcpClient) -> TcpClient {
    match &ep.tls {
        Some(tls) => c.tls(tls.settings().clone()),
        None => c,
    }
}

/// `ep` through `proxy`: a TcpClient to the proxy with `ep`'s options, and a [`ProxyClient`]
/// in front of it that opens the tunnel to `ep`'s host and port within the connect timeout;
/// TLS verifies the target's name (or `--servername`), not the proxy's.
fn proxied_client(ep: &Endpoint, proxy: &Proxy, limits: Limits) -> anyhow::Result<Component> {
    let tunnel =
        ProxyClient::new(proxy.clone(), ep.host.clone(), ep.port).timeout(ep.connect_timeout);
    let mut c = tcp_client_to(ep, proxy.host().to_string(), proxy.port(), limits);
    if let Some(tls) = &ep.tls {
        c = c.tls(tunnel.tls_for_target(tls.settings().clone())?);
    }
    Ok(tunnel.around(c)?)
}

/// A TcpClient to `host` and `port` with `ep`'s options and `limits`, without TLS settings.
fn tcp_client_to(ep: &Endpoint, host: String, port: u16, limits: Limits) -> TcpClient {
    TcpClient::new(host, port)
        .family(ep.family)
        .delay(ep.delay)
        .connect_timeout(ep.connect_timeout)
        .idle_timeout(ep.idle_timeout)
        .on_finish(on_finish(ep))
        .limits(limits)
}

/// The page's SSL Graphline: SOURCE -> CONNECTION -> ECHO, with `OneShot(MakeSsl)` -> makessl
/// and a [`TlsGate`] between source and connection for `--tls` (so nothing goes out before the
/// handshake), or the protocol's STARTTLS client component (which sends makessl itself).
///
/// The connection's `signal` feeds the echoer's `control` (so output is flushed before the
/// run ends); the echoer's `signal` leaves as the Graphline's `signal`, and the TLS details as
/// its `sslready`. The source's `control` is fed by the Graphline's `control` fan-out.
pub(crate) fn graphline(
    source: Component,
    connection: Component,
    echo: ConsoleEchoer,
    tls: Option<&TlsMode>,
) -> Result<Component, WiringError> {
    graphline_with(source, connection, echo, client_layer(tls))
}

/// `send`'s Graphline: [`graphline`] for `ep`, whose source is `source`, or two components,
/// `feed` -> `source` (the reader and the meter), each a member of the Graphline (FEED and
/// SOURCE) rather than a Pipeline of their own: a Pipeline's outbox is a passthrough, so every message
/// its last member sent (and every look for room) would follow a chain of three boxes one hop
/// at a time, each hop taking two locks, instead of an outbox linked straight to the next
/// inbox. The Graphline's `control` fan-out reaches `feed` (whose `signal` feeds `source`'s
/// `control`), as the Pipeline's `control` reached its first member.
///
/// With `--tls` to a TCP host (no proxy, no Unix socket), no [`TlsGate`] either: `makessl` is
/// queued on the TcpClient before anything runs, and a TcpClient that finds it queued when its
/// connection comes up runs the handshake before it takes anything from its inbox (TLS from the
/// first byte, as a TLS server's connections do), so no byte can go out in plaintext and
/// nothing read before TLS exists to be shown. The source feeds the connection directly: one
/// hop and one queue fewer for every chunk (about 900 instructions a 64 KiB chunk, and the
/// chunk the gate held, cold by the time rustls copies it). The connection's `sslready`
/// leaves as the Graphline's, as without TLS.
pub(crate) fn graphline_fed(
    feed: Option<Component>,
    source: Component,
    connection: Component,
    echo: ConsoleEchoer,
    ep: &Endpoint,
) -> anyhow::Result<Component> {
    let tls_first =
        matches!(ep.tls, Some(TlsMode::Immediate(_))) && ep.proxy.is_none() && ep.unix.is_none();
    let layer = if tls_first {
        None
    } else {
        client_layer(ep.tls.as_ref())
    };
    graphline_fed_as(feed, source, connection, echo, layer, tls_first)
}

/// [`graphline_fed`] with `layer`, and `makessl` queued on `connection` if `tls_first`.
fn graphline_fed_as(
    feed: Option<Component>,
    source: Component,
    connection: Component,
    echo: ConsoleEchoer,
    layer: Option<(Component, bool)>,
    tls_first: bool,
) -> anyhow::Result<Component> {
    if tls_first {
        queue_makessl(&connection)?;
    }
    Ok(graphline_parts(feed, source, connection, echo, layer)?)
}

/// Queues `makessl` on `connection` (a TcpClient not yet running), straight into its inbox.
fn queue_makessl(connection: &Component) -> anyhow::Result<()> {
    let makessl = connection.boxref("makessl")?.sender::<MakeSsl>();
    // A box of a component not yet running is open and empty, so this cannot fail; if it
    // did, the connection would never switch to TLS: the run stops here instead.
    makessl
        .and_then(|m| m.force_send(MakeSsl::new()).ok())
        .ok_or_else(|| anyhow::anyhow!("could not queue the TLS switch on the connection"))
}

/// The layer a client session puts between the console and the connection: for TLS from the
/// first byte a gate (the page's OneShot(MakeSsl) does the switching), for STARTTLS the
/// protocol's client component, which sends makessl itself (`true`).
pub(crate) fn client_layer(tls: Option<&TlsMode>) -> Option<(Component, bool)> {
    match tls {
        None => None,
        Some(TlsMode::Immediate(_)) => Some((TlsGate::new().into(), false)),
        Some(TlsMode::StartTls(d, _, limit)) => Some((starttls_client(d, *limit), true)),
    }
}

/// [`graphline`] with any layer of the STARTTLS components' shape between the console and
/// the connection (a client's, or `listen --starttls`'s server layer); `true` when the layer
/// sends makessl itself. The Graphline runs grouped (one task for all its components,
/// docs/semantics.md §10): they wake each other for every message and gain nothing from
/// running apart; on the relay path it saves about 480 instructions per round trip (callgrind,
/// `kamaelia connect` 64-byte ping-pong: 11.4k -> 10.9k).
pub(crate) fn graphline_with(
    source: Component,
    connection: Component,
    echo: ConsoleEchoer,
    layer: Option<(Component, bool)>,
) -> Result<Component, WiringError> {
    graphline_parts(None, source, connection, echo, layer)
}

/// [`graphline_with`], with a `feed` (FEED) in front of the source if given.
fn graphline_parts(
    feed: Option<Component>,
    source: Component,
    connection: Component,
    echo: ConsoleEchoer,
    layer: Option<(Component, bool)>,
) -> Result<Component, WiringError> {
    let mut g = Graphline::new().grouped();
    if let Some(feed) = feed {
        g = g
            .component("FEED", feed)
            .link(("FEED", OUTBOX), ("SOURCE", INBOX))
            .link(("FEED", SIGNAL), ("SOURCE", CONTROL));
    }
    let g = g
        .component("SOURCE", source)
        .component("CONNECTION", connection)
        .component("ECHO", echo);
    let g = match layer {
        None => g
            .link(("SOURCE", OUTBOX), ("CONNECTION", INBOX))
            .link(("SOURCE", SIGNAL), ("CONNECTION", CONTROL))
            .link(("CONNECTION", OUTBOX), ("ECHO", INBOX))
            .link(("CONNECTION", SIGNAL), ("ECHO", CONTROL))
            .link(("CONNECTION", "sslready"), ("", "sslready")),
        Some((layer, dialogue)) => {
            let g = g
                .component("LAYER", layer)
                .link(("SOURCE", OUTBOX), ("LAYER", INBOX))
                .link(("SOURCE", SIGNAL), ("LAYER", CONTROL))
                .link(("LAYER", OUTBOX), ("CONNECTION", INBOX))
                .link(("LAYER", SIGNAL), ("CONNECTION", CONTROL))
                .link(("CONNECTION", OUTBOX), ("LAYER", "fromserver"))
                .link(("LAYER", "touser"), ("ECHO", INBOX))
                .link(("CONNECTION", SIGNAL), ("LAYER", "connsignal"))
                .link(("LAYER", "connevents"), ("ECHO", CONTROL))
                .link(("CONNECTION", "sslready"), ("LAYER", "sslready"))
                .link(("LAYER", "tlsready"), ("", "sslready"));
            if dialogue {
                g.link(("LAYER", "makessl"), ("CONNECTION", "makessl"))
            } else {
                g.component("MAKESSL", OneShot::new(MakeSsl::new()))
                    .link(("MAKESSL", OUTBOX), ("CONNECTION", "makessl"))
            }
        }
    };
    g.link(("ECHO", SIGNAL), ("", SIGNAL)).build()
}

/// The library's client component for a `--starttls` protocol, with `limit` for its
/// dialogue: the one place that maps [`StartTlsProto`] to a component (connect, send and
/// forward use it).
pub(crate) fn starttls_client(d: &StartTlsDialogue, limit: Duration) -> Component {
    match d.proto {
        StartTlsProto::Smtp => SmtpStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Imap => ImapStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Pop3 => Pop3StartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Lmtp => LmtpStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Ftp => FtpStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Xmpp | StartTlsProto::XmppServer => {
            XmppStartTlsClient::new(d.xmpphost.as_str())
                .server_to_server(d.proto == StartTlsProto::XmppServer)
                .timeout(limit)
                .into()
        }
        StartTlsProto::Irc => IrcStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Postgres => PostgresStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Mysql => MysqlStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Nntp => NntpStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Sieve => SieveStartTlsClient::new().timeout(limit).into(),
        StartTlsProto::Ldap => LdapStartTlsClient::new().timeout(limit).into(),
    }
}

/// The other end, as `connect` and `send` name it.
const WHO_SERVER: &str = "the server";
/// The other end, as `listen` names it.
const WHO_PEER: &str = "the peer";

/// What the observer learned by the time the connection (and the echoer) ended.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// The address connected to.
    pub(crate) peer: Option<SocketAddr>,
    /// When the session was started, just before its components first ran: before the
    /// connection was made. See [`Summary::lasted`].
    pub(crate) started: Option<Instant>,
    /// When the session's final message was seen: the connection had ended.
    pub(crate) ended: Option<Instant>,
    /// What TLS agreed on.
    pub(crate) tls: Option<TlsInfo>,
    /// How the connection ended.
    pub(crate) how: Option<HowDied>,
    /// The first failure, in plain words.
    pub(crate) failure: Option<String>,
    /// Our stdout was closed by its reader.
    pub(crate) stdout_closed: bool,
    /// The graph, taken when TLS came up (if asked for).
    pub(crate) graph: Option<String>,
    /// What the connection says went each way.
    pub(crate) transferred: Option<Transferred>,
    /// When the server finished sending: had our input ended by then?
    pub(crate) server_finished: Option<ServerFinished>,
}

/// The server's half-close, and where our input was then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerFinished {
    /// Before our input ended: the input went on (or, typed at a terminal, was stopped).
    BeforeInputEnded,
    /// After our input had ended.
    AfterInputEnded,
    /// The input was not watched (no meter).
    OrderUnknown,
}

impl Summary {
    /// How long the session took, from its start (before connecting) to the connection's end:
    /// the only two moments the observer knows in time. When `Connected` reaches the observer
    /// says nothing about when the connection came up: the observer is a task of its own, and
    /// the session's group may hand megabytes to the kernel before the observer runs (seen:
    /// 61 chunks of 64 KiB, 4 MB, sent before a plain `send` over loopback printed
    /// "connected"), so a clock started then missed the start of the transfer. The time
    /// counted here includes connecting (and any TLS handshake or proxy tunnel), and at the
    /// end the wait for the server's close, which comes after it has read what we sent.
    pub(crate) fn lasted(&self) -> Duration {
        match (self.started, self.ended) {
            (Some(start), Some(end)) => end.saturating_duration_since(start),
            (Some(start), None) => start.elapsed(),
            _ => Duration::ZERO,
        }
    }

    /// 0 success, 1 failure, 130 interrupted.
    pub(crate) fn exit_code(&self) -> u8 {
        if self.stdout_closed {
            0
        } else if self.failure.is_some() {
            1
        } else if interrupted() {
            130
        } else {
            0
        }
    }
}

/// Watches a session's `signal` (and `sslready`) until its final message.
pub(crate) struct Observer {
    pub(crate) signal: Inbox<Control>,
    pub(crate) sslready: Inbox<SslReady>,
    /// Into the Graphline's `control`: stops the source when the server has finished sending
    /// and [`Observer::end_when_server_finishes`] asked for it.
    pub(crate) stop_source: Outbox<Control>,
    /// End the input as soon as the server has finished sending (a typed `connect` session).
    end_on_server_finish: bool,
    /// `connect` half-closed at the end of its input: if the server then closed without a
    /// word, say that `--no-shutdown` exists.
    hint_no_shutdown: bool,
    pub(crate) events: Events,
    /// Take the graph when TLS comes up.
    pub(crate) snapshot: Option<Scheduler>,
    /// What the source has counted, for the last line.
    counts: Option<Arc<Counts>>,
    /// The other end in the event lines: "the server" (connect, send) or "the peer" (listen).
    who: &'static str,
    /// The Unix socket path, named instead of the connection's address.
    unix_path: Option<String>,
    /// The size of the input, if known beforehand (`send` of a regular file).
    total: Option<u64>,
    /// `--show-cert`: print the server's chain and the TLS details.
    show_cert: bool,
    /// The connection goes through a proxy: `Connected` is the proxy's.
    via_proxy: bool,
}

impl Observer {
    /// Links an observer to `session`'s `signal`, `sslready` and `control`.
    pub(crate) fn attach(session: &Component, events: Events) -> Result<Self, WiringError> {
        let signal = Inbox::standalone("session signal", 64);
        let sslready = Inbox::standalone("session sslready", 4);
        let stop_source = Outbox::standalone("stop source");
        link_refs(&session.boxref(SIGNAL)?, &signal.boxref())?;
        if let Ok(r) = session.boxref("sslready") {
            link_refs(&r, &sslready.boxref())?;
        }
        link_refs(&stop_source.boxref(), &session.boxref(CONTROL)?)?;
        Ok(Observer {
            signal,
            sslready,
            stop_source,
            events,
            snapshot: None,
            end_on_server_finish: false,
            hint_no_shutdown: false,
            counts: None,
            total: None,
            show_cert: false,
            who: WHO_SERVER,
            unix_path: None,
            via_proxy: false,
        })
    }

    /// `--show-cert`: print the chain the server presented (even when it was not trusted) and
    /// what the handshake agreed on.
    pub(crate) fn show_cert(mut self, on: bool) -> Self {
        self.show_cert = on;
        self
    }

    /// For `listen`: the other end is "the peer", and it connected to us.
    pub(crate) fn accepted(mut self) -> Self {
        self.who = WHO_PEER;
        self
    }

    /// Over a Unix socket: name `path` instead of the connection's address.
    pub(crate) fn unix_path(mut self, path: Option<&std::path::Path>) -> Self {
        self.unix_path = path.map(|p| p.display().to_string());
        self
    }

    /// The source's counts (and the input's size, if known), so the last line can say how much
    /// of the input was sent.
    pub(crate) fn counts(mut self, counts: Arc<Counts>, total: Option<u64>) -> Self {
        self.counts = Some(counts);
        self.total = total;
        self
    }

    /// When the server has finished sending (its FIN or close_notify), ask the source to finish
    /// (ProducerFinished) instead of sending on until the input ends. Only for input typed at a
    /// terminal: a pipe or a file is sent whole whatever the server does, since the server's
    /// half-close ends only what it sends.
    pub(crate) fn end_when_server_finishes(mut self, on: bool) -> Self {
        self.end_on_server_finish = on;
        self
    }

    /// For `connect` sessions that half-close at the end of their input: when the server sent
    /// nothing at all and closed, the last line suggests `--no-shutdown` (request/response
    /// servers such as aiosmtpd and dovecot take the half-close as a hang-up and answer nothing).
    pub(crate) fn hint_no_shutdown(mut self, on: bool) -> Self {
        self.hint_no_shutdown = on;
        self
    }

    /// The session connects through a proxy: say "connected to proxy", then when the tunnel
    /// opens.
    pub(crate) fn via_proxy(mut self, on: bool) -> Self {
        self.via_proxy = on;
        self
    }

    /// Reports each message until the final one, for a session started at `started`.
    pub(crate) async fn watch(self, started: Instant) -> Summary {
        let mut s = Summary {
            started: Some(started),
            ..Summary::default()
        };
        loop {
            tokio::select! {
                c = self.signal.recv() => {
                    // Causal order: sslready was sent before anything the connection signals
                    // after it (the server finishing, an error), but after Connected; the two
                    // boxes race here.
                    if c.payload::<Connected>().is_none() {
                        if let Some(r) = self.sslready.try_recv() {
                            self.tls_up(r, &mut s);
                        }
                    }
                    self.events.signal(axon::SIGNAL, &c);
                    if let Some(chain) = c.payload::<PeerCertificates>() {
                        if self.show_cert {
                            self.events.peer_chain(chain);
                        }
                    } else if let Some(Connected { peer, .. }) = c.payload::<Connected>() {
                        s.peer = Some(*peer);
                        match (&self.unix_path, self.who) {
                            (Some(path), WHO_SERVER) => self.events.line(format_args!("connected to {path}")),
                            (Some(path), _) => self.events.line(format_args!("connection on {path}")),
                            (None, WHO_SERVER) => {
                                let proxy = if self.via_proxy { "proxy " } else { "" };
                                self.events.line(format_args!("connected to {proxy}{peer}"))
                            }
                            (None, _) => self.events.line(format_args!("connection from {peer}")),
                        }
                    } else if let Some(t) = c.payload::<TunnelOpen>() {
                        self.events.line(format_args!("proxy: tunnel to {} open", t.target));
                    } else if let Some(p) = c.payload::<PeerHalfClosed>() {
                        if p.truncation_possible {
                            self.events.warn(format_args!("{} closed without a TLS close_notify: possible truncation", self.who));
                        }
                        self.events.line(format_args!("{} finished sending", self.who));
                        s.server_finished.get_or_insert(match &self.counts {
                            Some(c) if c.input_ended() => ServerFinished::AfterInputEnded,
                            Some(_) => ServerFinished::BeforeInputEnded,
                            None => ServerFinished::OrderUnknown,
                        });
                        if self.end_on_server_finish {
                            let _ = self.stop_source.force_send(Control::producer_finished());
                        }
                    } else if let Some(t) = c.payload::<Transferred>() {
                        s.transferred = Some(t.clone());
                    } else if let Control::Error(e) = &c {
                        match judge(e) {
                            Verdict::StdoutClosed => {
                                s.stdout_closed = true;
                            }
                            Verdict::Failed(line) => {
                                tracing::debug!("error on signal: {e}");
                                let line = unanswered_certificate_request(e, s.tls.as_ref())
                                    .unwrap_or(line);
                                s.failure.get_or_insert(line);
                            }
                        }
                    }
                    if c.is_final() {
                        s.ended = Some(Instant::now());
                        // sslready was sent long before the final message, but the two boxes
                        // race here: report it first.
                        if let Some(r) = self.sslready.try_recv() {
                            self.tls_up(r, &mut s);
                        }
                        s.how = c.payload::<HowDied>().cloned();
                        break;
                    }
                }
                r = self.sslready.recv() => self.tls_up(r, &mut s),
            }
        }
        if s.stdout_closed {
            self.events.line("our output was closed by its reader");
        } else if let Some(line) = &s.failure {
            // Counts only once connected: a connect failure sent nothing.
            match self.delivery(&s).filter(|_| s.peer.is_some()) {
                Some(d) => self.events.failure(format_args!("{line}; {d}")),
                None => self.events.failure(line),
            }
        } else {
            self.events.line(self.ending(&s));
        }
        s
    }

    /// Why a session that did not fail ended, in plain words.
    fn ending(&self, s: &Summary) -> String {
        let received = s.transferred.as_ref().map_or(0, |t| t.received);
        let sent = s.transferred.as_ref().map_or(0, |t| t.sent);
        // Without a meter, a clean finish (ProducerFinished) is the input's end.
        let input_ended = match &self.counts {
            Some(c) => c.input_ended(),
            None => matches!(s.how, Some(HowDied::Finished)),
        };
        let input = if input_ended {
            format!("input ended ({sent} bytes sent)")
        } else {
            format!("input not ended ({sent} bytes sent)")
        };
        match (&s.how, s.server_finished) {
            (Some(HowDied::Shutdown { .. }), _) => {
                format!("stopped: {sent} bytes sent, {received} received")
            }
            (_, Some(_)) if self.end_on_server_finish => {
                format!("{} closed after sending {received} bytes", self.who)
            }
            (_, Some(ServerFinished::BeforeInputEnded)) => {
                format!(
                    "{} closed after sending {received} bytes; {input}",
                    self.who
                )
            }
            _ if input_ended && received == 0 && sent > 0 && self.hint_no_shutdown => format!(
                "{input}; {} closed after sending 0 bytes (a server that answers \
                 requests may take the half-close as a hang-up: try --no-shutdown)",
                self.who
            ),
            _ => format!(
                "{input}; {} closed after sending {received} bytes",
                self.who
            ),
        }
    }

    /// "N of M bytes sent, at least K not delivered", from the connection's count against the
    /// input's (the file's size if known, else what the meter handed on, else what the
    /// connection was given); nothing if there was nothing to send. "Sent" is what the kernel
    /// took: after a reset or a timeout some of it may never have been read (a peer that read
    /// 100 kB and reset had 524 kB "sent"), hence "at least".
    fn delivery(&self, s: &Summary) -> Option<String> {
        let t = s.transferred.as_ref()?;
        let sent = t.sent;
        let given = sent.saturating_add(t.unsent);
        let of = match (self.total, &self.counts) {
            (Some(total), _) => total,
            (None, Some(c)) => c.handed_on(),
            (None, None) => given,
        }
        .max(given);
        if of == 0 {
            // Nothing was at stake.
            return None;
        }
        Some(format!(
            "{sent} of {of} bytes sent, at least {} not delivered",
            of - sent
        ))
    }

    fn tls_up(&self, ready: SslReady, s: &mut Summary) {
        let SslReady { info, .. } = ready;
        self.events.sslready(&info);
        if self.show_cert {
            self.events.peer_chain(&info.peer_chain);
            self.events.tls_details(&info);
        }
        self.events.tls_established(&info);
        if let Some(sched) = &self.snapshot {
            s.graph = Some(sched.graph_dot());
        }
        s.tls = Some(info);
    }
}

/// Runs `body` with the process-wide scheduler (so `Component::activate` works anywhere in it)
/// under `axon::block_on`: its Ctrl-C handling, and no waiting for a blocked read of standard
/// input at the end. For servers, whose connections share a multi-threaded runtime.
pub(crate) fn run<F, Fut, T>(body: F) -> anyhow::Result<T>
where
    F: FnOnce(Scheduler) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let sched = Scheduler::current();
    axon::block_on(body(sched))?
}

/// Set by [`run_single`]'s interrupt handler.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once an interrupt (Ctrl-C) was seen by [`run`] or [`run_single`].
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed) || axon::interrupted()
}

/// [`run`] on one thread: a `current_thread` runtime, for the client commands (one connection,
/// a handful of components). Measured on `kamaelia send` of 1 GiB: a second worker thread only
/// adds wake-ups (futex, eventfd, epoll) as messages cross between threads, and at start-up
/// spawning it costs more than the work it would share. The same Ctrl-C handling as
/// `axon::block_on`: the first interrupt stops every top-level component, the second exits with
/// status 130; and no waiting for a blocked read of standard input at the end.
pub(crate) fn run_single<F, Fut, T>(body: F) -> anyhow::Result<T>
where
    F: FnOnce(Scheduler) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    run_on(1, body)
}

/// [`run_single`] on `threads` worker threads: one is [`run_single`] itself (a
/// `current_thread` runtime); more, a multi-threaded runtime with that many workers (`forward
/// --threads`), with the same interrupt handling.
pub(crate) fn run_on<F, Fut, T>(threads: usize, body: F) -> anyhow::Result<T>
where
    F: FnOnce(Scheduler) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    use std::sync::atomic::Ordering;
    use tokio::signal::unix::{signal, SignalKind};
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    let sched = Scheduler::current();
    let out = rt.block_on(async move {
        // Registered before `body` runs, so an interrupt never meets the default handler
        // (which would end the process without a shutdown) once components exist.
        let mut interrupts = signal(SignalKind::interrupt())?;
        let all = sched.clone();
        let ctrl_c = tokio::spawn(async move {
            if interrupts.recv().await.is_some() {
                INTERRUPTED.store(true, Ordering::Relaxed);
                all.shutdown_all();
                if interrupts.recv().await.is_some() {
                    std::process::exit(130);
                }
            }
        });
        let out = body(sched).await;
        ctrl_c.abort();
        anyhow::Ok(out)
    })?;
    rt.shutdown_background();
    out
}

/// Activates `session` and watches it to the end.
pub(crate) async fn drive(session: Component, observer: Observer) -> Summary {
    // Before anything of the session runs: the clock of [`Summary::lasted`].
    let started = Instant::now();
    session.activate();
    observer.watch(started).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Meter;
    use kamaelia::internet::TlsSettings;

    /// `send --tls` to a TCP host: the meter's outbox is linked straight to the connection's
    /// inbox (not through a Pipeline's passthrough, nor a TlsGate), and the TLS switch is
    /// queued on the connection before anything runs, so it handshakes before it takes data.
    #[test]
    fn send_over_tls_feeds_the_connection_straight_and_switches_it_first() {
        let feed: Component = kamaelia::RateControlledFileReader::new("/dev/null")
            .rate(None)
            .into();
        let meter = Meter::new(Arc::new(Counts::default()), false);
        let connection: Component = TcpClient::new("127.0.0.1", 1)
            .tls(TlsSettings::new())
            .into();
        let (out, inbox) = (
            meter.boxref(OUTBOX).unwrap(),
            connection.boxref(INBOX).unwrap(),
        );
        let makessl = connection.boxref("makessl").unwrap();
        let feed_out = feed.boxref(OUTBOX).unwrap();
        let meter_in = meter.boxref(INBOX).unwrap();
        let g = graphline_fed_as(
            Some(feed),
            meter,
            connection,
            ConsoleEchoer::new(),
            None,
            true,
        );
        assert!(g.is_ok());
        assert_eq!(out.linked_to(), Some(inbox.id()));
        assert_eq!(feed_out.linked_to(), Some(meter_in.id()));
        assert_eq!(makessl.queued(), 1, "the switch waits on the connection");
    }
}
