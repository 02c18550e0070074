//! The deploy sequence. Nothing the running service uses changes until the new release is
//! uploaded, verified against its manifest and has passed its health check on the board; the
//! switch is one rename of the `current` symlink; a release whose service does not come up
//! healthy is rolled back automatically.

use std::time::Instant;

use crate::bundle::BundleInfo;
use crate::ssh::{quote, Ssh, SshError};

/// The board-side steps, shared with the Mender update module ([`crate::mender::module`]).
pub(crate) const SCRIPT: &str = include_str!("remote.sh");

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("{step}: {source}")]
    Step { step: &'static str, source: SshError },
    #[error("cannot read the bundle: {0}")]
    Bundle(#[from] crate::bundle::BundleError),
    #[error("release {id} failed its health check on the board, nothing was switched ({current} is still current): {detail}")]
    HealthFailed { id: String, current: String, detail: String },
    #[error(
        "release {id} was switched to, but its service did not come up healthy ({detail}); rolled back to {previous}"
    )]
    RolledBack { id: String, previous: String, detail: String },
    #[error("release {id} was switched to, but its service did not come up healthy ({detail}), and rolling back failed: {rollback}")]
    RollbackFailed { id: String, detail: String, rollback: String },
}

/// Progress, for the terminal.
#[derive(Debug)]
pub enum Event<'a> {
    Step(&'a str),
    Upload { sent: u64, total: u64 },
    Note(String),
}

/// A board reached over ssh, and how Kestrel is installed there.
#[derive(Debug, Clone)]
pub struct Target {
    pub ssh: Ssh,
    pub root: String,
    /// Command prefix for board binaries (empty on real hardware).
    pub launcher: String,
    /// `systemd` or `pidfile`.
    pub service: String,
    /// Releases kept besides the current one (the previous one is never pruned).
    pub keep: u32,
    pub health_budget_s: u32,
    /// Upload rate limit in bytes per second.
    pub rate: Option<u64>,
}

#[derive(Debug)]
pub struct Report {
    pub id: String,
    pub previous: Option<String>,
    /// The health check's JSON line, as printed on the board.
    pub health: String,
    pub pruned: Vec<String>,
    /// Why pruning failed, if it did (the deploy itself succeeded).
    pub prune_error: Option<String>,
    pub seconds: f64,
}

impl Target {
    fn call(&self, step: &'static str, cmd: &str, args: &[&str]) -> Result<String, DeployError> {
        self.ssh.run(&self.remote(cmd, args)).map_err(|source| DeployError::Step { step, source: strip_prefix(source) })
    }

    fn remote(&self, cmd: &str, args: &[&str]) -> String {
        let mut line = format!("sh -c {} kestrel-remote", quote(SCRIPT));
        for a in [self.root.as_str(), &self.launcher, &self.service, cmd].iter().chain(args) {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line
    }

    /// Seconds the service gets to load its models and pass its own health check.
    fn ready_timeout(&self) -> String {
        (self.health_budget_s + 30).to_string()
    }

    pub fn deploy(&self, bundle: &BundleInfo, progress: &mut dyn FnMut(Event)) -> Result<Report, DeployError> {
        let start = Instant::now();
        let id = bundle.release.id.as_str();
        progress(Event::Step("connecting"));
        let current = value(&self.call("connecting", "prepare", &[])?, "current").filter(|c| !c.is_empty());
        progress(Event::Note(format!("current release: {}", current.as_deref().unwrap_or("none"))));

        progress(Event::Step("uploading"));
        let mut file = std::fs::File::open(&bundle.path)
            .map_err(|source| crate::bundle::BundleError::Read { path: bundle.path.clone(), source })?;
        let mut on_bytes = |sent, total| progress(Event::Upload { sent, total });
        self.ssh
            .upload(&self.remote("receive", &[id]), &mut file, bundle.bytes, self.rate, &mut on_bytes)
            .map_err(|source| DeployError::Step { step: "uploading", source })?;

        progress(Event::Step("verifying the manifest on the board"));
        if let Err(e) = self.call("verifying", "install", &[id, &bundle.sha256]) {
            // Killed after publishing releases/ID, the release would stay behind unused.
            let _ = self.call("discarding", "discard", &[id]);
            return Err(e);
        }

        progress(Event::Step("health check on the board"));
        let health = match self.call("health check", "health", &[id, &self.health_budget_s.to_string()]) {
            Ok(out) => out.trim().to_string(),
            Err(e) => {
                let _ = self.call("discarding", "discard", &[id]);
                let current = current.unwrap_or_else(|| "no release".into());
                return Err(DeployError::HealthFailed { id: id.into(), current, detail: detail(e) });
            }
        };

        progress(Event::Step("switching current"));
        if let Err(e) = self.call("switching", "activate", &[id]).and_then(|_| {
            progress(Event::Step("restarting the service"));
            self.call("restarting", "restart", &[])?;
            self.call("waiting", "ready", &[id, &self.ready_timeout()])
        }) {
            let detail = detail(e);
            progress(Event::Step("rolling back"));
            return Err(match self.revert(id) {
                Ok(previous) => DeployError::RolledBack { id: id.into(), previous, detail },
                Err(e) => DeployError::RollbackFailed { id: id.into(), detail, rollback: e.to_string() },
            });
        }

        // The release is live; a failed clean-up is reported, not a failed deploy (the next
        // deploy's `prepare` removes what a killed prune left).
        progress(Event::Step("pruning old releases"));
        let (pruned, prune_error) = match self.call("pruning", "prune", &[&self.keep.to_string()]) {
            Ok(out) => (out.lines().filter_map(|l| l.strip_prefix("removed=")).map(String::from).collect(), None),
            Err(e) => (Vec::new(), Some(detail(e))),
        };
        let seconds = start.elapsed().as_secs_f64();
        Ok(Report { id: id.into(), previous: current, health, pruned, prune_error, seconds })
    }

    /// Undoes the activation of `id`, wherever it stopped (before or after `current` moved, the
    /// service stopped or not): the release current before it serves again and `id` is removed.
    /// Returns that release.
    fn revert(&self, id: &str) -> Result<String, DeployError> {
        let out = self.call("rolling back", "undo", &[id, &self.ready_timeout()])?;
        Ok(value(&out, "to").filter(|t| !t.is_empty()).unwrap_or_else(|| "no release (none was current)".into()))
    }

    /// Switches back to the previous release and restarts the service on it; returns (from, to).
    pub fn rollback(&self, progress: &mut dyn FnMut(Event)) -> Result<(String, String), DeployError> {
        progress(Event::Step("rolling back"));
        let out = self.call("rolling back", "rollback", &[])?;
        let (from, to) = (value(&out, "from").unwrap_or_default(), value(&out, "to").unwrap_or_default());
        self.call("restarting", "restart", &[])?;
        self.call("waiting for the service", "ready", &[&to, &self.ready_timeout()])?;
        Ok((from, to))
    }

    /// `key=value` lines: current, previous, releases, service, service.* (the status file).
    pub fn status(&self) -> Result<Vec<(String, String)>, DeployError> {
        let out = self.call("status", "status", &[])?;
        Ok(out.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.into(), v.trim().into())).collect())
    }
}

fn value(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(String::from)
}

fn detail(e: DeployError) -> String {
    match e {
        DeployError::Step { source, .. } => source.to_string(),
        e => e.to_string(),
    }
}

/// The board script prefixes its messages with `kestrel-remote: `; the user knows where they are.
fn strip_prefix(e: SshError) -> SshError {
    match e {
        SshError::Remote { code, detail } => SshError::Remote { code, detail: detail.replace("kestrel-remote: ", "") },
        e => e,
    }
}
