//! The dialogues without sockets: tables of cases for each protocol and side, the line
//! splitters' bounds and linearity, and property tests over arbitrary input. (The box tables
//! are checked with every other component's, in the program's `box_docs` test.)

use bytes::Bytes;
use proptest::prelude::*;

use super::client::{
    ClientDialogue, Framed, Lines as ReplyLines, Said, Step, Talk, MAX_REPLY_LINE, MAX_REPLY_LINES,
};
use super::error::StartTlsError;
use super::imap::{ImapClient, ImapServer};
use super::pop3::{Pop3Client, Pop3Server};
use super::server::{Lines, Out, ServerDialogue, MAX_COMMAND_LINE};
use super::smtp::{SmtpClient, SmtpCommand, SmtpServer};
use crate::internet::TlsError;

// ---- client dialogues ----

/// What a step is, for tables: `R` read, `S(bytes)` send, `W` switch, `F(what)` fail.
#[derive(Debug, PartialEq, Eq)]
enum S {
    R,
    Sent(Bytes),
    W,
    SentW(Bytes),
    F(&'static str),
}

/// `S::Tx` of static bytes, for tables.
#[allow(non_snake_case)]
fn Tx(b: &'static [u8]) -> S {
    S::Sent(Bytes::from_static(b))
}

fn kind(step: Step) -> S {
    match step {
        Step::Read => S::R,
        Step::Send(b) => S::Sent(b),
        Step::SendThenSwitch(b) => S::SentW(b),
        Step::Switch => S::W,
        Step::Fail(StartTlsError::NotOffered) => S::F("not offered"),
        Step::Fail(StartTlsError::Unexpected { .. }) => S::F("unexpected"),
        Step::Fail(StartTlsError::Bye { .. }) => S::F("bye"),
        Step::Fail(StartTlsError::Refused { .. }) => S::F("refused"),
        Step::Fail(StartTlsError::Malformed { .. }) => S::F("malformed"),
        Step::Fail(StartTlsError::PacketTooLong { .. }) => S::F("too long"),
        Step::Fail(StartTlsError::LineTooLong) => S::F("line too long"),
        Step::Fail(StartTlsError::TooMuchData { .. }) => S::F("too much"),
        Step::Fail(e) => panic!("unexpected failure {e}"),
    }
}

fn steps<D: ClientDialogue>(mut d: D, lines: &[&str]) -> Vec<S> {
    let mut out = Vec::new();
    for l in lines {
        let s = kind(d.on_line(l));
        let stop = matches!(s, S::F(_) | S::W);
        out.push(s);
        if stop {
            break;
        }
    }
    out
}

#[test]
fn client_dialogues_follow_their_protocol() {
    use S::*;
    let smtp: &[(&[&str], &[S])] = &[
        (
            &[
                "220-mail.test ESMTP",
                "220 ready",
                "250-mail.test",
                "250-STARTTLS",
                "250 8BITMIME",
                "220 go ahead",
            ],
            &[R, Tx(b"EHLO kamaelia\r\n"), R, R, Tx(b"STARTTLS\r\n"), W],
        ),
        (
            &["220", "250 starttls", "220"],
            &[Tx(b"EHLO kamaelia\r\n"), Tx(b"STARTTLS\r\n"), W],
        ),
        (
            &["220 hi", "250 mail.test"],
            &[Tx(b"EHLO kamaelia\r\n"), F("not offered")],
        ),
        (
            &["220 hi", "250 STARTTLS", "454 TLS not available"],
            &[Tx(b"EHLO kamaelia\r\n"), Tx(b"STARTTLS\r\n"), F("refused")],
        ),
        (
            &["220 hi", "250 STARTTLS", "354 what"],
            &[
                Tx(b"EHLO kamaelia\r\n"),
                Tx(b"STARTTLS\r\n"),
                F("unexpected"),
            ],
        ),
        (&["554 go away"], &[F("unexpected")]),
        (
            &["220 hi", "500 what"],
            &[Tx(b"EHLO kamaelia\r\n"), F("unexpected")],
        ),
        (&["2200 hi"], &[F("unexpected")]),
    ];
    for (lines, want) in smtp {
        assert_eq!(steps(SmtpClient::Greeting, lines), *want, "SMTP {lines:?}");
    }
    let imap: &[(&[&str], &[S])] = &[
        (
            &[
                "* OK IMAP4rev1 ready",
                "* CAPABILITY IMAP4rev1",
                "a1 OK begin TLS",
            ],
            &[Tx(b"a1 STARTTLS\r\n"), R, W],
        ),
        (
            &["* OK ready", "* BYE shutting down"],
            &[Tx(b"a1 STARTTLS\r\n"), F("bye")],
        ),
        (&["* BYE too busy"], &[F("bye")]),
        (
            &["* OK", "a1 NO not now"],
            &[Tx(b"a1 STARTTLS\r\n"), F("unexpected")],
        ),
        (&["+OK pop3"], &[F("unexpected")]),
    ];
    for (lines, want) in imap {
        assert_eq!(steps(ImapClient::Greeting, lines), *want, "IMAP {lines:?}");
    }
    let pop3: &[(&[&str], &[S])] = &[
        (&["+OK POP3 ready", "+OK begin TLS"], &[Tx(b"STLS\r\n"), W]),
        (&["+OK", "-ERR no"], &[Tx(b"STLS\r\n"), F("unexpected")]),
        (&["-ERR busy"], &[F("unexpected")]),
    ];
    for (lines, want) in pop3 {
        assert_eq!(steps(Pop3Client::Greeting, lines), *want, "POP3 {lines:?}");
    }
}

const SMTP_TO_GO_AHEAD: &[u8] = b"220 hi\r\n250-mail.test\r\n250 STARTTLS\r\n220 go ahead\r\n";

fn injected(r: Result<Said, StartTlsError>) -> Option<usize> {
    match r {
        Err(StartTlsError::Tls(TlsError::PlaintextInjection { bytes })) => Some(bytes),
        _ => None,
    }
}

#[test]
fn talk_cuts_lines_anywhere_and_switches_once() {
    let mut t = Talk::lines(SmtpClient::Greeting);
    let mut sent = Vec::new();
    let mut switched = 0;
    for b in SMTP_TO_GO_AHEAD {
        let said = t.feed(&[*b]).unwrap();
        sent.extend(said.send);
        switched += usize::from(said.switch);
    }
    assert_eq!(sent, [&b"EHLO kamaelia\r\n"[..], b"STARTTLS\r\n"]);
    assert_eq!(switched, 1);
}

#[test]
fn bytes_after_the_go_ahead_are_injection_in_the_same_read_or_a_later_one() {
    let mut t = Talk::lines(SmtpClient::Greeting);
    let mut same = SMTP_TO_GO_AHEAD.to_vec();
    same.extend_from_slice(b"250 evil\r\n");
    assert_eq!(injected(t.feed(&same)), Some(10));

    let mut t = Talk::lines(SmtpClient::Greeting);
    assert!(t.feed(SMTP_TO_GO_AHEAD).unwrap().switch);
    // A complete line would once have been read as a second go-ahead (a second makessl); a
    // partial one was dropped without a word.
    assert_eq!(injected(t.feed(b"220 again\r\n")), Some(11));
    assert_eq!(injected(t.feed(b"x")), Some(1));
    // The same for the other protocols.
    let mut t = Talk::lines(Pop3Client::Greeting);
    assert_eq!(injected(t.feed(b"+OK\r\n+OK go\r\nevil")), Some(4));
    let mut t = Talk::lines(ImapClient::Greeting);
    assert_eq!(injected(t.feed(b"* OK\r\na1 OK go\r\n* x\r\n")), Some(5));
}

#[test]
fn endless_continuation_lines_end_the_dialogue() {
    let mut t = Talk::lines(SmtpClient::Greeting);
    t.feed(b"220 hi\r\n").unwrap();
    let chunk = b"250-x\r\n".repeat(8192);
    let mut result = Ok(Said::default());
    for _ in 0..100 {
        result = t.feed(&chunk);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(StartTlsError::TooManyLines)));
    assert!(t.lines <= MAX_REPLY_LINES + 1);
}

#[test]
fn a_reply_line_without_end_is_cut_off_at_the_cap() {
    let mut t = Talk::lines(Pop3Client::Greeting);
    let mut result = Ok(Said::default());
    for _ in 0..(MAX_REPLY_LINE / 1000 + 2) {
        result = t.feed(&[b'+'; 1000]);
        if result.is_err() {
            break;
        }
    }
    assert!(matches!(result, Err(StartTlsError::LineTooLong)));
}

fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"220 hi\r\n".to_vec()),
        Just(b"220-more\r\n".to_vec()),
        Just(b"250-STARTTLS\r\n".to_vec()),
        Just(b"250 STARTTLS\r\n".to_vec()),
        Just(b"250-x\r\n".to_vec()),
        Just(b"* OK ready\r\n".to_vec()),
        Just(b"* CAPABILITY x\r\n".to_vec()),
        Just(b"* BYE\r\n".to_vec()),
        Just(b"a1 OK go\r\n".to_vec()),
        Just(b"+OK\r\n".to_vec()),
        Just(b"-ERR\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(vec![b'x'; 9000]),
        Just(b"234 go\r\n".to_vec()),
        Just(b":irc.test 670 * :go\r\n".to_vec()),
        Just(b"101 caps\r\nSTARTTLS\r\n.\r\n".to_vec()),
        Just(b"382 go\r\n".to_vec()),
        Just(b"\"STARTTLS\"\r\nOK\r\n".to_vec()),
        Just(b"S".to_vec()),
        Just(b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec()),
        Just(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec()),
        Just(super::tests_framed::mysql_greeting(0x0800)),
        Just(super::tests_framed::ldap_response(1, 0, b"")),
        Just(vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
        Just(vec![0xff, 0xff, 0xff, 0x00]),
    ];
    proptest::collection::vec(line, 0..40).prop_map(|v| v.concat())
}

fn any_client() -> impl Strategy<Value = u8> {
    0u8..12
}

fn talk_for(p: u8) -> Talk<Box<dyn Framed>> {
    use super::{ftp::FtpClient, irc::IrcClient, ldap::LdapClient, mysql::MysqlClient};
    use super::{nntp::NntpClient, postgres::PostgresClient, sieve::SieveClient};
    use super::{smtp::LmtpClient, xmpp::XmppClient};
    Talk::new(match p {
        0 => Box::new(ReplyLines::new(SmtpClient::Greeting)) as Box<dyn Framed>,
        1 => Box::new(ReplyLines::new(ImapClient::Greeting)),
        2 => Box::new(ReplyLines::new(Pop3Client::Greeting)),
        3 => Box::new(ReplyLines::new(LmtpClient(SmtpClient::Greeting))),
        4 => Box::new(ReplyLines::new(FtpClient::Greeting)),
        5 => Box::new(ReplyLines::new(IrcClient)),
        6 => Box::new(ReplyLines::new(NntpClient::Greeting)),
        7 => Box::new(ReplyLines::new(SieveClient::Greeting { offered: false })),
        8 => Box::new(PostgresClient),
        9 => Box::new(MysqlClient),
        10 => Box::new(LdapClient),
        _ => Box::new(XmppClient::new("example.test", false)),
    })
}

proptest! {
    /// Whatever the server sends, cut wherever, a client dialogue asks to switch at most once,
    /// or fails with a reason; it never panics, and never holds more than one line (or packet).
    #[test]
    fn any_server_bytes_give_a_result_or_a_clear_error(
        proto in any_client(),
        bytes in client_bytes(),
        cuts in proptest::collection::vec(1usize..5000, 1..20),
    ) {
        let mut t = talk_for(proto);
        let mut at = 0;
        let mut switches = 0;
        let mut sent = 0;
        for n in cuts.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let end = (at + n).min(bytes.len());
            match t.feed(&bytes[at..end]) {
                Ok(said) => {
                    prop_assert!(t.held() <= MAX_REPLY_LINE.max(super::MAX_REPLY_PACKET));
                    sent += said.send.len();
                    switches += usize::from(said.switch);
                }
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    break;
                }
            }
            at = end;
        }
        prop_assert!(switches <= 1);
        prop_assert!(sent <= 2);
        prop_assert!(t.lines <= MAX_REPLY_LINES + 1);
    }
}

// ---- server dialogues ----

/// What a server dialogue did with `chunks`: the bytes it sent, the consumed count of a switch
/// (if any) with its reply, whether it quit, and whether it failed with a line too long.
#[derive(Debug, PartialEq, Eq, Default)]
struct Did {
    sent: Vec<u8>,
    switch: Option<(u64, Bytes)>,
    quit: bool,
    failed: bool,
}

fn serve<D: ServerDialogue>(proto: D, echo: bool, chunks: &[&[u8]]) -> Did {
    let mut d = Lines::new(proto, echo);
    let mut out = Vec::new();
    let mut did = Did::default();
    for c in chunks {
        did.failed = d.feed(c, &mut out).is_err();
        for o in out.drain(..) {
            match o {
                Out::Data(b) => did.sent.extend_from_slice(&b),
                Out::Switch(m) => {
                    did.switch = Some((m.consumed.unwrap_or(0), m.reply.unwrap_or_default()));
                }
                Out::Quit => did.quit = true,
            }
        }
        if did.failed || did.switch.is_some() || did.quit {
            break;
        }
    }
    did
}

#[test]
fn server_dialogues_answer_their_protocol() {
    // (input chunks, echo) -> (sent, switch (consumed, reply), quit)
    type Case = (
        &'static [&'static [u8]],
        bool,
        &'static [u8],
        Option<(u64, &'static [u8])>,
        bool,
    );
    let smtp: &[Case] = &[
        (
            &[
                b"ehlo x\r\nhel",
                b"lo\r\nwor",
                b"ld\nSTARTTLS\r\n",
                b"client hello",
            ],
            true,
            b"250-kamaelia\r\n250 STARTTLS\r\nhello\r\nworld\n",
            Some((31, b"220 Ready to start TLS\r\n")),
            false,
        ),
        (&[b"a\nb\nquit\n"], false, b"221 bye\r\n", None, false),
        (&[b"a\nb\nquit\n"], true, b"a\nb\n221 bye\r\n", None, false),
        (
            &[b"  HELO there  \r\n"],
            true,
            b"250-kamaelia\r\n250 STARTTLS\r\n",
            None,
            false,
        ),
    ];
    for (chunks, echo, sent, switch, _) in smtp {
        let did = serve(SmtpServer, *echo, chunks);
        assert_eq!(did.sent, *sent, "SMTP {chunks:?}");
        assert_eq!(
            did.switch.map(|(n, r)| (n, r.to_vec())),
            switch.map(|(n, r)| (n, r.to_vec()))
        );
    }
    assert!(serve(SmtpServer, true, &[b"QUIT\r\n"]).quit);
    let imap: &[Case] = &[
        (
            &[b"t1 capability\r\nhi\r\nt2 STARTTLS\r\n\x16\x03"],
            true,
            b"* CAPABILITY IMAP4rev1 STARTTLS\r\nt1 OK CAPABILITY completed\r\nhi\r\n",
            Some((32, b"t2 OK Begin TLS negotiation now\r\n")),
            false,
        ),
        (
            &[b"x LOGOUT\r\n"],
            true,
            b"* BYE kamaelia logging out\r\nx OK LOGOUT completed\r\n",
            None,
            true,
        ),
        (&[b"STARTTLS\r\n"], true, b"STARTTLS\r\n", None, false),
    ];
    for (chunks, echo, sent, switch, quit) in imap {
        let did = serve(ImapServer, *echo, chunks);
        assert_eq!(did.sent, *sent, "IMAP {chunks:?}");
        assert_eq!(
            did.switch.map(|(n, r)| (n, r.to_vec())),
            switch.map(|(n, r)| (n, r.to_vec()))
        );
        assert_eq!(did.quit, *quit);
    }
    let pop3: &[Case] = &[
        (
            &[b"capa\r\nSTLS\r\n"],
            true,
            b"+OK\r\nSTLS\r\n.\r\n",
            Some((12, b"+OK Begin TLS negotiation\r\n")),
            false,
        ),
        (&[b"USER x\r\nquit\r\n"], false, b"+OK bye\r\n", None, true),
    ];
    for (chunks, echo, sent, switch, quit) in pop3 {
        let did = serve(Pop3Server, *echo, chunks);
        assert_eq!(did.sent, *sent, "POP3 {chunks:?}");
        assert_eq!(
            did.switch.map(|(n, r)| (n, r.to_vec())),
            switch.map(|(n, r)| (n, r.to_vec()))
        );
        assert_eq!(did.quit, *quit);
    }
}

#[test]
fn what_follows_starttls_is_kept_for_the_handshake() {
    let mut d = Lines::new(SmtpServer, true);
    let mut out = Vec::new();
    d.feed(b"STARTTLS\r\n\x16\x03\x01", &mut out).unwrap();
    assert!(matches!(out.as_slice(), [Out::Switch(_)]));
    assert_eq!(&d.take_rest()[..], b"\x16\x03\x01");
}

#[test]
fn a_command_line_longer_than_the_cap_fails_whole_or_in_pieces() {
    let long = vec![b'a'; MAX_COMMAND_LINE + 1];
    assert!(serve(SmtpServer, true, &[&long]).failed);
    let mut line = vec![b'a'; MAX_COMMAND_LINE];
    line.push(b'\n');
    assert!(serve(SmtpServer, true, &[&line]).failed);
    let ok = vec![b'a'; MAX_COMMAND_LINE - 1];
    let did = serve(SmtpServer, true, &[b"x\n", &ok, b"\n"]);
    assert!(!did.failed);
    assert_eq!(did.sent.len(), 2 + MAX_COMMAND_LINE);
    // A partial line at the cap fails as soon as it passes it, across chunks.
    assert!(serve(SmtpServer, true, &[&ok, b"ab"]).failed);
    assert!(serve(ImapServer, true, &[&ok, b"ab"]).failed);
    assert!(serve(Pop3Server, true, &[&ok, b"ab"]).failed);
}

/// A line-by-line parse of the whole input: the reference for the chunked one (SMTP).
fn reference(echo: bool, input: &[u8]) -> Did {
    let mut did = Did::default();
    let mut consumed = 0u64;
    for line in input.split_inclusive(|&c| c == b'\n') {
        if line.len() > MAX_COMMAND_LINE {
            did.failed = true;
            return did;
        }
        if line.last() != Some(&b'\n') {
            break;
        }
        consumed += line.len() as u64;
        match SmtpCommand::of(line) {
            SmtpCommand::Hello => did
                .sent
                .extend_from_slice(b"250-kamaelia\r\n250 STARTTLS\r\n"),
            SmtpCommand::StartTls => {
                did.switch = Some((consumed, Bytes::from_static(b"220 Ready to start TLS\r\n")));
                return did;
            }
            SmtpCommand::Quit => {
                did.sent.extend_from_slice(b"221 bye\r\n");
                did.quit = true;
                return did;
            }
            SmtpCommand::Other if echo => did.sent.extend_from_slice(line),
            SmtpCommand::Other => {}
        }
    }
    did
}

/// `data` cut at `cuts` (anywhere, empty pieces included).
fn cut<'a>(data: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
    at.extend([0, data.len()]);
    at.sort_unstable();
    at.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

fn server_input() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        Just(b"EHLO me\r\n".to_vec()),
        Just(b"starttls\n".to_vec()),
        Just(b"QUIT\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(vec![b'z'; MAX_COMMAND_LINE - 1]),
        Just(vec![b'z'; MAX_COMMAND_LINE]),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    proptest::collection::vec(word, 0..12).prop_map(|w| w.concat())
}

proptest! {
    /// Any bytes in any chunking: the same answers as a line-by-line parse, a clean failure
    /// exactly when a line passes the cap, never a panic, and never more held between chunks
    /// than a line.
    #[test]
    fn any_chunking_answers_like_a_line_by_line_parse(
        echo in any::<bool>(),
        data in server_input(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let chunks = cut(&data, &cuts);
        let mut d = Lines::new(SmtpServer, echo);
        let mut out = Vec::new();
        for c in &chunks {
            let failed = d.feed(c, &mut out).is_err();
            prop_assert!(failed || d.done || d.held() <= MAX_COMMAND_LINE);
            if failed || d.done {
                break;
            }
        }
        prop_assert_eq!(serve(SmtpServer, echo, &chunks), reference(echo, &data));
    }
}

fn imap_pop3_input() -> impl Strategy<Value = Vec<u8>> {
    let word = prop_oneof![
        Just(b"a CAPABILITY\r\n".to_vec()),
        Just(b"t starttls\n".to_vec()),
        Just(b"x LOGOUT\r\n".to_vec()),
        Just(b"CAPA\r\n".to_vec()),
        Just(b"stls\n".to_vec()),
        Just(b"QUIT\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(vec![b'z'; MAX_COMMAND_LINE]),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    proptest::collection::vec(word, 0..12).prop_map(|w| w.concat())
}

/// Feeds `chunks` to a server dialogue and checks the bounds that hold whatever the input:
/// at most one switch or quit, which ends the answers, and at most a line held between chunks.
fn bounded_server<D: ServerDialogue>(proto: D, chunks: &[&[u8]]) -> Result<(), TestCaseError> {
    let mut d = Lines::new(proto, true);
    let mut out = Vec::new();
    for c in chunks {
        let failed = d.feed(c, &mut out).is_err();
        let ends = out
            .iter()
            .filter(|o| matches!(o, Out::Switch(_) | Out::Quit))
            .count();
        prop_assert!(ends <= 1);
        if ends == 1 {
            prop_assert!(matches!(out.last(), Some(Out::Switch(_) | Out::Quit)));
        }
        prop_assert!(failed || d.done || d.held() <= MAX_COMMAND_LINE);
        if failed || d.done {
            break;
        }
        out.clear();
    }
    Ok(())
}

proptest! {
    /// The IMAP and POP3 servers, any bytes in any chunking: a result or a clean failure, never
    /// a panic, never more than a line held, and nothing answered after the switch or the end.
    #[test]
    fn imap_and_pop3_servers_stay_bounded_whatever_they_are_sent(
        data in imap_pop3_input(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let chunks = cut(&data, &cuts);
        bounded_server(ImapServer, &chunks)?;
        bounded_server(Pop3Server, &chunks)?;
    }
}
