//! `kamaelia serve`: a TcpServer whose protocol echoes or discards, plain, TLS from the first
//! byte (`--cert --key`) or switched by STARTTLS (`--starttls smtp|imap|pop3`: the library's
//! [`SmtpStartTlsServer`], [`ImapStartTlsServer`], [`Pop3StartTlsServer`]).
//!
//! Nothing a client does can make it hold more than a bounded amount per connection: the
//! connection's boxes are bounded in bytes (the default [`Limits`], 256 KiB each way), a
//! connection with no traffic either way for `--idle-timeout` is closed, and the STARTTLS
//! dialogue caps its lines ([`MAX_COMMAND_LINE`]), what it holds while switching
//! ([`MAX_HELD`]) and its own duration ([`DEFAULT_PLAINTEXT_TIMEOUT`], or the idle timeout if
//! shorter). Event lines go through [`Events`], which never blocks serving, and nothing is kept about a
//! connection once it has ended.
//!
//! [`MAX_COMMAND_LINE`]: kamaelia::internet::starttls::MAX_COMMAND_LINE
//! [`MAX_HELD`]: kamaelia::internet::starttls::MAX_HELD

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use axon::{link_refs, Component, Control, ErrorMessage, Inbox};
use kamaelia::internet::starttls::DialogueError;
use kamaelia::internet::{
    certificate_problem, DiscardProtocol, EchoProtocol, ImapStartTlsServer, Limits, Listening,
    PeerRole, Pop3StartTlsServer, SmtpStartTlsServer, TcpError, TcpServer, TlsError,
    DEFAULT_PLAINTEXT_TIMEOUT,
};

use crate::errors::{find, judge, tcp_error, Verdict};
use crate::events::Events;
use crate::flags::{ListenOn, Output, ServeConfig, ServerStartTlsProto};
use crate::session;

/// Runs `serve` until Ctrl-C and returns the exit status (130 when interrupted).
pub(crate) fn main(cfg: ServeConfig, output: Output) -> anyhow::Result<u8> {
    session::run(|_sched| async move {
        let events = Events::new(output);
        let discard = cfg.discard;
        let starttls = cfg.tls.as_ref().and_then(|t| t.starttls);
        // The whole plaintext dialogue, not just a quiet spell in it, is bounded: a client
        // trickling a byte now and then cannot keep a connection before TLS for ever.
        let plaintext_limit = Some(cfg.idle_timeout.map_or(DEFAULT_PLAINTEXT_TIMEOUT, |t| {
            t.min(DEFAULT_PLAINTEXT_TIMEOUT)
        }));
        let unix = matches!(cfg.on, ListenOn::Unix(_));
        let factory = move |info: &kamaelia::internet::ConnectionInfo| {
            if unix {
                events.line("connection accepted");
            } else {
                events.line(format_args!("connection from {}", info.peer));
            }
            if let Some(proto) = starttls {
                starttls_server(proto, !discard, info.peer, plaintext_limit)
            } else if discard {
                DiscardProtocol::new()
            } else {
                EchoProtocol::new()
            }
        };
        let bound = match &cfg.on {
            ListenOn::Tcp(addr) => TcpServer::bind(&addr.to_string(), factory),
            ListenOn::Unix(path) => TcpServer::bind_unix(path, factory),
        };
        let server = match bound {
            Ok(s) => s,
            Err(e) => {
                events.failure(tcp_error(&e));
                return Ok(1);
            }
        };
        // Said in --help: the library's default limits, 256 KiB each way per connection.
        let server = server
            .limits(Limits::default())
            .idle_timeout(cfg.idle_timeout);
        let server = match &cfg.tls {
            None => server,
            Some(t) if t.starttls.is_some() => server.starttls(&t.identity)?,
            Some(t) => server.tls(&t.identity)?,
        };
        match &cfg.on {
            ListenOn::Tcp(_) => print_address(server.local_addr())?,
            ListenOn::Unix(path) => {
                print_line(&path.display().to_string())?;
                events.line(format_args!("listening on {}", path.display()));
            }
        }
        let server: Component = server.into();
        let signal = Inbox::<Control>::standalone("server signal", 64);
        link_refs(&server.boxref(axon::SIGNAL)?, &signal.boxref())?;
        server.activate();
        loop {
            let c = signal.recv().await;
            events.signal(axon::SIGNAL, &c);
            if let Some(Listening(a)) = c.payload::<Listening>() {
                events.line(format_args!("listening on {a}"));
            } else if let Control::Error(e) = &c {
                // One connection's failure ends only that connection.
                events.line(format_args!("connection failed: {}", describe(e)));
            }
            if c.is_final() {
                events.line("stopped");
                return Ok(if axon::interrupted() { 130 } else { 0 });
            }
        }
    })
}

/// The server side of `proto`'s STARTTLS for one connection from `peer`: it echoes (or
/// discards) once switched, and the plaintext dialogue is bounded by `plaintext_limit`.
pub(crate) fn starttls_server(
    proto: ServerStartTlsProto,
    echo: bool,
    peer: SocketAddr,
    plaintext_limit: Option<Duration>,
) -> Component {
    match proto {
        ServerStartTlsProto::Smtp => SmtpStartTlsServer::new()
            .echo(echo)
            .peer(peer)
            .plaintext_limit(plaintext_limit)
            .into(),
        ServerStartTlsProto::Imap => ImapStartTlsServer::new()
            .echo(echo)
            .peer(peer)
            .plaintext_limit(plaintext_limit)
            .into(),
        ServerStartTlsProto::Pop3 => Pop3StartTlsServer::new()
            .echo(echo)
            .peer(peer)
            .plaintext_limit(plaintext_limit)
            .into(),
    }
}

/// The one line on stdout, for scripts: the address actually bound. A reader that has gone
/// (`serve 0 | true`) is not an error: serving goes on, as `connect` goes on when its output
/// is closed.
pub(crate) fn print_address(addr: SocketAddr) -> std::io::Result<()> {
    print_line(&addr.to_string())
}

/// One line on stdout; a reader that has gone is not an error.
fn print_line(line: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A connection's failure in plain words, from the server's side: the peer is the client.
fn describe(e: &ErrorMessage) -> String {
    if let Some(d) = find::<DialogueError>(e.error()) {
        return d.to_string();
    }
    if let Some(TcpError::Tls(t)) = find::<TcpError>(e.error()) {
        if let Some(line) = client_tls_error(t) {
            return line;
        }
    }
    match judge(e) {
        Verdict::Failed(line) => line,
        Verdict::StdoutClosed => e.to_string(),
    }
}

/// The TLS failures whose client-side wording ("the server did not answer in TLS") would blame
/// the wrong end.
pub(crate) fn client_tls_error(t: &TlsError) -> Option<String> {
    Some(match t {
        TlsError::NotTls => {
            "TLS handshake failed: the client did not speak TLS (plaintext or garbage)".into()
        }
        TlsError::ClosedWithoutCloseNotify => {
            "TLS handshake failed: the client closed the connection during it".into()
        }
        TlsError::HandshakeFailed(why) => format!(
            "TLS handshake with the client failed: {}",
            why.words(PeerRole::Client)
        ),
        TlsError::UntrustedCertificate(why) => format!(
            "client certificate not trusted: {}",
            certificate_problem(why, "the client's certificate")
        ),
        TlsError::HandshakeTimeout(after) => format!(
            "TLS handshake failed: the client did not finish it within {} s",
            after.as_secs_f64()
        ),
        _ => return None,
    })
}
