//! Which proxy, and how to reach it: parsed from `http://[user:pass@]host[:port]` or
//! `socks5://…` (`socks5h://` is the same: the proxy always resolves the target's name).

use std::fmt;
use std::str::FromStr;

use super::error::ProxyUrlError;

/// The default port of an HTTP proxy (as ncat and squid use).
pub const DEFAULT_HTTP_PROXY_PORT: u16 = 3128;
/// The default port of a SOCKS proxy (RFC 1928).
pub const DEFAULT_SOCKS_PORT: u16 = 1080;

/// The protocol spoken to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyKind {
    /// HTTP `CONNECT host:port` (RFC 9110 §9.3.6), with Basic authentication if credentials are
    /// given.
    HttpConnect,
    /// SOCKS5 `CONNECT` (RFC 1928), the target's name resolved by the proxy; username/password
    /// authentication (RFC 1929) if credentials are given.
    Socks5,
}

/// A user name and password for the proxy. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// A user name and password.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// A proxy: its kind, address and optional credentials. `Display` shows it as a URL without
/// the password.
///
/// ```
/// use kamaelia::internet::{Proxy, ProxyKind};
///
/// let p: Proxy = "socks5://alice:s%40cret@[::1]:1080".parse().unwrap();
/// assert_eq!(p.kind(), ProxyKind::Socks5);
/// assert_eq!(p.host(), "::1");
/// assert_eq!(p.credentials().unwrap().password(), "s@cret");
/// assert_eq!(p.to_string(), "socks5://alice@[::1]:1080");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

impl Proxy {
    /// A proxy of `kind` at `host` (a name or an IP literal, IPv6 without brackets) and `port`.
    pub fn new(kind: ProxyKind, host: impl Into<String>, port: u16) -> Self {
        Proxy {
            kind,
            host: host.into(),
            port,
            credentials: None,
        }
    }

    /// Authenticates with `credentials`.
    #[must_use]
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The protocol.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host (IPv6 literals without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The credentials, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::HttpConnect => "http",
            ProxyKind::Socks5 => "socks5",
        };
        write!(f, "{scheme}://")?;
        if let Some(c) = &self.credentials {
            write!(f, "{}@", c.user)?;
        }
        write!(f, "{}", HostPort(&self.host, self.port))
    }
}

/// `host:port`, with an IPv6 literal in brackets.
pub(crate) struct HostPort<'a>(pub(crate) &'a str, pub(crate) u16);

impl fmt::Display for HostPort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]:{}", self.0, self.1)
        } else {
            write!(f, "{}:{}", self.0, self.1)
        }
    }
}

impl FromStr for Proxy {
    type Err = ProxyUrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| ProxyUrlError::Scheme(String::new()))?;
        let (kind, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (ProxyKind::HttpConnect, DEFAULT_HTTP_PROXY_PORT),
            "socks5" | "socks5h" => (ProxyKind::Socks5, DEFAULT_SOCKS_PORT),
            _ => return Err(ProxyUrlError::Scheme(scheme.to_string())),
        };
        // The credentials first, so that no error message ever quotes the password.
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        // One trailing slash is what users paste; a path or query is not a proxy address.
        let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
        if let Some(i) = hostport.find(['/', '?', '#']) {
            return Err(ProxyUrlError::Trailing(hostport[i..].to_string()));
        }
        let (host, port) = split_host_port(hostport)?;
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(ProxyUrlError::Port(p.to_string())),
            },
        };
        let mut proxy = Proxy::new(kind, host, port);
        if let Some(u) = userinfo {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            let c = Credentials::new(percent_decode(user)?, percent_decode(password)?);
            let fits = |t: &str| (1..=255).contains(&t.len());
            if kind == ProxyKind::Socks5 && !(fits(&c.user) && fits(&c.password)) {
                return Err(ProxyUrlError::Credentials);
            }
            proxy = proxy.with_credentials(c);
        }
        Ok(proxy)
    }
}

/// `host[:port]` or `[v6][:port]`.
fn split_host_port(s: &str) -> Result<(String, Option<&str>), ProxyUrlError> {
    let (host, port) = if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or(ProxyUrlError::NoHost)?;
        match after {
            "" => (h, None),
            a => match a.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return Err(ProxyUrlError::Trailing(a.to_string())),
            },
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(ProxyUrlError::NoHost);
    }
    Ok((host.to_string(), port))
}

/// `%XX` escapes decoded; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, ProxyUrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(ProxyUrlError::Escape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| ProxyUrlError::Escape)?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| ProxyUrlError::Escape)?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyUrlError::Escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_as_a_table() {
        use ProxyKind::*;
        type Want = Result<
            (
                ProxyKind,
                &'static str,
                u16,
                Option<(&'static str, &'static str)>,
            ),
            ProxyUrlError,
        >;
        let cases: &[(&str, Want)] = &[
            ("http://proxy:8080", Ok((HttpConnect, "proxy", 8080, None))),
            ("HTTP://proxy:8080/", Ok((HttpConnect, "proxy", 8080, None))),
            ("http://proxy", Ok((HttpConnect, "proxy", 3128, None))),
            ("socks5://10.0.0.1", Ok((Socks5, "10.0.0.1", 1080, None))),
            ("socks5h://h:9050", Ok((Socks5, "h", 9050, None))),
            ("socks5://[::1]:1081", Ok((Socks5, "::1", 1081, None))),
            ("socks5://[::1]", Ok((Socks5, "::1", 1080, None))),
            (
                "http://u:p@h:1",
                Ok((HttpConnect, "h", 1, Some(("u", "p")))),
            ),
            (
                "http://u%40x:p%3a%2F@h:1",
                Ok((HttpConnect, "h", 1, Some(("u@x", "p:/")))),
            ),
            (
                "http://a@b:c@h:1",
                Ok((HttpConnect, "h", 1, Some(("a@b", "c")))),
            ),
            ("http://u@h:1", Ok((HttpConnect, "h", 1, Some(("u", ""))))),
            ("socks5://u@h:1", Err(ProxyUrlError::Credentials)),
            ("ftp://h:1", Err(ProxyUrlError::Scheme("ftp".into()))),
            ("h:1", Err(ProxyUrlError::Scheme(String::new()))),
            ("http://:1", Err(ProxyUrlError::NoHost)),
            ("http://", Err(ProxyUrlError::NoHost)),
            ("http://h:0", Err(ProxyUrlError::Port("0".into()))),
            ("http://h:99999", Err(ProxyUrlError::Port("99999".into()))),
            ("http://h:x", Err(ProxyUrlError::Port("x".into()))),
            (
                "http://h:1/path",
                Err(ProxyUrlError::Trailing("/path".into())),
            ),
            ("http://[::1]x", Err(ProxyUrlError::Trailing("x".into()))),
            ("http://u:%zz@h:1", Err(ProxyUrlError::Escape)),
            ("http://u:%4@h:1", Err(ProxyUrlError::Escape)),
            ("http://u:%ff@h:1", Err(ProxyUrlError::Escape)),
        ];
        for (url, want) in cases {
            let got = url.parse::<Proxy>().map(|p| {
                let c = p
                    .credentials()
                    .map(|c| (c.user().to_string(), c.password().to_string()));
                (p.kind(), p.host().to_string(), p.port(), c)
            });
            let want = want.clone().map(|(k, h, p, c)| {
                (
                    k,
                    h.to_string(),
                    p,
                    c.map(|(u, w)| (u.to_string(), w.to_string())),
                )
            });
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let p: Proxy = "http://alice:hunter2@h:1".parse().unwrap();
        assert_eq!(p.to_string(), "http://alice@h:1");
        assert!(!format!("{p:?}").contains("hunter2"));
        let long = "x".repeat(256);
        let e = format!("socks5://u:{long}@h:1")
            .parse::<Proxy>()
            .unwrap_err();
        assert!(!e.to_string().contains(&long));
    }
}
