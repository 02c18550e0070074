//! Fleet roll-outs through Mender: signed artifacts of a release bundle (made with Debian's
//! `mender-artifact`), and Kestrel's update module — the board script of [`crate::deploy`]
//! inside Mender's Update Module protocol, so a board can be updated by either — with its
//! per-board settings.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::board::Board;
use crate::bundle::BundleInfo;

/// Payload type of Kestrel artifacts: the name of the update module on the board.
pub const PAYLOAD_TYPE: &str = "kestrel";
/// Where the Mender client looks for update modules (fixed in the client).
pub const MODULES_DIR: &str = "/usr/share/mender/modules/v3";
const MODULE_TEMPLATE: &str = include_str!("mender-module.sh");

#[derive(Debug, thiserror::Error)]
pub enum MenderError {
    #[error("`mender-artifact` is not installed (Debian/Ubuntu: apt-get install mender-artifact)")]
    ToolMissing,
    #[error("mender-artifact failed: {0}")]
    Tool(String),
    #[error("board `{0}` has no `[mender] device_types` in its board file")]
    NoDeviceTypes(String),
    #[error("cannot read signing key `{path}`: {source}")]
    KeyRead { path: PathBuf, source: std::io::Error },
    #[error(
        "signing key `{key}` is in PKCS#8 form (`BEGIN PRIVATE KEY`), which mender-artifact refuses; \
         convert it once with: openssl pkey -in {key} -traditional -out {traditional}"
    )]
    Pkcs8Key { key: String, traditional: String },
    #[error("signing key `{0}` is not a PEM EC (`BEGIN EC PRIVATE KEY`) or RSA (`BEGIN RSA PRIVATE KEY`) private key")]
    NotAKey(PathBuf),
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// The update module: `mender-module.sh` with the board script embedded (one file to install).
pub fn module() -> String {
    MODULE_TEMPLATE.replace("@REMOTE_SH@", crate::deploy::SCRIPT.trim_end())
}

/// The module's settings for one board (`kestrel.conf` in Mender's data directory), from its
/// board definition; `root` overrides `install.root`.
pub fn settings(board: &Board, root: &str) -> String {
    format!(
        "# Kestrel update module settings for board `{}` (from boards/{}.toml)\n\
         root={root}\nlauncher={}\nservice={}\nkeep={}\nhealth_budget_s={}\n",
        board.name,
        board.name,
        board.install.launcher,
        board.install.service,
        board.install.keep,
        board.install.health_budget_s
    )
}

/// Writes `setup_dir/{kestrel, kestrel.conf, device_type}`: what a board needs once before its
/// first Mender update of a Kestrel release (README: Roll out to a fleet with Mender).
pub fn write_setup(board: &Board, root: &str, dir: &Path) -> Result<Vec<PathBuf>, MenderError> {
    let types = device_types(board)?;
    let files = [
        ("kestrel", module(), 0o755),
        ("kestrel.conf", settings(board, root), 0o644),
        ("device_type", format!("device_type={}\n", types[0]), 0o644),
    ];
    let mut written = vec![];
    for (name, text, mode) in files {
        let path = dir.join(name);
        let werr = |source| MenderError::Write { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(werr)?;
        std::fs::write(&path, text).map_err(werr)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(werr)?;
        written.push(path);
    }
    Ok(written)
}

fn device_types(board: &Board) -> Result<&[String], MenderError> {
    match &board.mender {
        Some(m) if !m.device_types.is_empty() => Ok(&m.device_types),
        _ => Err(MenderError::NoDeviceTypes(board.name.clone())),
    }
}

/// mender-artifact signs with SEC1 EC or PKCS#1 RSA keys only; OpenSSL 3 writes PKCS#8 by default.
pub fn check_key(path: &Path) -> Result<(), MenderError> {
    let text = std::fs::read_to_string(path).map_err(|source| MenderError::KeyRead { path: path.into(), source })?;
    let begin = text.lines().find(|l| l.starts_with("-----BEGIN ")).unwrap_or_default();
    match begin {
        "-----BEGIN EC PRIVATE KEY-----" | "-----BEGIN RSA PRIVATE KEY-----" => Ok(()),
        "-----BEGIN PRIVATE KEY-----" | "-----BEGIN ENCRYPTED PRIVATE KEY-----" => {
            let key = path.display().to_string();
            let traditional = path.with_extension("traditional.pem").display().to_string();
            Err(MenderError::Pkcs8Key { key, traditional })
        }
        _ => Err(MenderError::NotAKey(path.into())),
    }
}

/// Wraps the bundle in a Mender artifact (`module-image`, payload type `kestrel`, artifact name
/// = release id, the board's device types), signed with `sign_key` when given; written as
/// `out_dir/kestrel-<board>-<id>.mender`, atomically.
pub fn write_artifact(
    board: &Board,
    bundle: &BundleInfo,
    sign_key: Option<&Path>,
    out_dir: &Path,
) -> Result<PathBuf, MenderError> {
    let types = device_types(board)?;
    if let Some(key) = sign_key {
        check_key(key)?;
    }
    let path = out_dir.join(format!("kestrel-{}-{}.mender", board.name, bundle.release.id));
    let tmp = path.with_extension("mender.partial");
    std::fs::create_dir_all(out_dir).map_err(|source| MenderError::Write { path: out_dir.into(), source })?;
    let mut cmd = Command::new("mender-artifact");
    cmd.args(["write", "module-image", "--type", PAYLOAD_TYPE, "--artifact-name", &bundle.release.id]);
    for t in types {
        cmd.args(["--device-type", t]);
    }
    // The bundle is gzip already: a second compression costs time on the board for nothing.
    cmd.args(["--compression", "none", "--file"]).arg(&bundle.path).arg("--output-path").arg(&tmp);
    if let Some(key) = sign_key {
        cmd.arg("--key").arg(key);
    }
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => MenderError::ToolMissing,
        _ => MenderError::Tool(e.to_string()),
    })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(MenderError::Tool(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    std::fs::rename(&tmp, &path).map_err(|source| MenderError::Write { path: path.clone(), source })?;
    Ok(path)
}
