//! Packaging (issue 10 §7): completion scripts and the manual page come out of the built
//! program and are accepted by their consumers (bash -n, groff), and every command's --help
//! ends with EXAMPLES.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{args, peer_tool, run, Input};

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `tool args` with `input` on its stdin; its status and stderr.
fn consume(tool: &str, tool_args: &[&str], input: &[u8]) -> (bool, String) {
    let mut child = Command::new(tool)
        .args(tool_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn completion_scripts_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef kamaelia"),
        ("fish", "complete -c kamaelia"),
    ] {
        let r = run(
            args(&["completions", shell]),
            Input::Bytes(Vec::new()),
            LIMIT,
        );
        r.expect_code(0);
        let script = String::from_utf8(r.stdout.clone()).unwrap();
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        // Every command and the new flag are offered (fish writes flags as `-l proxy`).
        let proxy = if shell == "fish" {
            "-l proxy"
        } else {
            "--proxy"
        };
        for word in [
            "connect", "send", "serve", "listen", "forward", "demo", proxy,
        ] {
            assert!(script.contains(word), "{shell}: {word} missing");
        }
    }
    let bash = run(
        args(&["completions", "bash"]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    let (ok, err) = consume("bash", &["-n"], &bash.stdout);
    assert!(ok, "bash -n refused the script: {err}");
    let r = run(
        args(&["completions", "tcsh"]),
        Input::Bytes(Vec::new()),
        LIMIT,
    );
    r.expect_code(2);
}

#[test]
fn the_manual_page_renders_with_every_command_and_its_examples() {
    let r = run(args(&["man"]), Input::Bytes(Vec::new()), LIMIT);
    r.expect_code(0);
    let page = String::from_utf8(r.stdout.clone()).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH kamaelia 1"),
        "not roff"
    );
    for section in [
        "KAMAELIA CONNECT",
        "KAMAELIA SEND",
        "KAMAELIA SERVE",
        "KAMAELIA LISTEN",
        "KAMAELIA FORWARD",
        // roff writes a hyphen as `\-`.
        r"\-\-proxy",
    ] {
        assert!(page.contains(section), "{section} missing");
    }
    assert!(page.matches("EXAMPLES").count() >= 5, "examples missing");
    if peer_tool("groff").is_some() {
        let (ok, err) = consume(
            "groff",
            &["-man", "-Tutf8", "-ww", "-z"],
            &page.into_bytes(),
        );
        assert!(ok, "groff failed: {err}");
        assert!(!err.contains("warning"), "groff warned: {err}");
    }
}

#[test]
fn every_commands_help_ends_with_examples() {
    for cmd in [
        &[][..],
        &["connect"],
        &["send"],
        &["serve"],
        &["listen"],
        &["forward"],
        &["demo"],
        &["completions"],
        &["man"],
    ] {
        let mut a = cmd.to_vec();
        a.push("--help");
        let r = run(args(&a), Input::Bytes(Vec::new()), LIMIT);
        r.expect_code(0);
        let help = String::from_utf8(r.stdout.clone()).unwrap();
        let at = help
            .find("\nEXAMPLES:\n")
            .unwrap_or_else(|| panic!("{cmd:?}: no EXAMPLES"));
        let examples = &help[at..];
        assert!(examples.contains("  kamaelia"), "{cmd:?}: {examples}");
        if let Some(name) = cmd.first() {
            assert!(examples.contains(&format!("kamaelia {name}")), "{cmd:?}");
        }
    }
}
