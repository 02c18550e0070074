//! Board definitions: `boards/<name>.toml`, one file per board, checked field by field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Cargo features a board may be built with: the CUDA backend's two bindings, `camera`
/// (`kestrel watch`, linked against the board's GStreamer) and `ros2` (watch on a ROS 2 graph).
pub const BUILD_FEATURES: [&str; 4] = ["cuda", "cuda-12", "camera", "ros2"];
/// Targets Kestrel is built and tested for.
pub const TARGETS: [&str; 3] = ["aarch64-unknown-linux-gnu", "aarch64-unknown-linux-musl", "x86_64-unknown-linux-gnu"];
const BACKENDS: [&str; 3] = ["cpu", "cuda", "auto"];
const SERVICE_MANAGERS: [&str; 2] = ["systemd", "pidfile"];

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("cannot read board file `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Syntax errors, missing, unknown and mistyped fields: toml's message names the field and line.
    #[error("board file `{path}`: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("board file `{path}`: field `{field}`: {reason}")]
    Invalid { path: PathBuf, field: &'static str, reason: String },
    #[error("unknown board `{name}` (known: {})", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("no board definitions in `{0}`")]
    NoBoards(PathBuf),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Must equal the file's stem, so `--board NAME` finds exactly this file.
    pub name: String,
    pub description: String,
    /// Rust target triple of the board's CPU.
    pub target: String,
    pub cpu: Cpu,
    pub memory: Memory,
    /// Absent on boards without an NVIDIA GPU.
    pub gpu: Option<Gpu>,
    pub build: Build,
    pub runtime: Runtime,
    pub install: Install,
    /// Absent on boards not updated through Mender.
    pub mender: Option<Mender>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mender {
    /// Mender `device_type`s an artifact for this board installs on (the Yocto MACHINE names
    /// meta-mender-tegra uses for Jetsons).
    pub device_types: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub model: String,
    pub cores: u32,
    /// Instruction-set extensions the kernels may rely on (`neon`, `dotprod`, `avx2`, …).
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// RAM in MiB (on a Jetson, shared by CPU and GPU).
    pub mib: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    pub name: String,
    /// `MAJOR.MINOR`, e.g. `8.7` for Orin (sm_87).
    pub compute_capability: String,
    /// CUDA version the board's JetPack ships.
    pub cuda: String,
    pub jetpack: Option<String>,
    /// Whether Kestrel's CUDA backend runs on this GPU; when not, `note` says why.
    pub supported: bool,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Cargo features of the `kestrel` binary for this board (`cuda` or `cuda-12`, `camera`).
    pub features: Vec<String>,
}

impl Build {
    /// The CUDA binding this board is built with, if any.
    pub fn cuda_feature(&self) -> Option<&str> {
        self.features.iter().map(String::as_str).find(|f| f.starts_with("cuda"))
    }

    pub fn has_camera(&self) -> bool {
        self.features.iter().any(|f| f == "camera" || f == "ros2")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Backend the service runs with: cpu, cuda or auto.
    pub backend: String,
    pub threads: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    /// Absolute path on the board holding `releases/`, `current`, `previous` and `state/`.
    pub root: String,
    /// `systemd` (the unit shipped in the bundle; needs passwordless sudo for systemctl) or
    /// `pidfile` (the service started in the background, its pid in `run/kestrel.pid`; no root).
    pub service: String,
    /// Releases kept besides the current one.
    pub keep: u32,
    /// Seconds the health check may take on the board.
    pub health_budget_s: u32,
    /// Command prefix that starts board binaries: empty on real hardware; an emulated board
    /// uses `qemu-aarch64 -cpu max`.
    #[serde(default)]
    pub launcher: String,
}

impl Board {
    /// Reads and checks one board file.
    pub fn load(path: &Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|source| BoardError::Io { path: path.into(), source })?;
        Board::parse(&text, path)
    }

    /// Parses and checks a board file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Board, BoardError> {
        let board: Board = toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start.min(text.len()));
            let line = text[..at].matches('\n').count() + 1;
            let source = text.lines().nth(line - 1).unwrap_or_default().trim();
            BoardError::Parse { path: path.into(), message: format!("line {line} `{source}`: {}", e.message()) }
        })?;
        board.validate(path)?;
        Ok(board)
    }

    /// Finds `name` (a board name, or a path to a `.toml` file) among the definitions in `dir`.
    pub fn find(name: &str, dir: &Path) -> Result<Board, BoardError> {
        if name.ends_with(".toml") {
            return Board::load(Path::new(name));
        }
        let path = dir.join(format!("{name}.toml"));
        if !path.is_file() {
            let known = list_files(dir)?.iter().filter_map(|p| p.file_stem()?.to_str().map(String::from)).collect();
            return Err(BoardError::Unknown { name: name.into(), known });
        }
        Board::load(&path)
    }

    /// Every definition in `dir`, by name; the first malformed file is an error.
    pub fn load_all(dir: &Path) -> Result<Vec<Board>, BoardError> {
        let files = list_files(dir)?;
        if files.is_empty() {
            return Err(BoardError::NoBoards(dir.into()));
        }
        files.iter().map(|p| Board::load(p)).collect()
    }

    /// `aarch64-linux-gnu-` for the aarch64 target: the prefix of Debian's cross binutils.
    pub fn binutils_prefix(&self) -> Option<String> {
        let arch = self.target.split('-').next()?;
        (self.target != host_target()).then(|| format!("{arch}-linux-gnu-"))
    }

    fn validate(&self, path: &Path) -> Result<(), BoardError> {
        let bad = |field: &'static str, reason: String| Err(BoardError::Invalid { path: path.into(), field, reason });
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if self.name != stem {
            return bad("name", format!("`{}` must equal the file name `{stem}`", self.name));
        }
        if !TARGETS.contains(&self.target.as_str()) {
            return bad("target", format!("`{}` is not one of {}", self.target, TARGETS.join(", ")));
        }
        if self.cpu.cores == 0 || self.cpu.cores > 1024 {
            return bad("cpu.cores", format!("{} is not a core count", self.cpu.cores));
        }
        if self.memory.mib < 64 {
            return bad("memory.mib", format!("{} MiB is too little to run Kestrel", self.memory.mib));
        }
        if let Some(gpu) = &self.gpu {
            let cc: Vec<&str> = gpu.compute_capability.split('.').collect();
            if cc.len() != 2 || cc.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
                return bad("gpu.compute_capability", format!("`{}` is not MAJOR.MINOR", gpu.compute_capability));
            }
            if !gpu.supported && gpu.note.is_none() {
                return bad("gpu.note", "an unsupported GPU needs a note saying why".into());
            }
        }
        if let Some(f) = self.build.features.iter().find(|f| !BUILD_FEATURES.contains(&f.as_str())) {
            return bad("build.features", format!("`{f}` is not one of {}", BUILD_FEATURES.join(", ")));
        }
        let gpu_supported = self.gpu.as_ref().is_some_and(|g| g.supported);
        if self.build.cuda_feature().is_some() && !gpu_supported {
            return bad("build.features", "CUDA features need a `[gpu]` with `supported = true`".into());
        }
        if self.build.has_camera() && self.target.ends_with("-musl") {
            return bad("build.features", "`camera` links GStreamer dynamically; a static musl build cannot".into());
        }
        if !BACKENDS.contains(&self.runtime.backend.as_str()) {
            return bad("runtime.backend", format!("`{}` is not one of {}", self.runtime.backend, BACKENDS.join(", ")));
        }
        if self.runtime.backend == "cuda" && self.build.cuda_feature().is_none() {
            return bad("runtime.backend", "`cuda` needs a CUDA feature in build.features".into());
        }
        if self.runtime.threads == 0 || self.runtime.threads > self.cpu.cores {
            return bad("runtime.threads", format!("{} is not within 1..={}", self.runtime.threads, self.cpu.cores));
        }
        if !self.install.root.starts_with('/') || self.install.root.contains("..") || self.install.root.len() < 2 {
            return bad("install.root", format!("`{}` must be an absolute path without `..`", self.install.root));
        }
        if !SERVICE_MANAGERS.contains(&self.install.service.as_str()) {
            return bad(
                "install.service",
                format!("`{}` is not one of {}", self.install.service, SERVICE_MANAGERS.join(", ")),
            );
        }
        if self.install.keep == 0 || self.install.keep > 100 {
            return bad("install.keep", format!("{} is not within 1..=100", self.install.keep));
        }
        if let Some(m) = &self.mender {
            let ok = |t: &String| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if m.device_types.is_empty() {
                return bad("mender.device_types", "list at least one device type".into());
            }
            if let Some(t) = m.device_types.iter().find(|t| !ok(t)) {
                return bad("mender.device_types", format!("`{t}` is not letters, digits, `.`, `_`, `-`"));
            }
        }
        if self.install.health_budget_s == 0 || self.install.health_budget_s > 3600 {
            return bad("install.health_budget_s", format!("{} is not within 1..=3600", self.install.health_budget_s));
        }
        Ok(())
    }
}

/// The triple this binary was built for (Linux only: boards run Linux).
pub fn host_target() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

fn list_files(dir: &Path) -> Result<Vec<PathBuf>, BoardError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BoardError::Io { path: dir.into(), source })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "b"
description = "test board"
target = "aarch64-unknown-linux-gnu"
[cpu]
model = "Cortex-A78AE"
cores = 6
features = ["neon"]
[memory]
mib = 8192
[gpu]
name = "Ampere"
compute_capability = "8.7"
cuda = "12.6"
supported = true
[build]
features = ["cuda-12"]
[runtime]
backend = "auto"
threads = 6
[install]
root = "/opt/kestrel"
service = "systemd"
keep = 3
health_budget_s = 30
"#;

    fn load(text: &str) -> Result<Board, BoardError> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kestrel-board-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.toml");
        std::fs::write(&path, text).unwrap();
        let r = Board::load(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn a_good_board_loads() {
        let b = load(GOOD).unwrap();
        assert_eq!((b.cpu.cores, b.runtime.threads), (6, 6));
        assert_eq!(b.binutils_prefix().as_deref(), Some("aarch64-linux-gnu-").filter(|_| host_target() != b.target));
    }

    /// Every kind of mistake names the field it is about.
    #[test]
    fn errors_name_the_field() {
        let cases = [
            (GOOD.replace("cores = 6", "cores = 0"), "cpu.cores"),
            (GOOD.replace("cores = 6", "cores = \"six\""), "cores"),
            (GOOD.replace("cores = 6", "corez = 6"), "corez"),
            (GOOD.replace("mib = 8192\n", ""), "mib"),
            (GOOD.replace("\"8.7\"", "\"sm_87\""), "gpu.compute_capability"),
            (GOOD.replace("[\"cuda-12\"]", "[\"cuda-11\"]"), "build.features"),
            (GOOD.replace("\"auto\"", "\"tpu\""), "runtime.backend"),
            (GOOD.replace("threads = 6", "threads = 7"), "runtime.threads"),
            (GOOD.replace("\"/opt/kestrel\"", "\"opt/kestrel\""), "install.root"),
            (GOOD.replace("\"systemd\"", "\"upstart\""), "install.service"),
            (GOOD.replace("keep = 3", "keep = 0"), "install.keep"),
            (GOOD.replace("name = \"b\"", "name = \"c\""), "name"),
            (GOOD.replace("target = \"aarch64-unknown-linux-gnu\"", "target = \"mips\""), "target"),
            (GOOD.replace("supported = true", "supported = false"), "gpu.note"),
            (GOOD.replace("supported = true", "supported = false\nnote = \"CUDA 11\""), "build.features"),
            (
                GOOD.replace("[\"cuda-12\"]", "[\"camera\"]").replace("backend = \"auto\"", "backend = \"cuda\""),
                "runtime.backend",
            ),
            (GOOD.replace("[\"cuda-12\"]", "[\"camera\"]").replace("linux-gnu", "linux-musl"), "build.features"),
        ];
        for (text, field) in cases {
            let err = load(&text).expect_err(field).to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
    }
}
