//! `kestrel`: the command-line front end.

mod cli;
mod commands;
mod models;
#[cfg(feature = "camera")]
mod watch;

use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;

/// The last panic's message, so a bug is reported as one `Error:` line, not a backtrace.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if let Ok(mut p) = PANIC.lock() {
            *p = Some(format!("{payload}{location}"));
        }
    }));
    match std::panic::catch_unwind(|| commands::dispatch(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("Error: {}", one_line(&e));
            ExitCode::from(1)
        }
        Err(_) => {
            let msg = PANIC.lock().ok().and_then(|p| p.clone()).unwrap_or_default();
            // The reader of our stdout went away (`kestrel … | head`): stop quietly, as a Unix
            // tool killed by SIGPIPE would (Rust ignores the signal, so sockets stay safe).
            if msg.starts_with("failed printing to stdout: Broken pipe") {
                return ExitCode::from(141);
            }
            eprintln!("Error: internal error (a bug in kestrel, please report it): {msg}");
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, without repeating a cause the message already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}
