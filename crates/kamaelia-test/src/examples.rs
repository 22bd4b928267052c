//! The built examples of a crate, for tests that run them as programs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built example `name` of `package`, next to the running test binary
/// (`target/<profile>/deps/..` → `target/<profile>/examples/`). `cargo test` builds examples;
/// when only one test target was built, it is built here with the same cargo, profile and
/// target directory, so a test that needs it never silently skips.
pub fn example_bin(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let target_dir = profile_dir.parent().expect("the target directory");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["build", "-p", package, "--example", name]);
        cargo.arg("--target-dir").arg(target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(profile) => {
                cargo.args(["--profile", profile]);
            }
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the {name} example failed");
    }
    bin
}
