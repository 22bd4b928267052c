//! One test for every component in the workspace: each one's rustdoc `# Inboxes` / `# Outboxes`
//! tables against the boxes its builder declares (from its `axon::box_table!`), both ways.
//!
//! It lives in the program because only the program sees both the library's components and its
//! own; the library's sources are read from their files in the workspace.

use std::sync::{Arc, Mutex};

use axon::{Component, Direction};
use kamaelia::internet::{
    ConnectedSocketAdapter, DiscardProtocol, EchoProtocol, FtpStartTlsClient, ImapStartTlsClient,
    ImapStartTlsServer, IrcStartTlsClient, LdapStartTlsClient, LmtpStartTlsClient,
    MysqlStartTlsClient, NntpStartTlsClient, OnFinish, Pop3StartTlsClient, Pop3StartTlsServer,
    PostgresStartTlsClient, Proxy, ProxyClient, ProxyKind, Relay, SieveStartTlsClient,
    SingleServer, SmtpStartTlsClient, SmtpStartTlsServer, StartTlsServerLayer, TcpClient,
    TcpServer, TlsGate, UnixClient, XmppStartTlsClient,
};
use kamaelia::util::RateLimiter;
use kamaelia::{
    ConsoleEchoer, ConsoleReader, Graphline, OneShot, Pipeline, RateControlledFileReader,
};

/// The files that component docs include with `#[doc = include_str!(..)]`, by name.
const INCLUDES: [(&str, &str); 3] = [
    (
        "client_boxes.md",
        include_str!("../../kamaelia/src/internet/starttls/client_boxes.md"),
    ),
    (
        "server_boxes.md",
        include_str!("../../kamaelia/src/internet/starttls/server_boxes.md"),
    ),
    (
        "server_layer_boxes.md",
        include_str!("../../kamaelia/src/internet/starttls/server_layer_boxes.md"),
    ),
];

/// The rustdoc of the item whose line starts with `anchor` in `source`: its `///` lines and the
/// files it includes, in order.
fn item_doc(source: &str, anchor: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim_start().starts_with(anchor))
        .unwrap_or_else(|| panic!("no line starting with {anchor:?}"));
    let mut doc: Vec<String> = Vec::new();
    for line in lines[..at].iter().rev().map(|l| l.trim_start()) {
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.strip_prefix(' ').unwrap_or(d).to_string());
        } else if let Some(file) = line
            .strip_prefix("#[doc = include_str!(\"")
            .and_then(|r| r.strip_suffix("\")]"))
        {
            let (_, text) = INCLUDES
                .iter()
                .find(|(name, _)| *name == file)
                .unwrap_or_else(|| panic!("{anchor}: unknown include {file}"));
            doc.extend(text.lines().rev().map(String::from));
        } else if !line.starts_with("#[") {
            break;
        }
    }
    doc.reverse();
    doc
}

/// The rows of the `# Inboxes` and `# Outboxes` tables in `doc`: (`inbox` or `outbox`, name,
/// meaning).
fn documented_boxes(doc: &[String]) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let mut section = None;
    for line in doc {
        if let Some(heading) = line.strip_prefix("# ") {
            section = match heading {
                "Inboxes" => Some(Direction::In),
                "Outboxes" => Some(Direction::Out),
                _ => None,
            };
            continue;
        }
        let (Some(direction), Some(row)) = (section, line.strip_prefix("| `")) else {
            continue;
        };
        let row = row.strip_suffix(" |").unwrap_or(row);
        let mut cells = row.splitn(3, " | ");
        let name = cells.next().unwrap_or_default().trim_end_matches('`');
        let _type = cells.next();
        let meaning = cells.next().unwrap_or_default();
        rows.push((direction.to_string(), name.to_string(), meaning.to_string()));
    }
    rows.sort();
    rows
}

/// What the component's builder declared: (`inbox` or `outbox`, name, description).
fn declared_boxes(c: &Component) -> Vec<(String, String, String)> {
    let mut boxes: Vec<_> = c
        .boxes()
        .map(|b| {
            let d = b.direction.to_string();
            (d, b.name.to_string(), b.description.to_string())
        })
        .collect();
    boxes.sort();
    boxes
}

/// A component with no boxes, as a child for the chassis.
fn boxless() -> Component {
    Component::build("Boxless").main(|_cx| async { Ok(()) })
}

/// Every component — the library's and the program's — declares exactly the boxes its rustdoc
/// tables list, in the right table, with the description each row shows; and every row is a
/// declared box. The CSA runs on an in-memory duplex stream.
#[test]
fn every_component_declares_the_boxes_its_docs_list() {
    const ONE_SHOT: &str = include_str!("../../kamaelia/src/util/one_shot.rs");
    const CONSOLE: &str = include_str!("../../kamaelia/src/util/console.rs");
    const RATE_LIMITER: &str = include_str!("../../kamaelia/src/util/rate_limiter.rs");
    const FILE_READER: &str =
        include_str!("../../kamaelia/src/file/rate_controlled_file_reader.rs");
    const PIPELINE: &str = include_str!("../../kamaelia/src/chassis/pipeline.rs");
    const GRAPHLINE: &str = include_str!("../../kamaelia/src/chassis/graphline.rs");
    const CSA: &str = include_str!("../../kamaelia/src/internet/csa/mod.rs");
    const TCP_CLIENT: &str = include_str!("../../kamaelia/src/internet/tcp_client.rs");
    const TCP_SERVER: &str = include_str!("../../kamaelia/src/internet/tcp_server.rs");
    const PROTOCOLS: &str = include_str!("../../kamaelia/src/internet/protocols.rs");
    const STARTTLS_CLIENT: &str = include_str!("../../kamaelia/src/internet/starttls/client.rs");
    const SMTP: &str = include_str!("../../kamaelia/src/internet/starttls/smtp.rs");
    const SERVER_LAYER: &str = include_str!("../../kamaelia/src/internet/starttls/server_layer.rs");
    const IMAP: &str = include_str!("../../kamaelia/src/internet/starttls/imap.rs");
    const POP3: &str = include_str!("../../kamaelia/src/internet/starttls/pop3.rs");
    const FTP: &str = include_str!("../../kamaelia/src/internet/starttls/ftp.rs");
    const IRC: &str = include_str!("../../kamaelia/src/internet/starttls/irc.rs");
    const LDAP: &str = include_str!("../../kamaelia/src/internet/starttls/ldap.rs");
    const MYSQL: &str = include_str!("../../kamaelia/src/internet/starttls/mysql.rs");
    const NNTP: &str = include_str!("../../kamaelia/src/internet/starttls/nntp.rs");
    const POSTGRES: &str = include_str!("../../kamaelia/src/internet/starttls/postgres.rs");
    const SIEVE: &str = include_str!("../../kamaelia/src/internet/starttls/sieve.rs");
    const XMPP: &str = include_str!("../../kamaelia/src/internet/starttls/xmpp.rs");
    const SINGLE_SERVER: &str = include_str!("../../kamaelia/src/internet/single_server.rs");
    const RELAY: &str = include_str!("../../kamaelia/src/internet/relay.rs");
    const UNIX: &str = include_str!("../../kamaelia/src/internet/unix.rs");
    const PROXY_CLIENT: &str = include_str!("../../kamaelia/src/internet/proxy/client.rs");

    let (pipe, _other_end) = tokio::io::duplex(64);
    let csa = ConnectedSocketAdapter::new(pipe, ([127, 0, 0, 1], 1).into(), None, OnFinish::Close);
    let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
    // Children with an `inbox` and an `outbox`, so the Pipeline declares its own.
    let pipeline = Pipeline::new([RateLimiter::new(1).into(), RateLimiter::new(1).into()]).unwrap();
    // Boxless children, so the Graphline declares only its fixed boxes.
    let graphline = Graphline::new()
        .component("A", boxless())
        .component("B", boxless())
        .build()
        .unwrap();
    let counts = Arc::default();
    let components: Vec<(Component, &str, &str)> = vec![
        (OneShot::new(1u8).into(), ONE_SHOT, "pub struct OneShot"),
        (
            ConsoleReader::new().into(),
            CONSOLE,
            "pub struct ConsoleReader",
        ),
        (
            ConsoleEchoer::new().into(),
            CONSOLE,
            "pub struct ConsoleEchoer",
        ),
        (
            RateLimiter::new(1).into(),
            RATE_LIMITER,
            "pub struct RateLimiter",
        ),
        (
            RateControlledFileReader::new("unread").into(),
            FILE_READER,
            "pub struct RateControlledFileReader",
        ),
        (pipeline, PIPELINE, "pub struct Pipeline"),
        (graphline, GRAPHLINE, "pub struct Graphline"),
        (csa, CSA, "pub struct ConnectedSocketAdapter"),
        (
            TcpClient::new("localhost", 1).into(),
            TCP_CLIENT,
            "pub struct TcpClient",
        ),
        (server.into(), TCP_SERVER, "pub struct TcpServer"),
        (
            SingleServer::bind("127.0.0.1:0").unwrap().into(),
            SINGLE_SERVER,
            "pub struct SingleServer",
        ),
        (
            Relay::new(TcpClient::new("localhost", 1)).into(),
            RELAY,
            "pub struct Relay {",
        ),
        (
            UnixClient::new("/nonexistent").into(),
            UNIX,
            "pub struct UnixClient",
        ),
        (EchoProtocol::new(), PROTOCOLS, "pub struct EchoProtocol"),
        // Documented as "boxes as EchoProtocol".
        (DiscardProtocol::new(), PROTOCOLS, "pub struct EchoProtocol"),
        (TlsGate::new().into(), STARTTLS_CLIENT, "pub struct TlsGate"),
        (
            SmtpStartTlsClient::new().into(),
            SMTP,
            "pub struct SmtpStartTlsClient",
        ),
        (
            SmtpStartTlsServer::new().into(),
            SMTP,
            "pub struct SmtpStartTlsServer",
        ),
        (
            StartTlsServerLayer::imap().into(),
            SERVER_LAYER,
            "pub struct StartTlsServerLayer",
        ),
        (
            ImapStartTlsClient::new().into(),
            IMAP,
            "pub struct ImapStartTlsClient",
        ),
        (
            ImapStartTlsServer::new().into(),
            IMAP,
            "pub struct ImapStartTlsServer",
        ),
        (
            Pop3StartTlsClient::new().into(),
            POP3,
            "pub struct Pop3StartTlsClient",
        ),
        (
            Pop3StartTlsServer::new().into(),
            POP3,
            "pub struct Pop3StartTlsServer",
        ),
        (
            LmtpStartTlsClient::new().into(),
            SMTP,
            "pub struct LmtpStartTlsClient",
        ),
        (
            FtpStartTlsClient::new().into(),
            FTP,
            "pub struct FtpStartTlsClient",
        ),
        (
            XmppStartTlsClient::new("example.com").into(),
            XMPP,
            "pub struct XmppStartTlsClient",
        ),
        (
            IrcStartTlsClient::new().into(),
            IRC,
            "pub struct IrcStartTlsClient",
        ),
        (
            PostgresStartTlsClient::new().into(),
            POSTGRES,
            "pub struct PostgresStartTlsClient",
        ),
        (
            MysqlStartTlsClient::new().into(),
            MYSQL,
            "pub struct MysqlStartTlsClient",
        ),
        (
            NntpStartTlsClient::new().into(),
            NNTP,
            "pub struct NntpStartTlsClient",
        ),
        (
            SieveStartTlsClient::new().into(),
            SIEVE,
            "pub struct SieveStartTlsClient",
        ),
        (
            LdapStartTlsClient::new().into(),
            LDAP,
            "pub struct LdapStartTlsClient",
        ),
        (
            ProxyClient::new(Proxy::new(ProxyKind::Socks5, "proxy", 1080), "target", 1).into(),
            PROXY_CLIENT,
            "pub struct ProxyClient",
        ),
        (
            crate::progress::Meter::new(counts, false),
            include_str!("progress.rs"),
            "pub(crate) struct Meter",
        ),
        (
            crate::demo::hash_protocol(Arc::new(Mutex::new(None))),
            include_str!("demo.rs"),
            "pub(crate) fn hash_protocol",
        ),
    ];
    for (c, source, anchor) in &components {
        let documented = documented_boxes(&item_doc(source, anchor));
        assert!(!documented.is_empty(), "{anchor}: no box tables");
        assert_eq!(
            declared_boxes(c),
            documented,
            "{}: declared (left) vs documented (right)",
            c.name()
        );
    }
}
