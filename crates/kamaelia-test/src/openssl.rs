//! The `openssl` command as a peer and as a certificate maker, for what rustls and rcgen will
//! not do: serve or make SHA-1-signed and RSA-1024 certificates, speak TLS 1.1, renegotiate,
//! encrypt a key. Each helper returns `None` (and says why on stderr) when `openssl` is not
//! installed, so a test can skip that case rather than fail for the wrong reason.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::pki::TempFile;

/// Whether the `openssl` command runs here; prints why a case is skipped when it does not.
pub fn available() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping an openssl case: openssl is not installed");
    }
    ok
}

/// Which odd server certificate [`LegacyPki`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// An RSA-2048 leaf signed with SHA-1 (`openssl x509 -sha1`).
    Sha1Signed,
    /// An RSA-1024 leaf signed with SHA-256.
    Rsa1024,
    /// An ordinary RSA-2048 leaf signed with SHA-256, for contrast.
    Rsa2048,
}

/// A CA and a leaf for `localhost` and `127.0.0.1` made by the `openssl` command, as PEM
/// files.
#[derive(Debug)]
pub struct LegacyPki {
    /// The CA certificate.
    pub ca: TempFile,
    /// The leaf certificate.
    pub cert: TempFile,
    /// The leaf's private key (unencrypted PKCS#8).
    pub key: TempFile,
}

impl LegacyPki {
    /// Makes the CA and a leaf of `kind`; `None` without openssl.
    pub fn generate(kind: Legacy) -> Option<Self> {
        if !available() {
            return None;
        }
        let ca = TempFile::new("legacy-ca.pem", b"");
        let ca_key = TempFile::new("legacy-ca.key", b"");
        let cert = TempFile::new("legacy-leaf.pem", b"");
        let key = TempFile::new("legacy-leaf.key", b"");
        let csr = TempFile::new("legacy-leaf.csr", b"");
        let ext = TempFile::new(
            "legacy-leaf.ext",
            b"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        let serial = TempFile::new("legacy-ca.srl", b"01\n");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=Kamaelia legacy CA",
            "-keyout",
            s(&ca_key),
            "-out",
            s(&ca),
        ]);
        let (bits, digest) = match kind {
            Legacy::Sha1Signed => ("rsa:2048", "-sha1"),
            Legacy::Rsa1024 => ("rsa:1024", "-sha256"),
            Legacy::Rsa2048 => ("rsa:2048", "-sha256"),
        };
        openssl(&[
            "req",
            "-newkey",
            bits,
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            s(&csr),
            "-CA",
            s(&ca),
            "-CAkey",
            s(&ca_key),
            "-CAserial",
            s(&serial),
            "-days",
            "30",
            digest,
            "-extfile",
            s(&ext),
            "-out",
            s(&cert),
        ]);
        Some(Self { ca, cert, key })
    }
}

/// The PEM key in `key` encrypted as PKCS#8 with AES-256 (`openssl pkcs8 -topk8 -v2 aes256`,
/// password "kamaelia"); `None` without openssl.
pub fn encrypted_key(key: &Path) -> Option<TempFile> {
    if !available() {
        return None;
    }
    let out = TempFile::new("encrypted.key", b"");
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes256",
        "-passout",
        "pass:kamaelia",
        "-in",
        &key.display().to_string(),
        "-out",
        s(&out),
    ]);
    Some(out)
}

/// The SHA-256 fingerprint of the PEM certificate in `cert` as openssl prints it
/// (`AB:CD:...`); `None` without openssl.
pub fn fingerprint(cert: &Path) -> Option<String> {
    if !available() {
        return None;
    }
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("run openssl x509");
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.trim()
            .rsplit('=')
            .next()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// An `openssl s_server` on 127.0.0.1, a free port, killed when dropped. Everything it prints
/// is collected (what it received from the client, its errors).
#[derive(Debug)]
pub struct SServer {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    output: Arc<(Mutex<String>, Condvar)>,
}

impl SServer {
    /// Starts `openssl s_server -accept 127.0.0.1:0` with `args` (e.g. `-cert`, `-key`,
    /// `-naccept 1`) and waits (at most 20 s) until it listens; `None` without openssl.
    pub fn start(args: &[&str]) -> Option<Self> {
        if !available() {
            return None;
        }
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn openssl s_server");
        let output = Arc::new((Mutex::new(String::new()), Condvar::new()));
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let (text, changed) = &*output;
                    let mut text = text.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                    changed.notify_all();
                }
            });
        }
        let stdin = child.stdin.take();
        let mut server = Self {
            child,
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
        };
        let text = server
            .wait_for("ACCEPT ", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("s_server did not listen: {}", server.output()));
        let line = text
            .lines()
            .find(|l| l.starts_with("ACCEPT "))
            .expect("the ACCEPT line");
        server.addr = line["ACCEPT ".len()..].trim().parse().expect("an address");
        Some(server)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything it has printed so far.
    pub fn output(&self) -> String {
        self.output.0.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) until its output contains `text`; the output then, or `None`.
    pub fn wait_for(&self, text: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let (out, changed) = &*self.output;
        let mut out = out.lock().unwrap();
        while !out.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            out = changed.wait_timeout(out, left).unwrap().0;
        }
        Some(out.clone())
    }

    /// Types `line` at its console (`R` asks the client to renegotiate, under TLS 1.2).
    ///
    /// The line and its newline go in one `write`: s_server takes a command only when one
    /// read returns it whole (`R\n`), and `writeln!` on an unbuffered pipe makes two writes,
    /// which s_server could read apart and send on as data (seen under load).
    pub fn type_line(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(format!("{line}\n").as_bytes());
            let _ = stdin.flush();
        }
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `openssl s_client -connect ADDR` with `args`, sends `input` and closes its stdin, and
/// waits at most `limit` (then kills it). Returns its stdout and stderr together; `None`
/// without openssl.
pub fn s_client(addr: SocketAddr, args: &[&str], input: &[u8], limit: Duration) -> Option<String> {
    if !available() {
        return None;
    }
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl s_client");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("poll s_client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("s_client output");
    Some(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn s(f: &TempFile) -> &str {
    f.path().to_str().expect("temporary paths are UTF-8")
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
