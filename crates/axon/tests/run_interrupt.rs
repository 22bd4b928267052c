//! §6: Ctrl-C under `axon::run`, through a real child process and real signals: the first
//! SIGINT delivers ShutdownMicroprocess to the top-level components, the second exits with 130.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The example binary: `cargo test` builds it next to this test's directory; when only this
/// test was asked for, build it with the same cargo and profile.
fn example() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir.join("examples").join("interrupt");
    if !path.exists() {
        let target_dir = profile_dir.parent()?;
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "-p",
                "axon",
                "--example",
                "interrupt",
                "--target-dir",
            ])
            .arg(target_dir);
        if profile_dir.file_name()? == "release" {
            build.arg("--release");
        }
        let built = build.status().ok()?.success();
        if !built {
            return None;
        }
    }
    path.exists().then_some(path)
}

fn sigint(pid: u32) {
    let ok = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill -INT {pid} failed");
}

#[test]
fn first_interrupt_shuts_down_top_level_components_and_a_second_exits_130() {
    let Some(bin) = example() else {
        eprintln!("SKIPPED: the interrupt example is not built (run the whole `cargo test`)");
        return;
    };
    let mut child = Command::new(bin)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("the example starts");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line from the child: expected {what}"))
    };
    assert_eq!(next("ready"), "ready");
    sigint(pid);
    assert_eq!(
        next("the shutdown message"),
        "control: shutdown microprocess"
    );
    sigint(pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second interrupt did not end the process");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
}
