//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kestrel_engine::Tensor;
use kestrel_onnx::Limits;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads an ONNX TensorProto file (`input_0.pb`, …) into an engine tensor.
pub fn read_pb(path: &Path) -> Result<Tensor> {
    let proto = kestrel_onnx::load_tensor(path, &Limits::default())?;
    let raw = kestrel_onnx::tensor_raw_le(&proto)?;
    Tensor::from_le_bytes(raw.elem.code, raw.dims, &raw.bytes).with_context(|| format!("{}", path.display()))
}

/// Reads a gzip-compressed TensorProto file (`output_0.pb.gz`: sparse decoder fixtures).
pub fn read_pb_gz(path: &Path) -> Result<Tensor> {
    use std::io::Read;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?).read_to_end(&mut bytes)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = std::env::temp_dir().join(format!("kestrel-{}-{name}.pb", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    let t = read_pb(&tmp);
    std::fs::remove_file(&tmp).ok();
    t
}

/// Numbered `prefix_N.pb` files of a folder, in order.
pub fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    (0..).map(|i| dir.join(format!("{prefix}_{i}.pb"))).take_while(|p| p.exists()).collect()
}

/// Compares element-wise: |a - b| <= atol + rtol * |b|, NaN equal to NaN, same shape and type.
/// Returns a description of the first mismatch.
pub fn compare(got: &Tensor, want: &Tensor, atol: f64, rtol: f64) -> Result<(), String> {
    if got.shape != want.shape {
        return Err(format!("shape {:?}, expected {:?}", got.shape, want.shape));
    }
    if got.dtype_name() != want.dtype_name() {
        return Err(format!("type {}, expected {}", got.dtype_name(), want.dtype_name()));
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    if g.len() != w.len() {
        return Err(format!("{} values, expected {}", g.len(), w.len()));
    }
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            return Err(format!("element {i}: {a}, expected {b}"));
        }
    }
    Ok(())
}

/// Runs the `kestrel` binary from the repo root.
pub fn kestrel(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("running kestrel")
}

/// Runs `kestrel`, requires success, returns stdout.
pub fn kestrel_ok(args: &[&str]) -> String {
    let out = kestrel(args);
    assert!(out.status.success(), "kestrel {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Records whether a check really ran here or was skipped (and why): on stderr, and as a line
/// `check<TAB>tested|skipped<TAB>detail` appended to `$KESTREL_CHECK_LOG` when set, which
/// `scripts/test.sh` summarizes (kestrel-micro's kernel tests write the same lines).
pub fn record_check(check: &str, tested: bool, detail: &str) {
    use std::io::Write;
    let status = if tested { "tested" } else { "skipped" };
    eprintln!("{check}: {status}: {detail}");
    if let Some(path) = std::env::var_os("KESTREL_CHECK_LOG") {
        let line = format!("{check}\t{status}\t{detail} ({})\n", std::env::consts::ARCH);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        file.and_then(|mut f| f.write_all(line.as_bytes())).expect("appending to $KESTREL_CHECK_LOG");
    }
}

/// The emulated Orin Nano's `kestrel` (aarch64, with `camera` and `ros2`, as its board definition
/// builds it and as `tests/aarch64_qemu.rs` does: one build),
/// built once per test binary (a deploy's own cargo call then finds it fresh).
pub fn board_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = repo().join("target/cross");
            let out = std::process::Command::new("cargo")
                .args([
                    "build",
                    "--release",
                    "--no-default-features",
                    "--features",
                    "camera,ros2",
                    "--bin",
                    "kestrel",
                    "--target",
                    "aarch64-unknown-linux-gnu",
                ])
                .env("CARGO_TARGET_DIR", &dir)
                .current_dir(repo())
                .output()
                .expect("running cargo");
            assert!(out.status.success(), "cross build failed: {}", String::from_utf8_lossy(&out.stderr));
            dir.join("aarch64-unknown-linux-gnu").join("release/kestrel")
        })
        .clone()
}

/// Rewrites a release bundle in place, passing each member (in order, `MANIFEST.sha256` last) to
/// `edit`: the tests' forged and tampered releases.
pub fn rewrite_bundle(bundle: &Path, edit: &mut dyn FnMut(&str, &mut Vec<u8>)) {
    use std::io::Read;
    let file = std::fs::File::open(bundle).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = vec![];
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let (header, name) = (e.header().clone(), e.path().unwrap().to_string_lossy().into_owned());
        let mut data = vec![];
        e.read_to_end(&mut data).unwrap();
        edit(&name, &mut data);
        entries.push((header, name, data));
    }
    let out = std::fs::File::create(bundle).unwrap();
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(out, flate2::Compression::fast()));
    for (mut header, name, data) in entries {
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
}

/// Installs Kestrel's Mender update module where the client looks for it (one for every board
/// on the machine), atomically, and the fallback artifact_info the client reads until its
/// database names an artifact. Needs root, as CI runs.
pub fn install_mender_module(module: &Path) {
    let dir = Path::new(kestrel_deploy::mender::MODULES_DIR);
    std::fs::create_dir_all(dir)
        .expect("creating /usr/share/mender/modules/v3 (run as root, or install mender-client)");
    let tmp = dir.join(format!(".kestrel.{}.{:?}", std::process::id(), std::thread::current().id()));
    std::fs::copy(module, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("kestrel")).unwrap();
    if !Path::new("/etc/mender/artifact_info").exists() {
        std::fs::create_dir_all("/etc/mender").unwrap();
        std::fs::write("/etc/mender/artifact_info", "artifact_name=none\n").unwrap();
    }
}
