//! Link flags that shorten the start-up of the dynamically linked `kamaelia`, the build a user
//! gets from `cargo install --path crates/kamaelia-cli` (figure 5: `kamaelia send` of 1 KiB,
//! whole process). A build script is the one place such flags reach what `cargo install`
//! builds (RUSTFLAGS would need the user to set them). Each flag is probed first: a small
//! program is built with it by the same compiler, linker and flags as this package, and run;
//! a toolchain, linker or C library that lacks it gets the program linked as before.
//!
//! The dynamically linked build gets the static unwinder; the statically linked build
//! (`crt-static`, README's second install line) links the unwinder statically already and gets
//! the packed relocations instead. Packed relocations are kept to the static build because it
//! carries its own start-up code: a dynamically linked program with them needs a C library
//! with DT_RELR (glibc 2.36) wherever it runs, so one built here and copied to an older system
//! would not start, for 1-3 page faults. `benches/run.sh` relinks the static build with
//! `cargo rustc -- -C target-feature=+crt-static`, which this script cannot see (it then gets
//! the unwinder's flag, which `crt-static` links anyway), so run.sh passes the packed
//! relocations' flag itself. Nothing is added for a target other than glibc's Linux, or one
//! this machine cannot run (the probe could not run).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// libgcc's unwinder linked into the program (`libgcc_eh.a`) instead of loading
/// `libgcc_s.so.1` at start: one shared library fewer for the dynamic loader to find, map,
/// relocate and search at every symbol lookup. callgrind, `kamaelia send -q` of 1 KiB start to
/// exit: 943,731 -> 899,200 instructions; 7 page faults fewer (`perf record -e page-faults`).
/// std asks for `-lgcc_s` after this package's own libraries, so the symbols are already
/// defined by then and `--as-needed` drops `libgcc_s`. Unwinding (panics, backtraces) works
/// as before; the probe program checks that a panic is caught.
const STATIC_UNWINDER: Flag = Flag {
    name: "static-unwinder",
    args: &["-l", "static=gcc_eh"],
    emit: "cargo:rustc-link-lib=static=gcc_eh",
};

/// Relative relocations packed as DT_RELR (glibc 2.36, binutils 2.38, lld 15): the program's
/// 5,365 relative relocations (6,787 statically linked) take 1.6 KiB instead of 128 KiB of
/// table for the loader to read at start. Instructions about the same (callgrind as above:
/// 899,200 -> 900,407 on top of the static unwinder); page faults (`perf stat -r 300 -e
/// page-faults`) 138 -> 128 statically linked, 1-3 fewer dynamically linked (not used there:
/// see the top of this file). A C library without DT_RELR refuses a dynamically linked
/// program with them (it names GLIBC_ABI_DT_RELR), which is why the probe runs what it built.
const PACKED_RELOCATIONS: Flag = Flag {
    name: "packed-relocations",
    args: &["-C", "link-arg=-Wl,-z,pack-relative-relocs"],
    emit: "cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs",
};

struct Flag {
    name: &'static str,
    /// What the probe passes to rustc.
    args: &'static [&'static str],
    /// What this script tells cargo when the probe passes.
    emit: &'static str,
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| env::var(k).unwrap_or_default();
    let gnu_linux = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if !gnu_linux || var("HOST") != var("TARGET") {
        return;
    }
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let static_crt = var("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static");
    let flag = if static_crt {
        PACKED_RELOCATIONS
    } else {
        STATIC_UNWINDER
    };
    if probe(&out, &flag) {
        println!("{}", flag.emit);
    } else {
        println!(
            "cargo:warning=kamaelia: linking without {} (the toolchain or C library lacks it)",
            flag.name
        );
    }
}

/// Builds and runs a program that panics and catches the panic, linked with `flag`.
fn probe(out: &Path, flag: &Flag) -> bool {
    let src = out.join("probe.rs");
    let exe = out.join(format!("probe-{}", flag.name));
    let program = "fn main() {\n\
                   std::panic::set_hook(Box::new(|_| {}));\n\
                   let caught = std::panic::catch_unwind(|| panic!(\"probe\")).is_err();\n\
                   print!(\"{}\", if caught { \"caught\" } else { \"missed\" });\n\
                   }\n";
    if std::fs::write(&src, program).is_err() {
        return false;
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut cmd = Command::new(rustc);
    cmd.arg(&src).arg("-o").arg(&exe).args(flag.args);
    // The same linker and flags as this package's own build.
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        cmd.arg("-C")
            .arg(format!("linker={}", linker.to_string_lossy()));
    }
    if let Ok(flags) = env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    let built = cmd.output().is_ok_and(|o| o.status.success());
    built
        && Command::new(&exe)
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout == b"caught")
}
