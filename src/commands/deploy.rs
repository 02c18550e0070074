//! `kestrel boards`, `kestrel bundle`, `kestrel mender-setup` and `kestrel deploy`: the host side
//! of shipping to a board.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kestrel_deploy::board::{host_target, Board};
use kestrel_deploy::bundle::{self, BundleInfo, BundleModel, BundleSpec};
use kestrel_deploy::deploy::{Event, Target};
use kestrel_deploy::ssh::Ssh;

use super::run::ImageModel;
use crate::cli::{
    BoardsArgs, BundleArgs, BundleFormat, BundleOptions, ConfigArgs, DeployArgs, EngineArgs, MenderSetupArgs,
};
use crate::models::{load_model, models_dir};

/// `--boards-dir`, else `$KESTREL_BOARDS`, else `./boards`, else the source tree's.
fn boards_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("KESTREL_BOARDS") {
        return dir.into();
    }
    let local = PathBuf::from("boards");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("boards")
}

pub fn boards(args: &BoardsArgs) -> Result<()> {
    let boards = Board::load_all(&boards_dir(args.boards_dir.as_deref()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&boards)?);
        return Ok(());
    }
    println!(
        "{:<18} {:<26} {:>5} {:>8} {:>6} {:>6} {:<9} {:>7}  install root",
        "board", "target", "cores", "memory", "GPU sm", "CUDA", "features", "threads"
    );
    for b in &boards {
        let (sm, cuda) = match &b.gpu {
            Some(g) if g.supported => (g.compute_capability.replace('.', ""), g.cuda.clone()),
            Some(g) => (format!("({})", g.compute_capability.replace('.', "")), format!("({})", g.cuda)),
            None => ("-".into(), "-".into()),
        };
        let features = if b.build.features.is_empty() { "-".into() } else { b.build.features.join(",") };
        println!(
            "{:<18} {:<26} {:>5} {:>5.1} GB {:>6} {:>6} {:<9} {:>7}  {}",
            b.name,
            b.target,
            b.cpu.cores,
            f64::from(b.memory.mib) / 1024.0,
            sm,
            cuda,
            features,
            b.runtime.threads,
            b.install.root
        );
    }
    for b in &boards {
        if let Some(gpu) = b.gpu.as_ref().filter(|g| !g.supported) {
            println!("note: {}: {}", b.name, gpu.note.as_deref().unwrap_or_default());
        }
    }
    Ok(())
}

pub fn bundle(args: &BundleArgs) -> Result<()> {
    let board = Board::find(&args.bundle.board, &boards_dir(args.bundle.boards_dir.as_deref()))?;
    let mender = args.format == BundleFormat::Mender;
    if args.sign_key.is_some() && !mender {
        bail!("--sign-key signs Mender artifacts: add --format mender");
    }
    if mender {
        // Before the (slow) bundle: a missing device type list or an unusable key fails now.
        if board.mender.is_none() {
            bail!(kestrel_deploy::mender::MenderError::NoDeviceTypes(board.name.clone()));
        }
        if let Some(key) = &args.sign_key {
            kestrel_deploy::mender::check_key(key)?;
        }
    }
    let info = make_bundle(&board, &args.bundle, args.bundle.service_user.clone(), &args.out)?;
    if mender {
        let artifact = kestrel_deploy::mender::write_artifact(&board, &info, args.sign_key.as_deref(), &args.out)?;
        let bytes = std::fs::metadata(&artifact).map(|m| m.len()).unwrap_or(0);
        println!(
            "{}: Mender artifact {} for {} (device types {}), {:.1} MB, {}",
            artifact.display(),
            info.release.id,
            board.name,
            board.mender.as_ref().map(|m| m.device_types.join(", ")).unwrap_or_default(),
            bytes as f64 / 1e6,
            if args.sign_key.is_some() { "signed" } else { "unsigned" }
        );
        return Ok(());
    }
    println!(
        "{}: release {} for {}, {} files, {:.1} MB, sha256 {}",
        info.path.display(),
        info.release.id,
        board.name,
        info.files,
        info.bytes as f64 / 1e6,
        info.sha256
    );
    Ok(())
}

pub fn mender_setup(args: &MenderSetupArgs) -> Result<()> {
    let board = Board::find(&args.board, &boards_dir(args.boards_dir.as_deref()))?;
    let root = args.root.clone().unwrap_or_else(|| board.install.root.clone());
    if !root.starts_with('/') {
        bail!("--root must be an absolute path on the board");
    }
    for path in kestrel_deploy::mender::write_setup(&board, &root, &args.out)? {
        println!("{}", path.display());
    }
    Ok(())
}

pub fn deploy(args: &DeployArgs) -> Result<()> {
    let board = Board::find(&args.bundle.board, &boards_dir(args.bundle.boards_dir.as_deref()))?;
    if args.bundle.root.as_deref().is_some_and(|r| !r.starts_with('/')) {
        bail!("--root must be an absolute path on the board");
    }
    let target = Target {
        ssh: Ssh {
            destination: args.host.clone(),
            port: args.port,
            identity: args.identity.clone(),
            options: args.ssh_options.clone(),
        },
        root: args.bundle.root.clone().unwrap_or_else(|| board.install.root.clone()),
        launcher: board.install.launcher.clone(),
        service: board.install.service.clone(),
        keep: args.keep.unwrap_or(board.install.keep),
        health_budget_s: board.install.health_budget_s,
        rate: args.rate_limit.map(|kib| kib * 1024),
    };
    if args.status {
        for (k, v) in target.status()? {
            println!("{k}: {v}");
        }
        return Ok(());
    }
    let bar = ProgressBar::hidden();
    let mut progress = |e: Event| match e {
        Event::Step(s) => {
            bar.finish_and_clear();
            eprintln!("==> {s}");
        }
        Event::Note(n) => eprintln!("    {n}"),
        Event::Upload { sent, total } => {
            if bar.is_hidden() && sent < total {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.set_length(total);
                bar.set_style(
                    ProgressStyle::with_template("    {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                        .unwrap_or(ProgressStyle::default_bar()),
                );
            }
            bar.set_position(sent);
        }
    };
    if args.rollback {
        let (from, to) = target.rollback(&mut progress)?;
        println!("rolled back {} from {from} to {to}; the service is up", args.host);
        return Ok(());
    }
    let info = match &args.bundle_file {
        Some(path) => {
            let info = bundle::open(path)?;
            if info.release.board != board.name {
                bail!("bundle `{}` was made for board `{}`, not `{}`", path.display(), info.release.board, board.name);
            }
            info
        }
        None => {
            progress(Event::Step("making the bundle"));
            let user = args.bundle.service_user.clone().or_else(|| Some(args.host.split_once('@')?.0.to_string()));
            make_bundle(&board, &args.bundle, user, &args.out)?
        }
    };
    progress(Event::Note(format!(
        "bundle {} ({:.1} MB, release {})",
        info.path.display(),
        info.bytes as f64 / 1e6,
        info.release.id
    )));
    let report = target.deploy(&info, &mut progress)?;
    bar.finish_and_clear();
    println!(
        "deployed release {} to {} ({}) in {:.1} s; previous: {}; pruned: {}",
        report.id,
        args.host,
        board.name,
        report.seconds,
        report.previous.as_deref().unwrap_or("none"),
        if report.pruned.is_empty() { "none".into() } else { report.pruned.join(", ") }
    );
    println!("health: {}", report.health);
    if let Some(e) = &report.prune_error {
        eprintln!("warning: pruning old releases failed (the next deploy retries): {e}");
    }
    Ok(())
}

fn make_bundle(board: &Board, opts: &BundleOptions, service_user: Option<String>, out: &Path) -> Result<BundleInfo> {
    let backend = opts.backend.clone().unwrap_or_else(|| board.runtime.backend.clone());
    let model_paths =
        if opts.models.is_empty() { vec![models_dir().join("blazeface/model.onnx")] } else { opts.models.clone() };
    let models = model_paths.iter().map(|p| bundle_model(p)).collect::<Result<Vec<_>>>()?;
    let health_image = match &opts.health_image {
        Some(p) => p.clone(),
        None => default_health_image(&model_paths[0])?,
    };
    // The expected result comes from this machine, on the backend the board will use (`auto`
    // for `cuda`: the GPU's result must match the CPU's): the board must reproduce it.
    let host_backend = if backend == "cuda" { "auto".to_string() } else { backend.clone() };
    let host = EngineArgs { backend: host_backend, threads: 1, mcu: None };
    let mut model = ImageModel::open(&model_paths[0], &ConfigArgs::default(), &host)?;
    let mut expected = serde_json::to_value(model.infer(&health_image, None, 1)?)?;
    if let Some(o) = expected.as_object_mut() {
        o.retain(|k, _| k == "classes" || k == "detections");
    }
    let binary = board_binary(board, opts.binary.as_deref())?;
    let scratch = std::env::temp_dir().join(format!("kestrel-bundle-{}", std::process::id()));
    let stripped = bundle::stripped_copy(&binary, &board.binutils_prefix().unwrap_or_default(), &scratch)?;
    if stripped.is_none() {
        eprintln!("warning: no strip tool for {}; the binary goes in with its debug info", board.target);
    }
    let spec = BundleSpec {
        board,
        binary: stripped.unwrap_or(binary),
        models,
        health_image,
        health_expected: expected,
        backend,
        threads: board.runtime.threads,
        kestrel_version: env!("CARGO_PKG_VERSION").into(),
        root: opts.root.clone().unwrap_or_else(|| board.install.root.clone()),
        service_user,
    };
    let info = bundle::create(&spec, out);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(info?)
}

/// The model file, its `kestrel.toml` and any external-data files, under the folder's name.
fn bundle_model(path: &Path) -> Result<BundleModel> {
    let onnx = load_model(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .context(format!("cannot name the folder of `{}`", path.display()))?;
    let mut files = vec![path.to_path_buf()];
    let config = dir.join("kestrel.toml");
    if config.is_file() {
        files.push(config);
    }
    for t in onnx.proto.graph.iter().flat_map(|g| &g.initializer) {
        if let Some(loc) = t.external_data.iter().find(|e| e.key == "location") {
            let f = dir.join(&loc.value);
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    Ok(BundleModel { name, files })
}

fn default_health_image(model: &Path) -> Result<PathBuf> {
    let samples = model.parent().unwrap_or(Path::new(".")).join("samples");
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(&samples).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    found.retain(|p| p.extension().is_some_and(|e| e == "png" || e == "jpg"));
    found.sort();
    let fallback = models_dir().join("samples/astronaut.png");
    match found.into_iter().next() {
        Some(p) => Ok(p),
        None if fallback.is_file() => Ok(fallback),
        None => bail!("no health-check image: pass --health-image"),
    }
}

/// `--binary`, this very binary when the board is this kind of machine, else a cargo cross-build
/// from the source tree in the working directory.
fn board_binary(board: &Board, explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        if !p.is_file() {
            bail!("--binary `{}` does not exist", p.display());
        }
        return Ok(p.into());
    }
    if board.target == host_target() && board.build.features.is_empty() {
        return std::env::current_exe().context("locating this kestrel binary");
    }
    let manifest = Path::new("Cargo.toml");
    let is_source = std::fs::read_to_string(manifest).is_ok_and(|t| t.contains("name = \"kestrel\""));
    if !is_source {
        bail!(
            "board `{}` needs a kestrel built for {}{}: pass --binary, or run from the Kestrel source tree to build it",
            board.name,
            board.target,
            feature_text(board)
        );
    }
    if board.build.has_camera() && board.target != host_target() {
        check_cross_gstreamer(board)?;
    }
    // One target folder for every board of a target: feature sets live side by side in it, and
    // tract (most of the build) is shared between them.
    let dir = PathBuf::from("target/cross");
    eprintln!("==> cargo build --release --no-default-features --target {}{}", board.target, feature_text(board));
    let mut cargo = Command::new("cargo");
    cargo
        .args(["build", "--release", "--no-default-features", "--bin", "kestrel", "--target", &board.target])
        .env("CARGO_TARGET_DIR", &dir);
    if !board.build.features.is_empty() {
        cargo.args(["--features", &board.build.features.join(",")]);
    }
    let status = cargo.status().context("running cargo")?;
    if !status.success() {
        bail!("cross-building kestrel for {} failed (rustup target add {}; see above)", board.target, board.target);
    }
    Ok(dir.join(&board.target).join("release/kestrel"))
}

/// `kestrel watch` links the board's GStreamer: pkg-config must know where its libraries are
/// (`scripts/cross-gstreamer.sh`, which .cargo/config.toml points at, or the board's root file
/// system). Said before a long build rather than after it.
fn check_cross_gstreamer(board: &Board) -> Result<()> {
    let triple = board.target.replace('-', "_");
    let own = std::env::var_os(format!("PKG_CONFIG_LIBDIR_{triple}")).is_some();
    let ours = Path::new("target/gstreamer-aarch64/pkgconfig/gstreamer-1.0.pc").is_file();
    if own || (ours && board.target == "aarch64-unknown-linux-gnu") {
        return Ok(());
    }
    bail!(
        "board `{}` is built with `kestrel watch` (feature `camera`), which links the board's GStreamer: \
         run `bash scripts/cross-gstreamer.sh` (Debian's arm64 GStreamer libraries), or set \
         PKG_CONFIG_SYSROOT_DIR_{triple} and PKG_CONFIG_LIBDIR_{triple} to a copy of the board's root file system",
        board.name
    )
}

fn feature_text(board: &Board) -> String {
    match board.build.features.is_empty() {
        true => String::new(),
        false => format!(" --features {}", board.build.features.join(",")),
    }
}
