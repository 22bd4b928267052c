//! Command-line flags: clap turns the raw arguments into [`Args`], and [`Args::validate`] turns
//! those into a [`Config`] that every command trusts. Nothing runs before validation passes;
//! a validation failure is a usage error (exit status 2).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use kamaelia::internet::{Family, Proxy, ServerTls, TlsSettings, Trust, DEFAULT_CONNECT_TIMEOUT};

/// The longest duration any flag takes, in seconds: about 31 years, far from where adding it to
/// a clock could overflow.
pub(crate) const MAX_SECS: u64 = 1_000_000_000;

/// The largest `--chunk-size`: each chunk is one allocation, and several may be in flight.
pub(crate) const MAX_CHUNK_SIZE: usize = 4 << 20;

/// How long a STARTTLS dialogue may take once connected, unless `--starttls-timeout` says.
pub(crate) const DEFAULT_STARTTLS_TIMEOUT: Duration =
    kamaelia::internet::starttls::DEFAULT_DIALOGUE_TIMEOUT;

/// The raw arguments, as clap parses them.
#[derive(Debug, Parser)]
#[command(
    name = "kamaelia",
    version,
    about = "Talk to TCP and TLS servers with Kamaelia's components (netcat / openssl s_client style)",
    long_about = "Talk to TCP and TLS servers with Kamaelia's components.\n\n\
        connect: stdin to the server, the server to stdout (byte-exact), TLS or STARTTLS on request.\n\
        send:    a file to a server at a controlled rate.\n\
        serve:   an echo or discard server, plain, TLS or STARTTLS.\n\
        listen:  one connection accepted (nc -l): stdin to the peer, the peer to stdout.\n\
        forward: relay each connection to HOST PORT (socat TCP-LISTEN,fork; stunnel).\n\
        demo:    the two examples of Kamaelia's TCPClient page against a local server, offline.\n\
        completions, man: a shell completion script, the manual page.\n\n\
        Without a command, runs the demo.\n\
        Exit status: 0 success, 1 a connection or TLS failure, 2 a usage error, 130 interrupted.",
    after_long_help = crate::completions::EXAMPLES
)]
pub(crate) struct Args {
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

// The reporting flags, taken before the command and after it (`kamaelia -q send ...`,
// `kamaelia send -q ...`): flattened into the top level and into each command, whose values
// are then or-ed. Not clap's `global`, which at every start copies each global flag into every
// command (3 flags into 8 commands: 56 KB allocated, 18k instructions, a tenth of clap's part
// of `kamaelia send`'s start-up).
#[derive(Debug, Default, Clone, Copy, clap::Args)]
struct OutputArgs {
    /// Tracing detail on stderr (RUST_LOG overrides the filter).
    #[arg(short, long)]
    verbose: bool,
    /// Print each message the components send on their signal boxes as a JSON line on stderr
    /// (instead of the event lines).
    #[arg(long)]
    json_events: bool,
    /// No event lines on stderr (failures are still reported).
    #[arg(short, long)]
    quiet: bool,
}

impl OutputArgs {
    /// Either place's flags.
    fn or(self, other: OutputArgs) -> OutputArgs {
        OutputArgs {
            verbose: self.verbose || other.verbose,
            json_events: self.json_events || other.json_events,
            quiet: self.quiet || other.quiet,
        }
    }
}

/// Each command's arguments are built only when that command is run (`defer`): building every
/// command's arguments for every run was a tenth of `kamaelia send`'s start-up. A deferred
/// command's flattened argument structs are applied after its own description, so their doc
/// comments would replace it: those structs are described with `//` comments, not `///`.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
enum Command {
    /// Connect to HOST PORT: stdin goes to the server, what the server sends goes to stdout.
    ///
    /// The server's half-close (it has finished sending) ends only what it sends: piped or
    /// redirected input is sent until it ends. Input typed at a terminal ends with the server
    /// (QUIT, 221, close). At the end of input the write side is shut (FIN; TLS close_notify
    /// first) and the session waits for the server to close, unless --no-shutdown (the default
    /// with --starttls). The last line on stderr says why the session ended.
    #[command(after_long_help = crate::completions::CONNECT_EXAMPLES)]
    Connect {
        #[command(flatten)]
        target: ConnectTargetArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        client_id: ClientIdArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Send FILE ("-" for stdin) to HOST PORT, half-close (unless --no-shutdown), and wait for
    /// the server to close.
    ///
    /// The server's half-close (it has finished sending) does not stop the upload: the whole
    /// file is sent. If the server closes entirely, the next write fails: exit 1, with how many
    /// bytes were sent and how many were not.
    #[command(after_long_help = crate::completions::SEND_EXAMPLES)]
    Send {
        #[command(flatten)]
        target: TargetArgs,
        /// The file to send; "-" reads standard input.
        file: PathBuf,
        /// Bytes per second (k, M, G suffixes: 200k, 1.5M); default unlimited.
        #[arg(long, value_name = "BYTES_PER_SEC", value_parser = parse_rate)]
        rate: Option<u64>,
        /// The largest message handed to the connection (k, M suffixes welcome; at most 4 MiB).
        #[arg(long, value_name = "BYTES", value_parser = parse_chunk_size)]
        chunk_size: Option<usize>,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        client_id: ClientIdArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Listen on PORT (0 picks a free one) and echo or discard; prints the bound address.
    ///
    /// Safe against hostile clients: each connection holds at most 256 KiB of data in each
    /// direction (the library's default Limits; about 1 MiB per connection in all), a
    /// connection with no traffic either way for --idle-timeout seconds is closed, and under
    /// --starttls the plaintext dialogue takes lines of at most 8 KiB, holds at most 64 KiB
    /// while switching, and must reach STARTTLS within 60 s of connecting (or --idle-timeout,
    /// if shorter); a client that breaks a limit is dropped with a line saying why. Event
    /// lines on stderr never hold up serving: when stderr is not read fast enough, lines are
    /// dropped and "N event lines dropped" is printed once it flows again. The bound address
    /// goes to stdout; a closed stdout is not an error. Ctrl-C stops it, exit status 130.
    #[command(after_long_help = crate::completions::SERVE_EXAMPLES)]
    Serve {
        /// The port to listen on; 0 picks a free one.
        #[arg(value_parser = parse_port_or_zero, required_unless_present = "unix")]
        port: Option<u16>,
        /// Listen on this Unix socket path instead of a port (no TLS). A socket file nobody
        /// listens on is replaced; any other file there is refused. The path is printed
        /// instead of the address.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["port", "bind", "cert"])]
        unix: Option<PathBuf>,
        /// The address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Send back everything received (the default).
        #[arg(long, conflicts_with = "discard")]
        echo: bool,
        /// Read and throw away everything received.
        #[arg(long)]
        discard: bool,
        #[command(flatten)]
        server_tls: ServerTlsArgs,
        /// Speak this protocol in plaintext until the client asks for STARTTLS, then TLS; needs
        /// --cert and --key. Without a value: smtp.
        #[arg(long, value_name = "PROTO", requires = "cert", num_args = 0..=1,
              default_missing_value = "smtp")]
        starttls: Option<ServerStartTlsProto>,
        /// Close a connection that has seen no traffic either way for this long (default 300;
        /// 0 never; fractions allowed). Under --starttls the plaintext phase is limited to 60
        /// s, or to this if shorter.
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        idle_timeout: Option<Duration>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Listen on PORT (0 picks a free one) for one connection: stdin goes to the peer, what the
    /// peer sends goes to stdout, byte-exact (nc -l, ncat -l).
    ///
    /// "listening on ADDR" is printed on stderr, even with -q. The listening socket is closed
    /// once a connection is accepted: a second connection is refused (as nc -l does). The
    /// peer's half-close ends only what it sends: the input is sent until it ends; then the
    /// write side is shut (FIN; TLS close_notify first) unless --no-shutdown, and it exits 0
    /// when both directions are done. With --cert/--key the peer must speak TLS from the first
    /// byte.
    #[command(after_help = "EXAMPLES:
  kamaelia listen 9000 > received.bin        # then: kamaelia send 127.0.0.1 9000 file.bin
  kamaelia listen --cert cert.pem --key key.pem 9443 > out
  kamaelia listen --unix /tmp/k.sock")]
    Listen {
        /// The port to listen on; 0 picks a free one.
        #[arg(value_parser = parse_port_or_zero, required_unless_present = "unix")]
        port: Option<u16>,
        /// Listen on this Unix socket path instead of a port. A socket file nobody listens on
        /// is replaced; any other file there is refused.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["port", "bind", "cert"])]
        unix: Option<PathBuf>,
        /// The address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        #[command(flatten)]
        server_tls: ServerTlsArgs,
        /// Speak this protocol's server side in plaintext (greeting, EHLO/CAPABILITY/CAPA,
        /// STARTTLS) until the peer asks for TLS, then TLS; needs --cert and --key. Nothing is
        /// passed either way before TLS: lines that are not the protocol's commands are
        /// dropped, and stdin waits. The dialogue must reach STARTTLS within 60 s (or
        /// --idle-timeout, if shorter).
        #[arg(long, value_name = "PROTO", requires = "cert")]
        starttls: Option<ServerStartTlsProto>,
        /// End the session, with exit status 1, when no byte has moved either way for this long
        /// (fractions allowed; default: no limit).
        #[arg(long, value_name = "SECS", value_parser = parse_positive_secs)]
        idle_timeout: Option<Duration>,
        /// At the end of input, keep the write side open until the peer closes.
        #[arg(long, overrides_with = "shutdown")]
        no_shutdown: bool,
        /// At the end of input, shut the write side (FIN; TLS close_notify first) and wait for
        /// the peer to close (the default).
        #[arg(long, overrides_with = "no_shutdown")]
        shutdown: bool,
        /// Send each LF of the input as CRLF (a CRLF already there stays as it is).
        #[arg(long)]
        crlf: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Accept connections on LISTEN_PORT and relay each to HOST PORT, both ways (socat
    /// TCP-LISTEN,fork TCP:HOST:PORT; stunnel with --cert/--key or --tls).
    ///
    /// The bound address is printed on stdout; each connection gets an "opened" line and a
    /// "closed" line (bytes each way and how it ended) on stderr. Each half-close is passed
    /// through end to end (the client's FIN becomes a FIN to the target after everything
    /// queued, and the other way); a failure on one side (refused, reset) closes the other. A
    /// connection's boxes hold at most 32 KiB each (it reads 16 KiB at a time): about 112 KiB
    /// each way at most beside the sockets' own buffers (with --starttls or --proxy, their
    /// layer holds up to 256 KiB more each way), so a slow side holds the fast one back.
    /// At most --max-connections are relayed at once: further connections wait in the
    /// listening socket's backlog (they are accepted when one ends), they are not refused.
    /// Each relayed connection takes two file descriptors: under the usual limit of 1024
    /// (ulimit -n), raise it to relay more than about 500 at once.
    /// --cert/--key terminate TLS from clients; --tls (with --ca or --system-roots,
    /// --servername) speaks TLS to the target, --starttls PROTO the protocol's dialogue and
    /// then TLS. Ctrl-C stops it, exit status 130.
    #[command(after_help = "EXAMPLES:
  kamaelia forward 8080 example.com 80
  kamaelia forward --cert cert.pem --key key.pem 8443 127.0.0.1 8080    # TLS termination
  kamaelia forward --tls --system-roots 8080 example.com 443            # TLS origination
  kamaelia forward --starttls smtp --ca ca.pem 2525 mail.example.com 25")]
    Forward {
        /// The port to listen on; 0 picks a free one.
        #[arg(value_parser = parse_port_or_zero)]
        listen_port: u16,
        #[command(flatten)]
        target: TargetArgs,
        /// The address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        #[command(flatten)]
        server_tls: ServerTlsArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        target_id: TargetIdArgs,
        #[command(flatten)]
        proxy: ProxyArgs,
        /// Relay at most this many connections at once; more wait in the backlog.
        #[arg(long, value_name = "N", default_value_t = 1024,
              value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_connections: u64,
        /// Worker threads relaying connections (default 1: one thread relays them all, as
        /// `copy_bidirectional` on a `current_thread` runtime does; more spread many busy
        /// connections over the CPUs, at the price of a connection's chunks crossing threads).
        #[arg(long, value_name = "N", default_value_t = 1,
              value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: u16,
        /// Close a relayed connection when no byte has moved either way on one of its sides for
        /// this long (fractions allowed; default: no limit).
        #[arg(long, value_name = "SECS", value_parser = parse_positive_secs)]
        idle_timeout: Option<Duration>,
        /// Give up connecting to the target after this long (default 60; fractions allowed).
        #[arg(long, value_name = "SECS", value_parser = parse_positive_secs)]
        connect_timeout: Option<Duration>,
        /// Connect to the target over IPv4 only.
        #[arg(short = '4', conflicts_with = "ipv6")]
        ipv4: bool,
        /// Connect to the target over IPv6 only.
        #[arg(short = '6')]
        ipv6: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The embedded demo: a local server, the page's two examples, a report. Offline.
    #[command(after_long_help = crate::completions::DEMO_EXAMPLES)]
    Demo {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print a shell completion script on stdout.
    #[command(after_long_help = crate::completions::COMPLETIONS_EXAMPLES)]
    Completions {
        /// The shell: bash, zsh, fish (also elvish, powershell).
        shell: clap_complete::Shell,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print the manual page (roff) on stdout.
    #[command(after_long_help = crate::completions::MAN_EXAMPLES)]
    Man {
        #[command(flatten)]
        output: OutputArgs,
    },
}

// The TLS options of a listening side (serve; listen and forward to come).
#[derive(Debug, clap::Args)]
struct ServerTlsArgs {
    /// The PEM certificate chain, for TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The PEM private key, for TLS.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Require every client to present a certificate signed by a CA in this PEM file (mutual
    /// TLS); a client without one, or with another, is refused with a line saying so.
    #[arg(long, value_name = "FILE", requires = "cert")]
    client_ca: Option<PathBuf>,
    /// The ALPN protocols accepted, most preferred first, comma-separated (h2,http/1.1); a
    /// client offering none of them is refused (no_application_protocol).
    #[arg(long = "alpn", value_name = "LIST", requires = "cert", value_parser = parse_alpn)]
    server_alpn: Option<AlpnList>,
}

impl ServerTlsArgs {
    /// The server identity, loaded and built once here so that a bad file is a usage error;
    /// None without --cert/--key.
    fn identity(&self) -> Result<Option<ServerTls>, UsageError> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let mut identity =
            ServerTls::from_pem_files(cert, key).map_err(|e| UsageError(e.to_string()))?;
        if let Some(ca) = &self.client_ca {
            identity = identity
                .with_client_ca_pem_file(ca)
                .map_err(|e| UsageError(e.to_string()))?;
        }
        if let Some(alpn) = &self.server_alpn {
            identity = identity.with_alpn(alpn.0.clone());
        }
        identity
            .server_config()
            .map_err(|e| UsageError(e.to_string()))?;
        Ok(Some(identity))
    }
}

#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The server: a name or an IP address (IPv6 with or without brackets).
    host: String,
    /// The port, 1-65535.
    #[arg(value_parser = parse_port)]
    port: u16,
}

// `connect`'s target: HOST PORT, or `--unix PATH`.
#[derive(Debug, clap::Args)]
struct ConnectTargetArgs {
    /// Connect to this Unix socket path instead of HOST PORT (no TLS over it).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["host", "port"])]
    unix: Option<PathBuf>,
    /// The server: a name or an IP address (IPv6 with or without brackets).
    #[arg(required_unless_present = "unix")]
    host: Option<String>,
    /// The port, 1-65535.
    #[arg(value_parser = parse_port, required_unless_present = "unix")]
    port: Option<u16>,
}

#[derive(Debug, clap::Args)]
struct TlsArgs {
    /// Switch to TLS as soon as connected, before any data (a MakeSsl on the client's makessl).
    #[arg(long)]
    tls: bool,
    /// Speak this protocol up to its STARTTLS command, then switch to TLS.
    #[arg(long, value_name = "PROTO", conflicts_with = "tls")]
    starttls: Option<StartTlsProto>,
    /// Trust this PEM CA (default: the built-in Mozilla roots).
    #[arg(long, value_name = "FILE", conflicts_with = "system_roots")]
    ca: Option<PathBuf>,
    /// Trust the operating system's certificate store.
    #[arg(long)]
    system_roots: bool,
    /// The name to verify the certificate against (default: HOST).
    #[arg(long, value_name = "NAME")]
    servername: Option<String>,
    /// How long the server may take over the STARTTLS dialogue, counted from the moment the
    /// connection is up (default 30; fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_positive_secs, requires = "starttls")]
    starttls_timeout: Option<Duration>,
    /// The domain to open the XMPP stream to (`to=`), with --starttls xmpp or xmpp-server
    /// (default: HOST).
    #[arg(long, value_name = "NAME", requires = "starttls")]
    xmpphost: Option<String>,
    /// Print on stderr the certificate chain the server presented (subject, issuer, names,
    /// validity, SHA-256 fingerprint of each), then the version, cipher suite, key-exchange
    /// group and ALPN protocol; printed even when verification fails, to show why.
    #[arg(long)]
    show_cert: bool,
}

// The client's own TLS options on `connect` and `send`. Apart from [`TlsArgs`] because
// `forward` flattens `TlsArgs` for its outgoing side while `--cert`, `--key` and `--alpn`
// there belong to its listening side ([`ServerTlsArgs`]).
#[derive(Debug, clap::Args)]
struct ClientIdArgs {
    /// Present this PEM certificate chain (leaf first) when the server asks for a client
    /// certificate; needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The PEM private key (unencrypted) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Offer these ALPN protocols, most preferred first, comma-separated (h2,http/1.1); the
    /// one agreed is in the "TLS established" line.
    #[arg(long, value_name = "LIST", value_parser = parse_alpn)]
    alpn: Option<AlpnList>,
}

// `forward`'s client identity and ALPN towards the target: `--cert`, `--key` and `--alpn`
// there belong to its listening side.
#[derive(Debug, clap::Args)]
struct TargetIdArgs {
    /// Present this PEM certificate chain (leaf first) to the target when it asks for a client
    /// certificate; needs --target-key and --tls or --starttls.
    #[arg(long, value_name = "FILE", requires = "target_key")]
    target_cert: Option<PathBuf>,
    /// The PEM private key (unencrypted) of --target-cert.
    #[arg(long, value_name = "FILE", requires = "target_cert")]
    target_key: Option<PathBuf>,
    /// Offer these ALPN protocols to the target, most preferred first, comma-separated.
    #[arg(long, value_name = "LIST", value_parser = parse_alpn)]
    target_alpn: Option<AlpnList>,
}

impl From<TargetIdArgs> for ClientIdArgs {
    fn from(t: TargetIdArgs) -> Self {
        ClientIdArgs {
            cert: t.target_cert,
            key: t.target_key,
            alpn: t.target_alpn,
        }
    }
}

impl ClientIdArgs {
    /// Adds the client certificate and ALPN list to `ep`'s TLS settings (checked once here, so
    /// a bad file is a usage error).
    fn apply(self, ep: Endpoint) -> Result<Endpoint, UsageError> {
        self.apply_as(ep, "--cert, --key and --alpn")
    }

    /// [`apply`](Self::apply), naming the flags as the command spells them in its error.
    fn apply_as(self, mut ep: Endpoint, flags: &str) -> Result<Endpoint, UsageError> {
        if self.cert.is_none() && self.alpn.is_none() {
            return Ok(ep);
        }
        let Some(mode) = ep.tls.as_mut() else {
            return Err(UsageError(format!("{flags} need --tls or --starttls")));
        };
        let mut settings = mode.settings().clone();
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            settings = settings
                .with_client_cert_pem_files(cert, key)
                .map_err(|e| UsageError(e.to_string()))?;
        }
        if let Some(alpn) = self.alpn {
            settings = settings.with_alpn(alpn.0);
        }
        settings
            .client_config()
            .map_err(|e| UsageError(e.to_string()))?;
        *mode.settings_mut() = settings;
        Ok(ep)
    }
}

/// A comma-separated ALPN list (`h2,http/1.1`), as the byte strings TLS sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlpnList(Vec<Vec<u8>>);

/// The most protocols an ALPN list takes; TLS caps the whole extension at 64 KiB anyway.
const MAX_ALPN_PROTOCOLS: usize = 32;

fn parse_alpn(s: &str) -> Result<AlpnList, String> {
    let protocols: Vec<Vec<u8>> = s.split(',').map(|p| p.trim().as_bytes().to_vec()).collect();
    if protocols.iter().any(|p| p.is_empty()) {
        return Err(format!("{s:?}: an empty protocol name (use h2,http/1.1)"));
    }
    if let Some(p) = protocols.iter().find(|p| p.len() > 255) {
        return Err(format!(
            "{:?}...: a protocol name is at most 255 bytes",
            String::from_utf8_lossy(&p[..16])
        ));
    }
    if protocols.len() > MAX_ALPN_PROTOCOLS {
        return Err(format!("at most {MAX_ALPN_PROTOCOLS} protocols"));
    }
    Ok(AlpnList(protocols))
}

#[derive(Debug, clap::Args)]
struct ConnArgs {
    /// Wait this long before connecting (fractions allowed: 0.5).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    delay: Option<Duration>,
    /// Give up connecting after this long (default 60; fractions allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_positive_secs)]
    connect_timeout: Option<Duration>,
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    ipv6: bool,
    /// End the session, with exit status 1, when no byte has moved either way for this long
    /// (fractions allowed; default: no limit).
    #[arg(long, value_name = "SECS", value_parser = parse_positive_secs)]
    idle_timeout: Option<Duration>,
    /// At the end of input, keep the write side open until the server closes (no FIN, no
    /// close_notify): for request/response servers (SMTP, IMAP) that hang up on a half-close
    /// before answering. The default with --starttls.
    #[arg(long, overrides_with = "shutdown")]
    no_shutdown: bool,
    /// At the end of input, shut the write side (FIN; TLS close_notify first) and wait for the
    /// server to close. The default, except with --starttls.
    #[arg(long, overrides_with = "no_shutdown")]
    shutdown: bool,
    /// Send each LF of the input as CRLF (a CRLF already there stays as it is), like nc -C and
    /// s_client -crlf: for line protocols such as SMTP.
    #[arg(long)]
    crlf: bool,
    #[command(flatten)]
    proxy: ProxyArgs,
}

// `--proxy`, flattened into [`ConnArgs`] (`ProxyArgs::default()`: none).
#[derive(Debug, Default, clap::Args)]
struct ProxyArgs {
    /// Connect through this proxy: http://[USER:PASS@]HOST[:PORT] or
    /// socks5://[USER:PASS@]HOST[:PORT].
    ///
    /// http:// speaks HTTP CONNECT (port 3128 by default); socks5:// speaks SOCKS5 (socks5h://
    /// is the same; port 1080 by default). The proxy resolves HOST. USER and PASS may be %-escaped; the password is never
    /// printed. TLS (--tls, --starttls) starts after the tunnel is open and verifies HOST (or
    /// --servername), not the proxy. -4/-6, --delay and --connect-timeout apply to the proxy;
    /// the tunnel must also open within --connect-timeout.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
}

impl ProxyArgs {
    /// The proxy, parsed here rather than by clap, whose error would quote the password.
    fn proxy(&self) -> Result<Option<Proxy>, UsageError> {
        self.proxy
            .as_deref()
            .map(|url| url.parse::<Proxy>().map_err(|e| UsageError(e.to_string())))
            .transpose()
    }
}

/// A protocol `--starttls` knows how to speak up to the switch (openssl s_client's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StartTlsProto {
    /// SMTP: EHLO, STARTTLS, 220.
    Smtp,
    /// IMAP: a1 STARTTLS, a1 OK.
    Imap,
    /// POP3: STLS, +OK.
    Pop3,
    /// LMTP: LHLO, STARTTLS, 220.
    Lmtp,
    /// FTP: AUTH TLS, 234.
    Ftp,
    /// XMPP client to server: stream to --xmpphost, <starttls/>, <proceed/>.
    Xmpp,
    /// XMPP server to server: as xmpp, in the jabber:server namespace.
    XmppServer,
    /// IRC: STARTTLS, 670.
    Irc,
    /// PostgreSQL: SSLRequest, S.
    Postgres,
    /// MySQL: the server's handshake must offer SSL; SSLRequest, then TLS at once.
    Mysql,
    /// NNTP: CAPABILITIES, STARTTLS, 382.
    Nntp,
    /// ManageSieve: capabilities up to OK, STARTTLS, OK.
    Sieve,
    /// LDAP: the StartTLS ExtendedRequest, result code 0.
    Ldap,
}

/// A `--starttls` protocol with what it needs to be spoken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartTlsDialogue {
    /// The protocol.
    pub(crate) proto: StartTlsProto,
    /// The domain an XMPP stream is opened to (`--xmpphost`, default the host); unused by
    /// the other protocols.
    pub(crate) xmpphost: String,
}

impl StartTlsDialogue {
    /// `proto`, with `host` as the XMPP domain.
    pub(crate) fn new(proto: StartTlsProto, host: &str) -> Self {
        StartTlsDialogue {
            proto,
            xmpphost: host.to_string(),
        }
    }
}

/// A protocol whose server side can answer STARTTLS (`serve --starttls`, `listen --starttls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ServerStartTlsProto {
    /// SMTP: 220 greeting, EHLO, STARTTLS, 220.
    Smtp,
    /// IMAP: * OK greeting, a1 STARTTLS, a1 OK.
    Imap,
    /// POP3: +OK greeting, STLS, +OK.
    Pop3,
}

/// What every command gets: validated settings, nothing left to check.
pub(crate) struct Config {
    /// How to report.
    pub(crate) output: Output,
    /// What to do.
    pub(crate) mode: Mode,
}

/// Reporting options shared by every command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    pub(crate) verbose: bool,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
}

pub(crate) enum Mode {
    Connect(Endpoint),
    Send(SendConfig),
    Serve(ServeConfig),
    Listen(ListenConfig),
    Forward(ForwardConfig),
    Demo,
    /// Print a completion script.
    Completions(clap_complete::Shell),
    /// Print the manual page.
    Man,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) family: Family,
    pub(crate) delay: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: Option<TlsMode>,
    /// End the session after this long without traffic either way.
    pub(crate) idle_timeout: Option<Duration>,
    /// At the end of input, keep the write side open until the server closes.
    pub(crate) keep_open: bool,
    /// Send LF as CRLF.
    pub(crate) crlf: bool,
    /// Print the server's certificate chain and the TLS details (--show-cert).
    pub(crate) show_cert: bool,
    /// Connect to this Unix socket instead of host and port.
    pub(crate) unix: Option<PathBuf>,
    /// Connect through this proxy.
    pub(crate) proxy: Option<Proxy>,
}

/// When to switch to TLS, and with which settings.
#[derive(Debug, Clone)]
pub(crate) enum TlsMode {
    /// As soon as connected.
    Immediate(TlsSettings),
    /// After the protocol's STARTTLS dialogue, which the server must finish within the
    /// duration (counted from the moment the connection is up).
    StartTls(StartTlsDialogue, TlsSettings, Duration),
}

impl TlsMode {
    pub(crate) fn settings(&self) -> &TlsSettings {
        match self {
            TlsMode::Immediate(s) | TlsMode::StartTls(_, s, _) => s,
        }
    }

    fn settings_mut(&mut self) -> &mut TlsSettings {
        match self {
            TlsMode::Immediate(s) | TlsMode::StartTls(_, s, _) => s,
        }
    }
}

/// What `send` is told to send.
pub(crate) struct SendConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) source: Source,
    pub(crate) rate: Option<u64>,
    pub(crate) chunk_size: Option<usize>,
}

/// What `send` reads.
pub(crate) enum Source {
    /// A file, opened once (a FIFO must not be opened twice), with its size if it is a regular
    /// file that has one (a pipe, a FIFO or a /proc file has none worth checking against).
    File {
        path: PathBuf,
        file: std::fs::File,
        size: Option<u64>,
    },
    /// Standard input.
    Stdin,
}

/// Where a listening command listens.
#[derive(Debug, Clone)]
pub(crate) enum ListenOn {
    /// A TCP address (port 0: a free one).
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// What `listen` does.
pub(crate) struct ListenConfig {
    pub(crate) on: ListenOn,
    pub(crate) tls: Option<ServerTls>,
    /// Switched by this protocol's STARTTLS (with `tls`), or TLS from the first byte.
    pub(crate) starttls: Option<ServerStartTlsProto>,
    pub(crate) idle_timeout: Option<Duration>,
    /// At the end of input, keep the write side open until the peer closes.
    pub(crate) keep_open: bool,
    pub(crate) crlf: bool,
}

/// What `forward` does.
pub(crate) struct ForwardConfig {
    pub(crate) bind: SocketAddr,
    /// TLS towards clients (termination).
    pub(crate) server_tls: Option<ServerTls>,
    /// The target, and TLS towards it (origination).
    pub(crate) target: Endpoint,
    pub(crate) max_connections: usize,
    /// Worker threads (`--threads`, at least 1).
    pub(crate) threads: usize,
}

/// What `serve` does.
pub(crate) struct ServeConfig {
    pub(crate) on: ListenOn,
    pub(crate) discard: bool,
    pub(crate) tls: Option<ServeTls>,
    /// How long a connection may go without traffic (None: for ever); also the limit on the
    /// plaintext phase of a STARTTLS session when shorter than the default one.
    pub(crate) idle_timeout: Option<Duration>,
}

/// `serve`'s idle timeout when `--idle-timeout` is not given.
pub(crate) const DEFAULT_SERVE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) struct ServeTls {
    pub(crate) identity: ServerTls,
    /// Switched by this protocol's STARTTLS, or TLS from the first byte.
    pub(crate) starttls: Option<ServerStartTlsProto>,
}

/// Arguments that parse but do not make sense: exit status 2, like clap's own errors.
#[derive(Debug)]
pub(crate) struct UsageError(String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Command {
    /// The reporting flags given after the command's name.
    fn output(&self) -> OutputArgs {
        match self {
            Command::Connect { output, .. }
            | Command::Send { output, .. }
            | Command::Serve { output, .. }
            | Command::Listen { output, .. }
            | Command::Forward { output, .. }
            | Command::Demo { output }
            | Command::Completions { output, .. }
            | Command::Man { output } => *output,
        }
    }
}

impl Args {
    /// Checks everything that can be checked before running: files readable, TLS settings
    /// buildable, combinations meaningful.
    pub(crate) fn validate(self) -> Result<Config, UsageError> {
        let flags = match &self.command {
            Some(c) => self.output.or(c.output()),
            None => self.output,
        };
        let output = Output {
            verbose: flags.verbose,
            json: flags.json_events,
            quiet: flags.quiet,
        };
        let mode = match self.command {
            None | Some(Command::Demo { .. }) => Mode::Demo,
            Some(Command::Completions { shell, .. }) => Mode::Completions(shell),
            Some(Command::Man { .. }) => Mode::Man,
            Some(Command::Connect {
                target,
                tls,
                client_id,
                conn,
                ..
            }) => Mode::Connect(client_id.apply(match target {
                ConnectTargetArgs {
                    unix: Some(path), ..
                } => unix_endpoint(path, tls, conn)?,
                ConnectTargetArgs {
                    host: Some(host),
                    port: Some(port),
                    ..
                } => endpoint(TargetArgs { host, port }, tls, conn)?,
                // clap requires HOST and PORT without --unix.
                _ => return Err(UsageError("give HOST PORT or --unix PATH".into())),
            })?),
            Some(Command::Listen {
                port,
                unix,
                bind,
                server_tls,
                starttls,
                idle_timeout,
                no_shutdown,
                shutdown,
                crlf,
                ..
            }) => Mode::Listen(ListenConfig {
                on: listen_on(bind, port, unix)?,
                tls: server_tls.identity()?,
                starttls,
                idle_timeout,
                // As on connect: a STARTTLS session is request/response, kept open unless told.
                keep_open: no_shutdown || (starttls.is_some() && !shutdown),
                crlf,
            }),
            Some(Command::Forward {
                listen_port,
                target,
                bind,
                server_tls,
                tls,
                target_id,
                proxy,
                max_connections,
                threads,
                idle_timeout,
                connect_timeout,
                ipv4,
                ipv6,
                ..
            }) => {
                let conn = ConnArgs {
                    delay: None,
                    connect_timeout,
                    ipv4,
                    ipv6,
                    idle_timeout,
                    // The relay half-closes each way (the target's TcpClient is set to).
                    no_shutdown: false,
                    shutdown: true,
                    crlf: false,
                    proxy,
                };
                Mode::Forward(ForwardConfig {
                    bind: SocketAddr::new(bind, listen_port),
                    server_tls: server_tls.identity()?,
                    target: ClientIdArgs::from(target_id).apply_as(
                        endpoint(target, tls, conn)?,
                        "--target-cert, --target-key and --target-alpn",
                    )?,
                    max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
                    threads: usize::from(threads),
                })
            }
            Some(Command::Send {
                target,
                file,
                rate,
                chunk_size,
                tls,
                client_id,
                conn,
                ..
            }) => {
                let source = if file.as_os_str() == "-" {
                    Source::Stdin
                } else {
                    open_source(file)?
                };
                Mode::Send(SendConfig {
                    endpoint: client_id.apply(endpoint(target, tls, conn)?)?,
                    source,
                    rate,
                    chunk_size,
                })
            }
            Some(Command::Serve {
                port,
                unix,
                bind,
                echo: _,
                discard,
                server_tls,
                starttls,
                idle_timeout,
                ..
            }) => {
                let tls = server_tls
                    .identity()?
                    .map(|identity| ServeTls { identity, starttls });
                Mode::Serve(ServeConfig {
                    on: listen_on(bind, port, unix)?,
                    discard,
                    tls,
                    idle_timeout: match idle_timeout {
                        None => Some(DEFAULT_SERVE_IDLE_TIMEOUT),
                        Some(Duration::ZERO) => None,
                        Some(d) => Some(d),
                    },
                })
            }
        };
        Ok(Config { output, mode })
    }
}

/// Opens the file to send, once: a FIFO opened twice would lose its writer's data.
fn open_source(path: PathBuf) -> Result<Source, UsageError> {
    let cannot = |e: std::io::Error| UsageError(format!("cannot read {}: {e}", path.display()));
    if std::fs::metadata(&path).map_err(cannot)?.is_dir() {
        return Err(UsageError(format!("{} is a directory", path.display())));
    }
    let file = std::fs::File::open(&path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    // A pipe or FIFO has no size, and a regular file of size 0 may be a /proc or /sys file
    // whose content is made as it is read.
    let size = (meta.is_file() && meta.len() > 0).then_some(meta.len());
    Ok(Source::File { path, file, size })
}

fn endpoint(target: TargetArgs, tls: TlsArgs, conn: ConnArgs) -> Result<Endpoint, UsageError> {
    let family = match (conn.ipv4, conn.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    };
    if target.host.is_empty() {
        return Err(UsageError("the host is empty".into()));
    }
    let starttls = tls.starttls;
    let wants_tls = tls.tls || starttls.is_some();
    if tls.xmpphost.is_some()
        && !matches!(
            starttls,
            Some(StartTlsProto::Xmpp | StartTlsProto::XmppServer)
        )
    {
        return Err(UsageError(
            "--xmpphost needs --starttls xmpp or xmpp-server".into(),
        ));
    }
    if !wants_tls
        && (tls.ca.is_some() || tls.system_roots || tls.servername.is_some() || tls.show_cert)
    {
        return Err(UsageError(
            "--ca, --system-roots, --servername and --show-cert need --tls or --starttls".into(),
        ));
    }
    let tls_mode = if wants_tls {
        let mut settings = TlsSettings::new();
        if let Some(ca) = tls.ca {
            settings = settings.with_trust(Trust::PemFile(ca));
        } else if tls.system_roots {
            settings = settings.with_trust(Trust::System);
        }
        if let Some(name) = tls.servername {
            settings = settings.with_server_name(name);
        }
        // Built once here so a bad CA file or server name is a usage error, not a failure
        // after connecting.
        settings
            .client_config()
            .map_err(|e| UsageError(e.to_string()))?;
        settings
            .server_name_for(&target.host)
            .map_err(|e| UsageError(e.to_string()))?;
        Some(match starttls {
            Some(proto) => TlsMode::StartTls(
                starttls_dialogue(proto, tls.xmpphost, &target.host)?,
                settings,
                tls.starttls_timeout.unwrap_or(DEFAULT_STARTTLS_TIMEOUT),
            ),
            None => TlsMode::Immediate(settings),
        })
    } else {
        None
    };
    Ok(Endpoint {
        host: target.host,
        port: target.port,
        family,
        delay: conn.delay.unwrap_or(Duration::ZERO),
        connect_timeout: conn.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        tls: tls_mode,
        idle_timeout: conn.idle_timeout,
        // Request/response servers hang up on a half-close before answering; a STARTTLS
        // session is one, so it keeps the write side open unless told otherwise.
        keep_open: conn.no_shutdown || (starttls.is_some() && !conn.shutdown),
        crlf: conn.crlf,
        show_cert: tls.show_cert,
        unix: None,
        proxy: conn.proxy.proxy()?,
    })
}

/// `connect --unix PATH`: no TLS over a Unix socket (a usage error), no address family.
fn unix_endpoint(path: PathBuf, tls: TlsArgs, conn: ConnArgs) -> Result<Endpoint, UsageError> {
    if tls.tls || tls.starttls.is_some() || tls.ca.is_some() || tls.system_roots {
        return Err(UsageError(
            "TLS over --unix is not supported: a Unix socket is local; drop --tls/--starttls"
                .into(),
        ));
    }
    if conn.ipv4 || conn.ipv6 {
        return Err(UsageError("-4 and -6 do not apply to --unix".into()));
    }
    if conn.proxy.proxy.is_some() {
        return Err(UsageError("--proxy does not apply to --unix".into()));
    }
    let target = TargetArgs {
        host: path.display().to_string(),
        port: 1,
    };
    let mut ep = endpoint(target, tls, conn)?;
    ep.unix = Some(path);
    Ok(ep)
}

/// Where `listen` or `serve` listens: `--unix PATH`, or BIND and PORT (clap requires one).
fn listen_on(
    bind: IpAddr,
    port: Option<u16>,
    unix: Option<PathBuf>,
) -> Result<ListenOn, UsageError> {
    match (unix, port) {
        (Some(path), _) => Ok(ListenOn::Unix(path)),
        (None, Some(port)) => Ok(ListenOn::Tcp(SocketAddr::new(bind, port))),
        (None, None) => Err(UsageError("give PORT or --unix PATH".into())),
    }
}

/// `proto` with its XMPP domain: `xmpphost`, or the host connected to (as s_client).
fn starttls_dialogue(
    proto: StartTlsProto,
    xmpphost: Option<String>,
    host: &str,
) -> Result<StartTlsDialogue, UsageError> {
    let domain = xmpphost.unwrap_or_else(|| host.to_string());
    if domain.is_empty() || domain.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UsageError(format!(
            "--xmpphost {domain:?} is not a domain name"
        )));
    }
    Ok(StartTlsDialogue::new(proto, &domain))
}

fn parse_port(s: &str) -> Result<u16, String> {
    match parse_port_or_zero(s)? {
        0 => Err("port 0 cannot be connected to; use 1-65535".into()),
        p => Ok(p),
    }
}

fn parse_port_or_zero(s: &str) -> Result<u16, String> {
    let n: u64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a port number"))?;
    u16::try_from(n).map_err(|_| format!("port {n} is out of range (1-65535)"))
}

/// Seconds, fractions allowed: `2`, `0.5`; at most [`MAX_SECS`], so that adding one to a clock
/// can never overflow.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs > MAX_SECS as f64 {
        return Err(format!(
            "{s:?} is too long: at most {MAX_SECS} seconds (about 31 years)"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a duration in seconds"))
}

/// A byte count with an optional SI (k, M, G = 10³, 10⁶, 10⁹) or binary (Ki, Mi, Gi) suffix,
/// optionally followed by `B` and, for rates, `/s`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let mult = match &t[i..] {
                "k" | "K" => 1_000,
                "M" => 1_000_000,
                "G" => 1_000_000_000,
                "Ki" | "ki" => 1 << 10,
                "Mi" => 1 << 20,
                "Gi" => 1 << 30,
                other => {
                    return Err(format!(
                        "unknown suffix {other:?} (use k, M, G, Ki, Mi, Gi)"
                    ))
                }
            };
            (&t[..i], mult)
        }
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of bytes"))?;
    let total = n * mult as f64;
    if !total.is_finite() || total < 1.0 || total > u64::MAX as f64 {
        return Err(format!("{s:?} must be at least 1 byte"));
    }
    Ok(total as u64)
}

fn parse_rate(s: &str) -> Result<u64, String> {
    parse_bytes(s)
}

/// Seconds, more than zero: a timeout of nothing would end every session at once.
fn parse_positive_secs(s: &str) -> Result<Duration, String> {
    match parse_secs(s)? {
        Duration::ZERO => Err(format!("{s:?} must be more than 0 seconds")),
        d => Ok(d),
    }
}

fn parse_chunk_size(s: &str) -> Result<usize, String> {
    let n = parse_bytes(s)?;
    if n > MAX_CHUNK_SIZE as u64 {
        return Err(format!(
            "{s:?} is too large: a chunk is at most {MAX_CHUNK_SIZE} bytes (4 MiB)"
        ));
    }
    usize::try_from(n).map_err(|_| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each command's description and options as `--help` shows them.
    fn descriptions(cmd: &clap::Command) -> Vec<(String, Option<String>, Option<String>)> {
        // `help` is added by building.
        cmd.get_subcommands()
            .filter(|s| s.get_name() != "help")
            .map(|s| {
                (
                    s.get_name().to_owned(),
                    s.get_about().map(ToString::to_string),
                    s.get_long_about().map(ToString::to_string),
                )
            })
            .collect()
    }

    #[test]
    fn a_deferred_command_keeps_its_own_description() {
        use clap::CommandFactory as _;
        let mut cmd = Args::command();
        // Before building, each command has only what its variant says.
        let own = descriptions(&cmd);
        cmd.build();
        assert_eq!(descriptions(&cmd), own);
        assert!(own.iter().all(|(_, about, _)| about.is_some()), "{own:?}");
        // And parsing builds the command that runs, with its options.
        let args = Args::try_parse_from(["kamaelia", "send", "-q", "h", "1", "f"]).unwrap();
        assert!(args.command.is_some_and(|c| c.output().quiet));
    }

    #[test]
    fn the_reporting_flags_are_taken_before_and_after_the_command() {
        let output = |argv: &[&str]| {
            let args = Args::try_parse_from(argv).unwrap();
            let o = args.validate().unwrap().output;
            (o.verbose, o.json, o.quiet)
        };
        let connect = ["connect", "127.0.0.1", "7"];
        let with = |before: &[&'static str], after: &[&'static str]| {
            let mut a = vec!["kamaelia"];
            a.extend_from_slice(before);
            a.push(connect[0]);
            a.extend_from_slice(after);
            a.extend_from_slice(&connect[1..]);
            output(&a)
        };
        assert_eq!(with(&[], &[]), (false, false, false));
        assert_eq!(with(&["-q"], &[]), (false, false, true));
        assert_eq!(with(&[], &["-q"]), (false, false, true));
        assert_eq!(with(&["-v"], &["--json-events"]), (true, true, false));
        assert_eq!(with(&["-q"], &["-q"]), (false, false, true));
        assert_eq!(output(&["kamaelia", "-q"]), (false, false, true));
        assert_eq!(output(&["kamaelia", "demo", "-v"]), (true, false, false));
        assert_eq!(
            output(&["kamaelia", "man", "--json-events"]),
            (false, true, false)
        );
    }

    #[test]
    fn byte_counts_take_si_and_binary_suffixes() {
        assert_eq!(parse_bytes("200k"), Ok(200_000));
        assert_eq!(parse_bytes("1.5M"), Ok(1_500_000));
        assert_eq!(parse_bytes("2G"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("64Ki"), Ok(65_536));
        assert_eq!(parse_bytes("100kB/s"), Ok(100_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("3x").is_err());
        assert!(parse_bytes("fast").is_err());
    }

    #[test]
    fn ports_and_seconds_are_checked() {
        assert_eq!(parse_port("443"), Ok(443));
        assert!(parse_port("0").is_err());
        assert!(parse_port("65536").unwrap_err().contains("out of range"));
        assert_eq!(parse_port_or_zero("0"), Ok(0));
        assert_eq!(parse_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn alpn_lists_are_checked() {
        let ok = |s: &str| parse_alpn(s).map(|l| l.0);
        assert_eq!(ok("h2"), Ok(vec![b"h2".to_vec()]));
        assert_eq!(
            ok("h2, http/1.1"),
            Ok(vec![b"h2".to_vec(), b"http/1.1".to_vec()])
        );
        for bad in ["", "h2,", ",h2", "h2,,http/1.1"] {
            assert!(parse_alpn(bad).unwrap_err().contains("empty"), "{bad:?}");
        }
        assert!(parse_alpn(&"x".repeat(256)).unwrap_err().contains("255"));
        assert!(parse_alpn(&vec!["p"; 33].join(","))
            .unwrap_err()
            .contains("at most 32"));
    }

    #[test]
    fn limits_are_usage_errors() {
        assert!(parse_secs("1e19").unwrap_err().contains("too long"));
        assert!(parse_secs("inf").unwrap_err().contains("too long"));
        assert!(parse_secs("NaN").is_err());
        assert_eq!(parse_secs("1e9"), Ok(Duration::from_secs(MAX_SECS)));
        assert!(parse_positive_secs("0")
            .unwrap_err()
            .contains("more than 0"));
        assert!(parse_positive_secs("1e-300").is_err());
        assert_eq!(parse_positive_secs("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_chunk_size("100G").unwrap_err().contains("too large"));
        assert_eq!(parse_chunk_size("4Mi"), Ok(MAX_CHUNK_SIZE));
    }

    proptest::proptest! {
        /// Any text gives a value within the documented bounds or an error; never a panic.
        #[test]
        fn flag_parsers_take_any_text(s in "\\PC{0,24}|[0-9.eE+-]{1,24}[kKMGib]{0,2}(B|/s|B/s)?") {
            if let Ok(n) = parse_bytes(&s) {
                proptest::prop_assert!(n >= 1);
            }
            if let Ok(n) = parse_rate(&s) {
                proptest::prop_assert!(n >= 1);
            }
            if let Ok(n) = parse_chunk_size(&s) {
                proptest::prop_assert!((1..=MAX_CHUNK_SIZE).contains(&n));
            }
            if let Ok(d) = parse_positive_secs(&s) {
                proptest::prop_assert!(d > Duration::ZERO);
            }
            if let Ok(d) = parse_secs(&s) {
                proptest::prop_assert!(d <= Duration::from_secs(MAX_SECS));
                // A deadline this far ahead must not overflow the clock.
                proptest::prop_assert!(std::time::Instant::now().checked_add(d).is_some());
            }
            if let Ok(p) = parse_port(&s) {
                proptest::prop_assert!(p >= 1);
            }
            let _ = parse_port_or_zero(&s);
            if let Ok(list) = parse_alpn(&s) {
                proptest::prop_assert!(list.0.iter().all(|p| (1..=255).contains(&p.len())));
            }
        }

        /// Every number of seconds in range round-trips; every number out of range is refused.
        #[test]
        fn seconds_in_range_are_taken_and_beyond_refused(x in 0.0f64..2e9) {
            let got = parse_secs(&x.to_string());
            if x <= MAX_SECS as f64 {
                proptest::prop_assert!(got.is_ok());
            } else {
                proptest::prop_assert!(got.is_err());
            }
        }

        /// Every port number in range is taken as itself.
        #[test]
        fn ports_round_trip(p in 0u32..100_000) {
            match parse_port_or_zero(&p.to_string()) {
                Ok(q) => proptest::prop_assert_eq!(u32::from(q), p),
                Err(_) => proptest::prop_assert!(p > 65_535),
            }
        }
    }
}
