//! A component that ignores ShutdownMicroprocess, for seeing what Ctrl-C does under
//! `axon::run`: the first interrupt delivers ShutdownMicroprocess to every top-level component
//! (this one prints it and carries on), the second ends the process with status 130.
//!
//! ```sh
//! cargo run -p axon --example interrupt    # then press Ctrl-C twice
//! ```

use std::io::Write;

use axon::Component;

fn main() -> std::io::Result<()> {
    let mut b = Component::build("Stubborn");
    let control = b.control();
    b.signal();
    let stubborn = b.main(|_cx| async move {
        say("ready");
        let c = control.recv().await;
        say(&format!("control: {c}"));
        // Ignores it: only a second interrupt ends the process.
        std::future::pending::<()>().await;
        Ok(())
    });
    axon::run(async move {
        stubborn.activate();
    })?;
    Ok(())
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
