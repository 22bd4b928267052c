//! The proxy handshakes as plain state machines over the proxy's bytes, cut anywhere: HTTP
//! CONNECT (status line and headers, capped) and SOCKS5 (RFC 1928, with RFC 1929
//! username/password). No sockets: [`ProxyClient`](super::ProxyClient) feeds them.

use std::net::IpAddr;

use bytes::Bytes;

use super::error::{ProxyError, SocksReply};
use super::spec::{Credentials, HostPort, Proxy, ProxyKind};

/// The longest line of an HTTP proxy's reply.
pub const MAX_REPLY_LINE: usize = 8192;
/// The most bytes of an HTTP proxy's reply (status line and headers, including the interim 1xx
/// replies before it).
pub const MAX_REPLY_BYTES: usize = 65536;

/// What to do after the bytes given to [`Dialogue::feed`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Send these to the proxy.
    pub(crate) send: Option<Vec<u8>>,
    /// The tunnel is open; these bytes followed the proxy's reply (the target's first bytes).
    pub(crate) open: Option<Bytes>,
}

impl Fed {
    /// Adds `bytes` to what is to be sent.
    fn push(&mut self, bytes: Vec<u8>) {
        self.send.get_or_insert_with(Vec::new).extend(bytes);
    }
}

/// One proxy handshake: [`request`](Dialogue::request) once, then [`feed`](Dialogue::feed)
/// with everything the proxy sends until the tunnel is open or an error.
#[derive(Debug)]
pub(crate) struct Dialogue {
    kind: Kind,
    /// Bytes taken from the proxy so far.
    fed: u64,
    /// Bytes of the proxy's own replies, once the tunnel is open.
    consumed: Option<u64>,
}

#[derive(Debug)]
enum Kind {
    Http(HttpConnect),
    Socks(Socks5),
}

impl Dialogue {
    /// A handshake with `proxy` for a tunnel to `host` (a name or an IP literal, IPv6 with or
    /// without brackets) and `port`.
    pub(crate) fn new(proxy: &Proxy, host: &str, port: u16) -> Self {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_string();
        let creds = proxy.credentials().cloned();
        let kind = match proxy.kind() {
            ProxyKind::HttpConnect => Kind::Http(HttpConnect::new(host, port, creds)),
            ProxyKind::Socks5 => Kind::Socks(Socks5::new(host, port, creds)),
        };
        Dialogue {
            kind,
            fed: 0,
            consumed: None,
        }
    }

    /// The first bytes to send once connected to the proxy.
    pub(crate) fn request(&mut self) -> Result<Vec<u8>, ProxyError> {
        match &mut self.kind {
            Kind::Http(h) => h.request(),
            Kind::Socks(s) => Ok(s.greeting()),
        }
    }

    /// Takes bytes from the proxy.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Fed, ProxyError> {
        self.fed += data.len() as u64;
        let fed = match &mut self.kind {
            Kind::Http(h) => h.feed(data)?,
            Kind::Socks(s) => s.feed(data)?,
        };
        if let Some(rest) = &fed.open {
            self.consumed = Some(self.fed - rest.len() as u64);
        }
        Ok(fed)
    }

    /// How many bytes the proxy's replies took, once the tunnel is open: the connection's
    /// plaintext count less these is what the application was given.
    pub(crate) fn consumed(&self) -> u64 {
        self.consumed.unwrap_or(self.fed)
    }
}

/// HTTP CONNECT: one request, then a status line and headers up to an empty line.
#[derive(Debug)]
struct HttpConnect {
    host: String,
    port: u16,
    creds: Option<Credentials>,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    start: usize,
    /// How far `buf` has been searched for a line end.
    scanned: usize,
    /// Reply bytes in complete lines so far.
    total: usize,
    state: HttpState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HttpState {
    /// Waiting for a status line.
    Status,
    /// After an interim 1xx status: its headers, then another status line.
    Interim,
    /// After a 2xx status: its headers, up to the empty line that opens the tunnel.
    Headers,
}

impl HttpConnect {
    fn new(host: String, port: u16, creds: Option<Credentials>) -> Self {
        HttpConnect {
            host,
            port,
            creds,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            total: 0,
            state: HttpState::Status,
        }
    }

    fn request(&self) -> Result<Vec<u8>, ProxyError> {
        // A space, a control character or a slash in the name would change the request.
        if self.host.is_empty()
            || self
                .host
                .bytes()
                .any(|c| c <= b' ' || c == 0x7f || matches!(c, b'/' | b'@' | b'?' | b'#'))
        {
            return Err(ProxyError::Unsendable(format!(
                "{:?} is not a host name",
                self.host
            )));
        }
        let authority = HostPort(&self.host, self.port).to_string();
        let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(c) = &self.creds {
            let token = base64(format!("{}:{}", c.user(), c.password()).as_bytes());
            req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        req.push_str("\r\n");
        Ok(req.into_bytes())
    }

    fn feed(&mut self, data: &[u8]) -> Result<Fed, ProxyError> {
        // What was read before is dropped; what is left is one partial line, capped below.
        self.buf.drain(..self.start);
        self.scanned -= self.start;
        self.start = 0;
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf[self.scanned..].iter().position(|&c| c == b'\n') {
            let end = self.scanned + i + 1;
            let raw = &self.buf[self.start..end];
            if raw.len() > MAX_REPLY_LINE {
                return Err(ProxyError::LineTooLong);
            }
            self.total += raw.len();
            if self.total > MAX_REPLY_BYTES {
                return Err(ProxyError::ReplyTooLong);
            }
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            self.start = end;
            self.scanned = end;
            tracing::debug!(line, "proxy: reply");
            match self.state {
                HttpState::Status => self.state = self.status(&line)?,
                HttpState::Interim if line.is_empty() => self.state = HttpState::Status,
                HttpState::Headers if line.is_empty() => {
                    let rest = Bytes::copy_from_slice(&self.buf[self.start..]);
                    return Ok(Fed {
                        send: None,
                        open: Some(rest),
                    });
                }
                HttpState::Interim | HttpState::Headers => {}
            }
        }
        self.scanned = self.buf.len();
        let partial = self.buf.len() - self.start;
        if partial > MAX_REPLY_LINE {
            return Err(ProxyError::LineTooLong);
        }
        if self.total + partial > MAX_REPLY_BYTES {
            return Err(ProxyError::ReplyTooLong);
        }
        Ok(Fed::default())
    }

    /// The state after status line `line`, or why the tunnel will not open.
    fn status(&self, line: &str) -> Result<HttpState, ProxyError> {
        let malformed =
            || ProxyError::Malformed(format!("not an HTTP status line: {}", shown(line)));
        let (version, rest) = line.split_once(' ').ok_or_else(malformed)?;
        let known = matches!(version, "HTTP/1.0" | "HTTP/1.1");
        let code = rest
            .get(..3)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
        let after = rest.get(3..).unwrap_or("");
        let (Some(code), true) = (code, after.is_empty() || after.starts_with(' ')) else {
            return Err(malformed());
        };
        if !known {
            return Err(malformed());
        }
        let status = shown(rest.trim_end());
        match code.as_bytes()[0] {
            b'1' => Ok(HttpState::Interim),
            b'2' => Ok(HttpState::Headers),
            _ if code == "407" && self.creds.is_some() => {
                Err(ProxyError::AuthFailed { detail: status })
            }
            _ if code == "407" => Err(ProxyError::AuthRequired { detail: status }),
            _ => Err(ProxyError::Refused { status }),
        }
    }
}

/// A proxy's text as shown in a message: printable characters only, at most 200 of them.
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// SOCKS5: a greeting with the methods offered, the method chosen, username/password if
/// chosen, then CONNECT and its reply.
#[derive(Debug)]
struct Socks5 {
    host: String,
    port: u16,
    creds: Option<Credentials>,
    buf: Vec<u8>,
    state: SocksState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocksState {
    /// Waiting for the method the proxy chose.
    Method,
    /// Waiting for the username/password status.
    Auth,
    /// Waiting for CONNECT's reply.
    Reply,
}

const SOCKS_VERSION: u8 = 5;
const NO_AUTH: u8 = 0;
const USER_PASS: u8 = 2;
const NO_ACCEPTABLE: u8 = 0xff;

impl Socks5 {
    fn new(host: String, port: u16, creds: Option<Credentials>) -> Self {
        Socks5 {
            host,
            port,
            creds,
            buf: Vec::new(),
            state: SocksState::Method,
        }
    }

    fn greeting(&self) -> Vec<u8> {
        if self.creds.is_some() {
            vec![SOCKS_VERSION, 2, NO_AUTH, USER_PASS]
        } else {
            vec![SOCKS_VERSION, 1, NO_AUTH]
        }
    }

    /// RFC 1929: version 1, then the user name and the password, each with its length.
    fn auth(c: &Credentials) -> Result<Vec<u8>, ProxyError> {
        let (u, p) = (c.user().as_bytes(), c.password().as_bytes());
        let (Ok(ul), Ok(pl)) = (u8::try_from(u.len()), u8::try_from(p.len())) else {
            return Err(ProxyError::Unsendable(
                "a SOCKS5 user name or password is longer than 255 bytes".into(),
            ));
        };
        let mut out = vec![1, ul];
        out.extend_from_slice(u);
        out.push(pl);
        out.extend_from_slice(p);
        Ok(out)
    }

    /// CONNECT: IP literals as such, anything else as a name for the proxy to resolve.
    fn connect(&self) -> Result<Vec<u8>, ProxyError> {
        let mut out = vec![SOCKS_VERSION, 1, 0];
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => {
                out.push(1);
                out.extend_from_slice(&a.octets());
            }
            Ok(IpAddr::V6(a)) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            Err(_) => {
                let name = self.host.as_bytes();
                let len = u8::try_from(name.len())
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        ProxyError::Unsendable(format!(
                            "a SOCKS5 host name is 1 to 255 bytes; this one is {}",
                            name.len()
                        ))
                    })?;
                out.push(3);
                out.push(len);
                out.extend_from_slice(name);
            }
        }
        out.extend_from_slice(&self.port.to_be_bytes());
        Ok(out)
    }

    fn feed(&mut self, data: &[u8]) -> Result<Fed, ProxyError> {
        self.buf.extend_from_slice(data);
        let mut fed = Fed::default();
        loop {
            match self.state {
                SocksState::Method => {
                    let Some(&[ver, method]) = self.buf.get(..2) else {
                        return Ok(fed);
                    };
                    if ver != SOCKS_VERSION {
                        return Err(ProxyError::Malformed(format!(
                            "not a SOCKS5 proxy (version byte {ver})"
                        )));
                    }
                    self.buf.drain(..2);
                    match (method, &self.creds) {
                        (NO_AUTH, _) => {
                            fed.push(self.connect()?);
                            self.state = SocksState::Reply;
                        }
                        (USER_PASS, Some(c)) => {
                            fed.push(Self::auth(c)?);
                            self.state = SocksState::Auth;
                        }
                        (NO_ACCEPTABLE, None) => {
                            return Err(ProxyError::AuthRequired {
                                detail: "SOCKS5: no authentication is not accepted".into(),
                            })
                        }
                        (NO_ACCEPTABLE, Some(_)) => {
                            return Err(ProxyError::AuthRequired {
                                detail: "SOCKS5: accepts neither no authentication nor \
                                         username/password"
                                    .into(),
                            })
                        }
                        (m, _) => {
                            return Err(ProxyError::Malformed(format!(
                                "the proxy chose authentication method {m}, which was not offered"
                            )))
                        }
                    }
                }
                SocksState::Auth => {
                    let Some(&[ver, status]) = self.buf.get(..2) else {
                        return Ok(fed);
                    };
                    // RFC 1929 says version 1; some proxies answer with 5.
                    if ver != 1 && ver != SOCKS_VERSION {
                        return Err(ProxyError::Malformed(format!(
                            "username/password reply version {ver}"
                        )));
                    }
                    if status != 0 {
                        return Err(ProxyError::AuthFailed {
                            detail: format!("SOCKS5 username/password status {status}"),
                        });
                    }
                    self.buf.drain(..2);
                    fed.push(self.connect()?);
                    self.state = SocksState::Reply;
                }
                SocksState::Reply => {
                    let Some(&[ver, rep]) = self.buf.get(..2) else {
                        return Ok(fed);
                    };
                    if ver != SOCKS_VERSION {
                        return Err(ProxyError::Malformed(format!(
                            "CONNECT reply version {ver}"
                        )));
                    }
                    if rep != 0 {
                        return Err(ProxyError::SocksRefused(SocksReply::from_code(rep)));
                    }
                    let len = match (self.buf.get(3), self.buf.get(4)) {
                        (Some(1), _) => 4 + 4 + 2,
                        (Some(4), _) => 4 + 16 + 2,
                        (Some(3), Some(&n)) => 4 + 1 + usize::from(n) + 2,
                        (Some(3), None) | (None, _) => return Ok(fed),
                        (Some(&t), _) => {
                            return Err(ProxyError::Malformed(format!(
                                "CONNECT reply address type {t}"
                            )))
                        }
                    };
                    if self.buf.len() < len {
                        return Ok(fed);
                    }
                    fed.open = Some(Bytes::copy_from_slice(&self.buf[len..]));
                    self.buf.clear();
                    return Ok(fed);
                }
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), for Basic authentication.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
