//! What the program says on stderr: one line per event worth knowing, warnings, the failure
//! line, or (with `--json-events`) every signal message as a JSON line.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write as _};

use axon::Control;
use kamaelia::internet::TlsInfo;

use crate::flags::Output;

/// The stderr reporter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Events {
    json: bool,
    quiet: bool,
}

impl Events {
    pub(crate) fn new(output: Output) -> Self {
        Events {
            json: output.json,
            quiet: output.quiet,
        }
    }

    /// A reporter that prints only warnings and failures (the demo prints its own report).
    pub(crate) fn silent() -> Self {
        Events {
            json: false,
            quiet: true,
        }
    }

    /// An event line: `kamaelia: connected to 127.0.0.1:7`.
    pub(crate) fn line(&self, text: impl fmt::Display) {
        if !self.quiet && !self.json {
            emit(&format!("kamaelia: {text}"));
        }
    }

    /// A warning, printed whatever the mode.
    pub(crate) fn warn(&self, text: impl fmt::Display) {
        emit(&format!("kamaelia: warning: {text}"));
    }

    /// The one line naming why the run failed, printed whatever the mode.
    pub(crate) fn failure(&self, text: impl fmt::Display) {
        emit(&format!("kamaelia: {text}"));
    }

    /// A message seen on a `signal` box (JSON mode only).
    pub(crate) fn signal(&self, boxname: &str, c: &Control) {
        if !self.json {
            return;
        }
        let (kind, component, detail) = match c {
            Control::ProducerFinished { detail } => {
                ("producer_finished", None, detail_text(detail))
            }
            Control::ShutdownMicroprocess { detail } => {
                ("shutdown_microprocess", None, detail_text(detail))
            }
            Control::Error(e) => ("error", Some(e.component().to_string()), None),
            Control::Notice(d) => ("notice", None, Some(format!("{d:?}"))),
            _ => ("other", None, None),
        };
        let mut j = Json::new();
        j.field("box", boxname);
        j.field("kind", kind);
        if let Some(d) = &detail {
            j.field("type", type_name(d));
            j.field("detail", d);
        }
        if let Some(comp) = &component {
            j.field("component", comp);
        }
        j.field("text", &c.to_string());
        emit(&j.finish());
    }

    /// What arrived on `sslready` (JSON mode only).
    pub(crate) fn sslready(&self, info: &TlsInfo) {
        if !self.json {
            return;
        }
        let mut j = Json::new();
        j.field("box", "sslready");
        j.field("kind", "ssl_ready");
        j.field("version", &info.version);
        j.field("cipher_suite", &info.cipher_suite);
        emit(&j.finish());
    }
}

fn detail_text(d: &Option<axon::Detail>) -> Option<String> {
    d.as_ref().map(|d| format!("{d:?}"))
}

/// The payload's type, from its Debug text (`Connected { .. }` -> `Connected`).
fn type_name(debug: &str) -> &str {
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    &debug[..end]
}

fn emit(line: &str) {
    let mut err = std::io::stderr().lock();
    // On a terminal, start from a clean line: a progress bar may be drawn on it.
    let clear = if err.is_terminal() { "\r\x1b[K" } else { "" };
    // Nothing useful can be done if stderr itself is gone.
    let _ = writeln!(err, "{clear}{line}");
}

/// A flat JSON object of string fields, escaped by hand.
struct Json(String);

impl Json {
    fn new() -> Self {
        Json(String::from("{"))
    }

    fn field(&mut self, key: &str, value: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        escape(&mut self.0, key);
        self.0.push(':');
        escape(&mut self.0, value);
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn escape(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut j = Json::new();
        j.field("a", "quote \" back \\ nl \n ctl \u{1}");
        assert_eq!(j.finish(), r#"{"a":"quote \" back \\ nl \n ctl \u0001"}"#);
        assert_eq!(type_name("Connected { peer: 1 }"), "Connected");
        assert_eq!(type_name("PeerClosed"), "PeerClosed");
    }
}
