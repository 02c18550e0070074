//! A release bundle: one `.tar.gz` holding the binary, the models, the health check, a systemd
//! unit, `release.json` and `MANIFEST.sha256` (the `sha256sum` format, so the board checks it with
//! `sha256sum -c` before anything in it runs).
//!
//! ```text
//! bin/kestrel                 the board's binary (stripped)
//! models/<name>/<files>       each model with its kestrel.toml
//! health/<image>              the health-check image
//! health.json                 model, image, expected result, time budget
//! kestrel.service             systemd unit for boards with `install.service = "systemd"`
//! mender/kestrel              the Mender update module (the board steps of `kestrel deploy`)
//! release.json                id, board, version, runtime settings
//! MANIFEST.sha256             SHA-256 of every file above
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::board::Board;

pub const MANIFEST: &str = "MANIFEST.sha256";
pub const RELEASE: &str = "release.json";
pub const HEALTH: &str = "health.json";
/// Largest `release.json` or `health.json` read (a few hundred bytes; the expected result of a
/// detector with many boxes a few KiB).
const MAX_JSON_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write bundle `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("`{0}` is not a Kestrel bundle: {1}")]
    NotABundle(PathBuf, String),
    #[error("bundle path `{0}` must be relative, without `..`")]
    BadPath(String),
    #[error("a bundle needs at least one model")]
    NoModel,
    #[error("`{file}` is malformed: {detail}")]
    Malformed { file: &'static str, detail: String },
    #[error("`{tool}` failed on `{path}`: {detail}")]
    Strip { tool: String, path: PathBuf, detail: String },
}

/// A model going into the bundle: its name (folder under `models/`) and files.
#[derive(Debug, Clone)]
pub struct BundleModel {
    pub name: String,
    pub files: Vec<PathBuf>,
}

/// What the board checks before it switches to a release, and what the service checks at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthSpec {
    /// Bundle-relative path of the model (`models/<name>/<file>`).
    pub model: String,
    /// Bundle-relative path of the image (`health/<file>`).
    pub image: String,
    /// The decoded result the host computed for this model and image.
    pub expected: serde_json::Value,
    pub budget_s: u32,
}

/// `release.json`: what a release is, read back by `deploy --bundle` and by the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub board: String,
    pub target: String,
    pub kestrel_version: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub backend: String,
    pub threads: u32,
    pub models: Vec<String>,
}

pub struct BundleSpec<'a> {
    pub board: &'a Board,
    pub binary: PathBuf,
    pub models: Vec<BundleModel>,
    pub health_image: PathBuf,
    /// Everything in [`HealthSpec`] but the paths, which the bundle decides.
    pub health_expected: serde_json::Value,
    pub backend: String,
    pub threads: u32,
    pub kestrel_version: String,
    /// Install root on the board (the unit's paths), usually `board.install.root`.
    pub root: String,
    /// User the systemd service runs as (it must own `root`); root when `None`.
    pub service_user: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BundleInfo {
    pub path: PathBuf,
    pub release: Release,
    pub bytes: u64,
    /// SHA-256 of the bundle file, checked on the board after the upload.
    pub sha256: String,
    pub files: usize,
}

enum Source {
    File(PathBuf),
    Bytes(Vec<u8>),
}

struct Entry {
    path: String,
    source: Source,
    executable: bool,
}

impl Entry {
    fn bytes(&self) -> Result<Vec<u8>, BundleError> {
        match &self.source {
            Source::File(p) => std::fs::read(p).map_err(|source| BundleError::Read { path: p.clone(), source }),
            Source::Bytes(b) => Ok(b.clone()),
        }
    }
}

/// Writes the bundle into `out_dir` as `kestrel-<board>-<id>.tar.gz` (atomically).
pub fn create(spec: &BundleSpec, out_dir: &Path) -> Result<BundleInfo, BundleError> {
    let file_name = |p: &Path| p.file_name().and_then(|n| n.to_str()).map(String::from).unwrap_or_default();
    let mut entries =
        vec![Entry { path: "bin/kestrel".into(), source: Source::File(spec.binary.clone()), executable: true }];
    let mut model_names = vec![];
    for m in &spec.models {
        model_names.push(m.name.clone());
        for f in &m.files {
            let path = format!("models/{}/{}", m.name, file_name(f));
            entries.push(Entry { path, source: Source::File(f.clone()), executable: false });
        }
    }
    let first = spec.models.first().and_then(|m| m.files.first()).ok_or(BundleError::NoModel)?;
    let health_image = format!("health/{}", file_name(&spec.health_image));
    entries.push(Entry {
        path: health_image.clone(),
        source: Source::File(spec.health_image.clone()),
        executable: false,
    });
    let health = HealthSpec {
        model: format!("models/{}/{}", spec.models[0].name, file_name(first)),
        image: health_image,
        expected: spec.health_expected.clone(),
        budget_s: spec.board.install.health_budget_s,
    };
    entries.push(json_entry(HEALTH, &health));
    entries.push(Entry {
        path: "kestrel.service".into(),
        source: Source::Bytes(unit(spec).into_bytes()),
        executable: false,
    });
    entries.push(Entry {
        path: "mender/kestrel".into(),
        source: Source::Bytes(crate::mender::module().into_bytes()),
        executable: true,
    });
    // Two models from one folder share its kestrel.toml: it goes in once. Two different files
    // for one path would make the manifest ambiguous.
    let mut unique: Vec<Entry> = Vec::with_capacity(entries.len());
    for e in entries {
        check_path(&e.path)?;
        match unique.iter().find(|u| u.path == e.path) {
            None => unique.push(e),
            Some(u) if matches!((&u.source, &e.source), (Source::File(a), Source::File(b)) if a == b) => {}
            Some(_) => return Err(BundleError::BadPath(format!("{} (two different files for it)", e.path))),
        }
    }
    let mut entries = unique;

    // Content digests first: the release id is derived from them, and release.json holds the id.
    let mut manifest = String::new();
    let mut contents = Vec::with_capacity(entries.len());
    for e in &entries {
        let bytes = e.bytes()?;
        manifest.push_str(&format!("{}  {}\n", hex(&Sha256::digest(&bytes)), e.path));
        contents.push(bytes);
    }
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let release = Release {
        id: format!("{}-{}", utc_stamp(created), &hex(&Sha256::digest(manifest.as_bytes()))[..8]),
        board: spec.board.name.clone(),
        target: spec.board.target.clone(),
        kestrel_version: spec.kestrel_version.clone(),
        created,
        backend: spec.backend.clone(),
        threads: spec.threads,
        models: model_names,
    };
    let release_entry = json_entry(RELEASE, &release);
    let release_bytes = release_entry.bytes()?;
    manifest.push_str(&format!("{}  {}\n", hex(&Sha256::digest(&release_bytes)), RELEASE));
    entries.push(release_entry);
    contents.push(release_bytes);

    let path = out_dir.join(format!("kestrel-{}-{}.tar.gz", spec.board.name, release.id));
    let tmp = path.with_extension("gz.partial");
    let werr = |source| BundleError::Write { path: path.clone(), source };
    std::fs::create_dir_all(out_dir).map_err(werr)?;
    let file = std::fs::File::create(&tmp).map_err(werr)?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
    let mut append = |name: &str, data: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(created);
        header.set_cksum();
        tar.append_data(&mut header, name, data)
    };
    for (e, bytes) in entries.iter().zip(&contents) {
        append(&e.path, bytes, if e.executable { 0o755 } else { 0o644 }).map_err(werr)?;
    }
    append(MANIFEST, manifest.as_bytes(), 0o644).map_err(werr)?;
    let file = tar.into_inner().and_then(|gz| gz.finish()).map_err(werr)?;
    file.sync_all().map_err(werr)?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(werr)?;
    let (sha256, bytes) = file_sha256(&path)?;
    Ok(BundleInfo { path, release, bytes, sha256, files: entries.len() + 1 })
}

/// Reads `release.json` back from a bundle file, and the bundle's SHA-256 and size.
pub fn open(path: &Path) -> Result<BundleInfo, BundleError> {
    let not = |why: String| BundleError::NotABundle(path.into(), why);
    let rerr = |source| BundleError::Read { path: path.into(), source };
    let file = std::fs::File::open(path).map_err(rerr)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut release = None;
    let mut files = 0;
    for entry in archive.entries().map_err(|e| not(e.to_string()))? {
        let entry = entry.map_err(|e| not(e.to_string()))?;
        files += 1;
        let name = entry.path().map_err(|e| not(e.to_string()))?.to_string_lossy().into_owned();
        check_path(&name)?;
        if name == RELEASE {
            let mut text = Vec::new();
            entry.take(MAX_JSON_BYTES + 1).read_to_end(&mut text).map_err(|e| not(e.to_string()))?;
            release = Some(parse_release(&text).map_err(|e| not(e.to_string()))?);
        }
    }
    let release = release.ok_or_else(|| not(format!("no {RELEASE}")))?;
    let (sha256, bytes) = file_sha256(path)?;
    Ok(BundleInfo { path: path.into(), release, bytes, sha256, files })
}

/// `release.json`'s contents, checked: the id names folders and links on the board, so it is
/// what the board script accepts (letters, digits, `T._-`, not starting with a dot).
pub fn parse_release(bytes: &[u8]) -> Result<Release, BundleError> {
    let release: Release = parse_json(RELEASE, bytes)?;
    let id_ok = !release.id.is_empty()
        && !release.id.starts_with('.')
        && release.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"T._-".contains(&b));
    if !id_ok {
        return Err(BundleError::Malformed { file: RELEASE, detail: format!("bad release id {:?}", release.id) });
    }
    Ok(release)
}

/// `health.json`'s contents, checked: the model and image it names lie inside the release.
pub fn parse_health(bytes: &[u8]) -> Result<HealthSpec, BundleError> {
    let health: HealthSpec = parse_json(HEALTH, bytes)?;
    for p in [&health.model, &health.image] {
        check_path(p).map_err(|e| BundleError::Malformed { file: HEALTH, detail: e.to_string() })?;
    }
    Ok(health)
}

/// An installed release's `release.json` and `health.json`, as the board's `kestrel health` and
/// `kestrel serve` read them.
pub fn read_release(dir: &Path) -> Result<(Release, HealthSpec), BundleError> {
    let read = |name: &str| {
        let path = dir.join(name);
        let rerr = |source| BundleError::Read { path: path.clone(), source };
        let mut bytes = Vec::new();
        std::fs::File::open(&path).and_then(|f| f.take(MAX_JSON_BYTES + 1).read_to_end(&mut bytes)).map_err(rerr)?;
        Ok::<_, BundleError>(bytes)
    };
    Ok((parse_release(&read(RELEASE)?)?, parse_health(&read(HEALTH)?)?))
}

fn parse_json<T: serde::de::DeserializeOwned>(file: &'static str, bytes: &[u8]) -> Result<T, BundleError> {
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(BundleError::Malformed { file, detail: format!("larger than {MAX_JSON_BYTES} bytes") });
    }
    serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed { file, detail: e.to_string() })
}

/// A copy of `binary` without symbols (a release build with line tables is 8× larger), made with
/// `<prefix>strip`; `None` when that tool is not installed.
pub fn stripped_copy(binary: &Path, prefix: &str, dir: &Path) -> Result<Option<PathBuf>, BundleError> {
    let tool = format!("{prefix}strip");
    let out = dir.join("kestrel.stripped");
    std::fs::create_dir_all(dir).map_err(|source| BundleError::Write { path: dir.into(), source })?;
    let run = std::process::Command::new(&tool).arg("-o").arg(&out).arg(binary).output();
    match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BundleError::Strip { tool, path: binary.into(), detail: e.to_string() }),
        Ok(o) if !o.status.success() => Err(BundleError::Strip {
            tool,
            path: binary.into(),
            detail: String::from_utf8_lossy(&o.stderr).trim().into(),
        }),
        Ok(_) => Ok(Some(out)),
    }
}

pub fn file_sha256(path: &Path) -> Result<(String, u64), BundleError> {
    let rerr = |source| BundleError::Read { path: path.into(), source };
    let mut file = std::fs::File::open(path).map_err(rerr)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(rerr)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

fn json_entry<T: Serialize>(path: &str, value: &T) -> Entry {
    let mut bytes = serde_json::to_vec_pretty(value).expect("plain data serializes");
    bytes.push(b'\n');
    Entry { path: path.into(), source: Source::Bytes(bytes), executable: false }
}

fn check_path(p: &str) -> Result<(), BundleError> {
    let ok = !p.is_empty()
        && !p.starts_with('/')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
        && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(BundleError::BadPath(p.into()))
    }
}

/// The systemd unit; a service that keeps failing its start-up check stops after 3 tries a minute
/// (a first deploy has nothing to roll back to) instead of restarting forever.
fn unit(spec: &BundleSpec) -> String {
    let root = &spec.root;
    let user = spec.service_user.as_ref().map(|u| format!("User={u}\n")).unwrap_or_default();
    format!(
        "[Unit]\nDescription=Kestrel perception service ({board})\nAfter=network.target\n\
         StartLimitIntervalSec=60\nStartLimitBurst=3\n\n\
         [Service]\n{user}ExecStart={root}/current/bin/kestrel serve {root}/current --state {root}/state\n\
         Restart=on-failure\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n",
        board = spec.board.name
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

use std::fmt::Write as _;

/// `20261129T093012Z` for Unix time `secs`: release ids sort by time.
pub fn utc_stamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_944_612), "20261129T093012Z");
    }

    /// Two models from one folder: their kestrel.toml goes in once; the manifest covers every
    /// file; release.json reads back.
    #[test]
    fn a_bundle_lists_each_file_once_in_its_manifest() {
        let dir = std::env::temp_dir().join(format!("kestrel-bundle-test-{}", std::process::id()));
        let models = dir.join("m");
        std::fs::create_dir_all(&models).unwrap();
        for (name, text) in [("a.onnx", "A"), ("b.onnx", "B"), ("kestrel.toml", "cfg"), ("face.png", "png")] {
            std::fs::write(models.join(name), text).unwrap();
        }
        std::fs::write(dir.join("kestrel"), "binary").unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards/x86-64-linux.toml");
        let board = Board::load(&root).unwrap();
        let config = models.join("kestrel.toml");
        let spec = BundleSpec {
            board: &board,
            binary: dir.join("kestrel"),
            models: vec![
                BundleModel { name: "m".into(), files: vec![models.join("a.onnx"), config.clone()] },
                BundleModel { name: "m".into(), files: vec![models.join("b.onnx"), config] },
            ],
            health_image: models.join("face.png"),
            health_expected: serde_json::json!({ "classes": [] }),
            backend: "cpu".into(),
            threads: 1,
            kestrel_version: "0".into(),
            root: "/opt/kestrel".into(),
            service_user: Some("robot".into()),
        };
        let info = create(&spec, &dir.join("out")).unwrap();
        let back = open(&info.path).unwrap();
        assert_eq!(
            (back.release.id.as_str(), back.files, back.sha256.as_str()),
            (info.release.id.as_str(), 10, info.sha256.as_str())
        );
        let file = std::fs::File::open(&info.path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut manifest = String::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(MANIFEST) {
                e.read_to_string(&mut manifest).unwrap();
            }
        }
        let listed: Vec<&str> = manifest.lines().filter_map(|l| l.split("  ").nth(1)).collect();
        assert_eq!(
            listed,
            [
                "bin/kestrel",
                "models/m/a.onnx",
                "models/m/kestrel.toml",
                "models/m/b.onnx",
                "health/face.png",
                "health.json",
                "kestrel.service",
                "mender/kestrel",
                RELEASE
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bundle_paths_stay_inside() {
        for bad in ["", "/etc/passwd", "a/../b", "./a", "a//b", "a b", "a\\b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        check_path("models/fashion-cnn/model.onnx").unwrap();
    }

    #[test]
    fn release_and_health_files_are_checked() {
        let release = |id: &str| {
            format!(
                r#"{{"id":"{id}","board":"b","target":"t","kestrel_version":"0","created":0,"backend":"cpu","threads":1,"models":[]}}"#
            )
        };
        assert_eq!(parse_release(release("20261201T120000Z-0a1b2c3d").as_bytes()).unwrap().threads, 1);
        for bad in ["", "../x", ".hidden", "a b", "a/b"] {
            let e = parse_release(release(bad).as_bytes()).unwrap_err().to_string();
            assert!(e.contains("bad release id"), "{bad}: {e}");
        }
        let health =
            |model: &str| format!(r#"{{"model":"{model}","image":"health/a.png","expected":{{}},"budget_s":5}}"#);
        assert_eq!(parse_health(health("models/m/a.onnx").as_bytes()).unwrap().budget_s, 5);
        let e = parse_health(health("../../etc/passwd").as_bytes()).unwrap_err().to_string();
        assert!(e.contains("`health.json` is malformed") && e.contains("without `..`"), "{e}");
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_JSON_BYTES as usize));
        assert!(parse_health(big.as_bytes()).unwrap_err().to_string().contains("larger than"));
        assert!(parse_release(b"{").unwrap_err().to_string().contains("`release.json` is malformed"));
    }
}
