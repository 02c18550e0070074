//! The system's OpenSSH client, run as a child process.
//!
//! Why not a Rust ssh library: the system `ssh` already knows the user's keys, agent,
//! `~/.ssh/config` (jump hosts, aliases) and `known_hosts`, which a robot team has set up for
//! their boards; and it adds no C library or crypto stack to our build.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot start `ssh` (install openssh-client): {0}")]
    Spawn(std::io::Error),
    #[error("ssh to {host} failed: {detail}")]
    Connection { host: String, detail: String },
    #[error("{detail}")]
    Remote { code: i32, detail: String },
    #[error("upload to {host} broke off after {sent} of {total} bytes: {detail}")]
    Upload { host: String, sent: u64, total: u64, detail: String },
}

/// How to reach a board.
#[derive(Debug, Clone)]
pub struct Ssh {
    /// `user@host` (or a `Host` alias from `~/.ssh/config`).
    pub destination: String,
    pub port: Option<u16>,
    pub identity: Option<PathBuf>,
    /// Extra `-o KEY=VALUE` options.
    pub options: Vec<String>,
}

impl Ssh {
    fn command(&self, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        // BatchMode: never prompt (a deploy is unattended); keep-alives: a dropped link is noticed
        // within 15 s instead of hanging.
        c.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=5"]);
        c.args(["-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]);
        if let Some(port) = self.port {
            c.args(["-p", &port.to_string()]);
        }
        if let Some(key) = &self.identity {
            c.arg("-i").arg(key).args(["-o", "IdentitiesOnly=yes"]);
        }
        for o in &self.options {
            c.args(["-o", o]);
        }
        c.arg("--").arg(&self.destination).arg(remote);
        c
    }

    /// Runs `remote` (a shell command line) and returns its standard output.
    pub fn run(&self, remote: &str) -> Result<String, SshError> {
        let out = self.command(remote).stdin(Stdio::null()).output().map_err(SshError::Spawn)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        self.check(out.status, &String::from_utf8_lossy(&out.stderr))?;
        Ok(stdout)
    }

    /// Streams `data` into `remote`'s standard input, at most `rate` bytes per second when set,
    /// calling `progress(sent, total)` along the way.
    pub fn upload(
        &self,
        remote: &str,
        data: &mut dyn Read,
        total: u64,
        rate: Option<u64>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), SshError> {
        let mut child = self
            .command(remote)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(SshError::Spawn)?;
        let mut stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut stdin = child.stdin.take().expect("piped");
        let (start, mut sent) = (Instant::now(), 0u64);
        let mut buf = vec![0u8; 64 * 1024];
        let broke = loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) => break Some(format!("reading the bundle: {e}")),
            };
            if let Err(e) = stdin.write_all(&buf[..n]) {
                break Some(e.to_string());
            }
            sent += n as u64;
            progress(sent, total);
            if let Some(rate) = rate.filter(|r| *r > 0) {
                let due = Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        };
        drop(stdin);
        let status = child.wait().map_err(SshError::Spawn)?;
        let stderr = errors.join().unwrap_or_default();
        let upload_error = |detail: String| SshError::Upload { host: self.destination.clone(), sent, total, detail };
        if let Some(detail) = broke {
            return Err(upload_error(format!("{detail}; {}", describe(status, &stderr))));
        }
        if !status.success() {
            return Err(upload_error(describe(status, &stderr)));
        }
        Ok(())
    }

    fn check(&self, status: ExitStatus, stderr: &str) -> Result<(), SshError> {
        match status.code() {
            Some(0) => Ok(()),
            // ssh's own failures (refused, auth, host key, dropped link) exit with 255.
            Some(255) | None => {
                Err(SshError::Connection { host: self.destination.clone(), detail: describe(status, stderr) })
            }
            Some(code) => Err(SshError::Remote { code, detail: last_lines(stderr) }),
        }
    }
}

fn describe(status: ExitStatus, stderr: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (_, Some(sig)) => format!("ssh was killed by signal {sig}"),
        (Some(code), _) => format!("ssh exited with status {code}"),
        _ => "ssh ended".into(),
    };
    let text = last_lines(stderr);
    if text.is_empty() {
        how
    } else {
        format!("{how}: {text}")
    }
}

fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" ")
}

/// `'it'\''s'`: one argument for the remote shell, whatever it holds.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoting_survives_the_shell() {
        for s in ["plain", "it's", "a b;rm -rf /", "$(x) `y` \"z\"", ""] {
            let out = std::process::Command::new("sh").arg("-c").arg(format!("printf %s {}", super::quote(s))).output();
            assert_eq!(String::from_utf8(out.unwrap().stdout).unwrap(), s);
        }
    }
}
