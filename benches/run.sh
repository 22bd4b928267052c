#!/usr/bin/env bash
# The benchmark suite (issues 5 and 11), from one command: builds in release (the `kamaelia`
# program, the suite and its hand-written yardsticks base-send, base-recv and base-relay),
# raises the open-file limit (figure 7 holds 10,000 connections in each of two processes),
# installs socat, ncat and netcat-openbsd if they are missing (best effort), and prints one
# table. The command-line rows run every program as a separate process.
#
#   benches/run.sh                 full sizes (1 GiB bulk, 100,000 round trips, 10,000 connections)
#   benches/run.sh --quick         small sizes: a smoke test in well under a minute
#   benches/run.sh --rounds 3 --only 1,5     any other kamaelia-bench flags (--help lists them)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace

# The `kamaelia` program measured is statically linked (glibc's crt-static), as README's install
# line builds it: a dynamically linked one spends a third of a 1 KiB `send` (figure 5) in the
# dynamic loader. The dynamic build is kept beside it as kamaelia-dynamic, for figure 5's rows
# of that build; it carries crates/kamaelia-cli/build.rs's link flag (the static unwinder), as
# `cargo install` does. `cargo rustc` passes the crt-static flag to the program alone (RUSTFLAGS
# would reach the proc-macros, which cannot be static).
# Both builds of the program are made from its own package alone, as `cargo install` makes them:
# the workspace build above unifies dependencies' features across packages, so its `kamaelia`
# has tokio's `process` feature from the suite, whose runtime then does more at every park.
# The yardsticks likewise, from their own package.
bin="${CARGO_TARGET_DIR:-target}/release"
cargo build --release -p kamaelia-yardsticks
cargo build --release -p kamaelia-cli --bin kamaelia
cp "$bin/kamaelia" "$bin/kamaelia-dynamic"
# The build script cannot see this crt-static (it sees RUSTFLAGS, as README's install line
# sets them), so the packed relocations it gives that build are passed here by hand.
cargo rustc --release -p kamaelia-cli --bin kamaelia -- -C target-feature=+crt-static \
  -C link-arg=-Wl,-z,pack-relative-relocs

# Every measured program is written once more as an installer writes it (a plain sequential
# copy): a binary as the linker leaves it takes about a quarter more page faults to start
# (161 against 129 for a 1 KiB `send`, `perf stat -e page-faults`), as its pages sit in the
# page cache in smaller pieces, and figure 5 then measures the linker's way of writing, not
# the program (nc, socat and ncat come from packages, written the installer's way).
for b in kamaelia kamaelia-dynamic base-send base-recv base-relay base-connect; do
  if [ -f "$bin/$b" ]; then
    cp "$bin/$b" "$bin/$b.copy" && mv -f "$bin/$b.copy" "$bin/$b"
  fi
done

# As high as the hard limit allows; figure 7 shrinks itself (with a note) if it is still low.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

missing=()
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v ncat >/dev/null 2>&1 || missing+=(ncat)
command -v nc >/dev/null 2>&1 || missing+=(netcat-openbsd)
if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (the command-line peers) ..." >&2
  { apt-get install -y -qq "${missing[@]}" || { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; }; } \
    >/dev/null 2>&1 || echo "could not install ${missing[*]}; those rows are skipped" >&2
fi

exec "${CARGO_TARGET_DIR:-target}/release/kamaelia-bench" "$@"
