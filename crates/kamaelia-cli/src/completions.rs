//! Packaging: `kamaelia completions bash|zsh|fish` (clap_complete) and `kamaelia man`
//! (clap_mangen), both on stdout, both made from the same clap definition as `--help`; and the
//! EXAMPLES sections that `--help` shows after each command's options.

use std::io::{self, Write};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::flags::Args;

/// Writes the completion script for `shell` on stdout.
pub(crate) fn completions(shell: Shell) -> io::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "kamaelia", &mut out);
    write_stdout(&out)
}

/// Writes the manual page (roff, section 1) on stdout: the program, then each command with
/// its options and examples.
pub(crate) fn man() -> io::Result<()> {
    let mut cmd = Args::command();
    cmd.build();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("kamaelia {}", sub.get_name());
        let sub = sub.clone().bin_name(name.clone());
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        let page = clap_mangen::Man::new(sub);
        page.render_synopsis_section(&mut out)?;
        page.render_description_section(&mut out)?;
        page.render_options_section(&mut out)?;
        page.render_extra_section(&mut out)?;
    }
    write_stdout(&out)
}

/// Writes `bytes` on stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

/// The EXAMPLES after the top-level `--help`.
pub(crate) const EXAMPLES: &str = "\
EXAMPLES:
  kamaelia                                     run the offline demo
  kamaelia connect example.com 80              stdin to the server, the server to stdout
  kamaelia send 127.0.0.1 9000 backup.tar      upload a file, then wait for the server to close
  kamaelia serve 9000                          an echo server on 127.0.0.1:9000
  kamaelia connect --help                      each command's options and examples";

/// The EXAMPLES after `connect --help`.
pub(crate) const CONNECT_EXAMPLES: &str = "\
EXAMPLES:
  kamaelia connect example.com 80
      like nc example.com 80
  printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | kamaelia connect --tls example.com 443
      one request over TLS, verified against the built-in Mozilla roots
  kamaelia connect --tls --ca ca.pem --servername db.internal 10.0.0.5 5433
      trust only ca.pem, verify the name db.internal
  kamaelia connect --starttls smtp --crlf mail.example.com 25
      the SMTP dialogue up to STARTTLS, then type SMTP over TLS
  kamaelia connect --proxy socks5://127.0.0.1:9050 example.org 80
      through a SOCKS5 proxy, which resolves example.org
  kamaelia connect --proxy http://alice:secret@proxy:3128 --tls example.com 443
      HTTP CONNECT with basic auth; TLS verifies example.com, not the proxy";

/// The EXAMPLES after `send --help`.
pub(crate) const SEND_EXAMPLES: &str = "\
EXAMPLES:
  kamaelia send 127.0.0.1 9000 backup.tar
      with a receiver such as: nc -l 9000 > backup.tar
  tar c photos | kamaelia send host.lan 9000 -
      standard input
  kamaelia send --rate 1M --tls --ca ca.pem host.lan 9443 big.iso
      at most 1 MB/s, over TLS
  kamaelia send --proxy socks5://proxy:1080 host.example 9000 file
      through a SOCKS5 proxy";

/// The EXAMPLES after `serve --help`.
pub(crate) const SERVE_EXAMPLES: &str = "\
EXAMPLES:
  kamaelia serve 9000
      echo on 127.0.0.1:9000
  kamaelia serve --discard 0
      discard, on a free port (printed on stdout)
  kamaelia serve --cert cert.pem --key key.pem 8443
      echo over TLS
  kamaelia serve --cert cert.pem --key key.pem --starttls imap 1143
      IMAP's STARTTLS, then echo over TLS";

/// The EXAMPLES after `demo --help`.
pub(crate) const DEMO_EXAMPLES: &str = "\
EXAMPLES:
  kamaelia demo
      the two examples of Kamaelia's TCPClient page against a local server
  kamaelia --json-events demo
      the same, every message on the signal boxes as a JSON line";

/// The EXAMPLES after `completions --help`.
pub(crate) const COMPLETIONS_EXAMPLES: &str = "\
EXAMPLES:
  kamaelia completions bash > ~/.local/share/bash-completion/completions/kamaelia
  kamaelia completions zsh > ~/.zfunc/_kamaelia
  kamaelia completions fish > ~/.config/fish/completions/kamaelia.fish";

/// The EXAMPLES after `man --help`.
pub(crate) const MAN_EXAMPLES: &str = "\
EXAMPLES:
  kamaelia man | man -l -
  kamaelia man > /usr/local/share/man/man1/kamaelia.1";
