//! Fleet roll-out through Mender, with Debian's real `mender` client (standalone mode: `mender
//! install`, `commit`, `rollback`, no server) and `mender-artifact`. Each simulated board has its
//! own `mender.conf`, data directory (device type, Kestrel's `kestrel.conf`), install root and
//! service: the cross-built aarch64 `kestrel` under qemu-aarch64, as in tests/deploy.rs. The
//! update module is installed where the client looks for it (/usr/share/mender/modules/v3, one
//! for all boards). Needs mender-client, mender-artifact, openssl, qemu-user and the aarch64
//! cross toolchain (scripts/test.sh installs them); without them these tests fail and say so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const BOARD: &str = "emulated-orin-nano";
const FASHION: &str = "models/fashion-cnn/model.onnx";
const FASHION_INT8: &str = "models/fashion-cnn/model.int8.onnx";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    let name = format!("{:?}", cmd.get_program());
    cmd.output().unwrap_or_else(|e| panic!("{name} cannot run ({e}): run scripts/test.sh, which installs it"))
}

/// Keys and artifacts shared by a test: a signing key (SEC1 EC P-256), its public key, and a
/// second key pair that no board trusts.
struct Keys {
    dir: PathBuf,
}

impl Keys {
    fn new(name: &str) -> Keys {
        let dir = common::repo().join(format!("target/tmp/mender-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for key in ["key", "other"] {
            let pem = dir.join(format!("{key}.pem"));
            assert!(run(Command::new("openssl")
                .args(["ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out"])
                .arg(&pem))
            .status
            .success());
            let out = run(Command::new("openssl")
                .args(["ec", "-pubout", "-in"])
                .arg(&pem)
                .arg("-out")
                .arg(dir.join(format!("{key}.pub"))));
            assert!(out.status.success(), "{}", text(&out.stderr));
        }
        Keys { dir }
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// `kestrel bundle --format mender` of `model`, signed; returns (artifact, release id, bundle).
    fn artifact(&self, model: &str) -> (PathBuf, String, PathBuf) {
        std::thread::sleep(Duration::from_millis(1100)); // release IDs carry the second
        let out = common::kestrel_ok(&[
            "bundle",
            "--board",
            BOARD,
            "--model",
            model,
            "--binary",
            common::board_binary().to_str().unwrap(),
            "--format",
            "mender",
            "--sign-key",
            self.key().to_str().unwrap(),
            "--out",
            self.dir.join("out").to_str().unwrap(),
        ]);
        let artifact = PathBuf::from(out.split(':').next().unwrap());
        let id = out.split_whitespace().nth(3).expect("…: Mender artifact ID …").to_string();
        let bundle = self.dir.join("out").join(format!("kestrel-{BOARD}-{id}.tar.gz"));
        assert!(artifact.exists() && bundle.exists(), "{out}");
        (artifact, id, bundle)
    }

    /// An artifact made by `mender-artifact` directly from `bundle` (for forged releases).
    fn wrap(&self, bundle: &Path, id: &str, device_type: &str, key: Option<&Path>, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.mender"));
        let mut cmd = Command::new("mender-artifact");
        cmd.args([
            "write",
            "module-image",
            "-T",
            "kestrel",
            "-n",
            id,
            "-t",
            device_type,
            "--compression",
            "none",
            "-f",
        ])
        .arg(bundle)
        .arg("-o")
        .arg(&path);
        if let Some(k) = key {
            cmd.arg("-k").arg(k);
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", text(&out.stderr));
        path
    }
}

/// One simulated board: Mender's configuration and data, Kestrel's install root and service.
struct MenderBoard {
    dir: PathBuf,
}

impl MenderBoard {
    fn start(keys: &Keys, name: &str) -> MenderBoard {
        let dir = keys.dir.join(name);
        let data = dir.join("data");
        std::fs::create_dir_all(dir.join("root")).unwrap();
        common::kestrel_ok(&[
            "mender-setup",
            "--board",
            BOARD,
            "--root",
            dir.join("root").to_str().unwrap(),
            "--out",
            data.to_str().unwrap(),
        ]);
        common::install_mender_module(&data.join("kestrel"));
        let conf = format!(
            r#"{{"ArtifactVerifyKey": "{}", "DeviceTypeFile": "{}"}}"#,
            keys.dir.join("key.pub").display(),
            data.join("device_type").display()
        );
        std::fs::write(dir.join("mender.conf"), conf).unwrap();
        MenderBoard { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn mender_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("mender");
        c.arg("-c").arg(self.dir.join("mender.conf")).arg("-d").arg(self.dir.join("data"));
        c.args(["--no-syslog"]).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    }

    fn mender(&self, args: &[&str]) -> Output {
        run(&mut self.mender_command(args))
    }

    fn mender_ok(&self, args: &[&str]) -> String {
        let out = self.mender(args);
        assert!(out.status.success(), "mender {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `mender install` then `mender commit`, both required to succeed.
    fn update(&self, artifact: &Path) {
        self.mender_ok(&["install", artifact.to_str().unwrap()]);
        self.mender_ok(&["commit"]);
    }

    fn link(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.root().join(name)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// One `current`, its service up and healthy, the Mender client naming it, nothing partial.
    fn assert_serving(&self, release: &str) {
        assert_eq!(self.link("current").as_deref(), Some(release));
        let status = std::fs::read_to_string(self.root().join("state/status")).unwrap_or_default();
        assert!(status.contains(&format!("release={release}\nstate=ready")), "service status: {status}");
        let pid = self.service_pid().expect("a service pid");
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "service {pid} is not running");
        let hidden: Vec<_> = std::fs::read_dir(self.root().join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(hidden.is_empty(), "partial folders left: {hidden:?}");
        assert_eq!(std::fs::read_dir(self.root().join("incoming")).unwrap().count(), 0, "uploads left");
    }

    fn assert_mender_names(&self, release: &str) {
        assert_eq!(self.mender_ok(&["show-artifact"]).trim(), release);
    }

    fn service_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.root().join("run/kestrel.pid")).ok()?.trim().parse().ok()
    }

    /// The service answers an image dropped into its inbox.
    fn assert_answers(&self) {
        let sample = common::repo().join("models/fashion-cnn/samples/00-ankle-boot.png");
        std::fs::copy(sample, self.root().join("state/inbox/boot.png")).unwrap();
        let results = self.root().join("state/results.jsonl");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&results).is_ok_and(|t| t.contains("Ankle boot")) {
            assert!(Instant::now() < deadline, "no result for the inbox image");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until no update-module process of this board is left (one orphaned by a killed
    /// client finishes its step on its own).
    fn wait_for_module(&self) {
        let root = self.root().display().to_string();
        let data = self.dir.join("data").display().to_string();
        let deadline = Instant::now() + Duration::from_secs(120);
        while processes().iter().any(|c| (c.contains("kestrel-remote") && c.contains(&root)) || c.contains(&data)) {
            assert!(Instant::now() < deadline, "the update module never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Keys {
    /// Artifacts, bundles and boards take a few hundred MB; a failed test's stay for a look.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for MenderBoard {
    fn drop(&mut self) {
        if let Some(pid) = self.service_pid() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// Every process's command line, arguments joined by spaces.
fn processes() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| c.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn artifacts_are_signed_readable_and_keys_checked() {
    let keys = Keys::new("artifact");
    let (artifact, id, _) = keys.artifact(FASHION);
    let out =
        run(Command::new("mender-artifact").args(["validate", "-k"]).arg(keys.dir.join("key.pub")).arg(&artifact));
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let out =
        run(Command::new("mender-artifact").args(["validate", "-k"]).arg(keys.dir.join("other.pub")).arg(&artifact));
    assert!(!out.status.success(), "validated with a key that did not sign it");
    let read = text(&run(Command::new("mender-artifact").arg("read").arg(&artifact)).stdout);
    for want in [format!("Name: {id}"), "Type:   kestrel".into(), "Compatible devices: '[emulated-orin-nano]'".into()] {
        assert!(read.contains(&want), "{want} not in:\n{read}");
    }

    // Keys mender-artifact cannot use are refused before any work, with the fix.
    let pkcs8 = keys.dir.join("pkcs8.pem");
    assert!(run(Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
        .arg(&pkcs8))
    .status
    .success());
    let args = ["bundle", "--board", BOARD, "--format", "mender", "--sign-key", pkcs8.to_str().unwrap()];
    let out = common::kestrel(&args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let fix = format!("openssl pkey -in {} -traditional -out", pkcs8.display());
    assert!(stderr.contains("PKCS#8") && stderr.contains(&fix), "{stderr}");
    let fixed = keys.dir.join("pkcs8.traditional.pem");
    assert!(run(Command::new("openssl").args(["pkey", "-traditional", "-in"]).arg(&pkcs8).arg("-out").arg(&fixed))
        .status
        .success());
    kestrel_deploy::mender::check_key(&fixed).unwrap();
    let out = common::kestrel(&["bundle", "--board", BOARD, "--sign-key", fixed.to_str().unwrap()]);
    assert!(text(&out.stderr).contains("add --format mender"), "{}", text(&out.stderr));
    // Without mender-artifact: the package to install is named.
    let out = Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(["bundle", "--board", BOARD, "--model", FASHION, "--format", "mender", "--binary"])
        .arg(common::board_binary())
        .arg("--out")
        .arg(keys.dir.join("no-tool"))
        .env("PATH", keys.dir.join("empty"))
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.code() == Some(1) && stderr.contains("apt-get install mender-artifact"), "{stderr}");

    // A board file without `[mender]`.
    let boards = keys.dir.join("boards");
    std::fs::create_dir_all(&boards).unwrap();
    let orin = std::fs::read_to_string(common::repo().join("boards/jetson-orin-nano.toml")).unwrap();
    std::fs::write(boards.join("jetson-orin-nano.toml"), &orin[..orin.find("\n[mender]").unwrap()]).unwrap();
    let boards = boards.to_str().unwrap();
    let out = common::kestrel(&["bundle", "--board", "jetson-orin-nano", "--boards-dir", boards, "--format", "mender"]);
    let stderr = text(&out.stderr);
    assert!(out.status.code() == Some(1) && stderr.contains("no `[mender] device_types`"), "{stderr}");
}

#[test]
fn four_boards_update_in_parallel() {
    let keys = Keys::new("fleet");
    let (artifact, id, _) = keys.artifact(FASHION_INT8);
    let boards: Vec<MenderBoard> = (0..4).map(|i| MenderBoard::start(&keys, &format!("board{i}"))).collect();
    std::thread::scope(|s| {
        for b in &boards {
            s.spawn(|| b.update(&artifact));
        }
    });
    for b in &boards {
        b.assert_serving(&id);
        b.assert_mender_names(&id);
        b.assert_answers();
    }
}

/// One board through everything that must not leave it broken: a release failing its health
/// check, artifacts Mender must refuse, a tampered payload, the client killed during install and
/// during commit, and an uncommitted update rolled back.
#[test]
fn failures_leave_the_previous_release_serving() {
    let keys = Keys::new("faults");
    let board = MenderBoard::start(&keys, "board");
    let (v1, id1, _) = keys.artifact(FASHION);
    board.update(&v1);
    board.assert_serving(&id1);
    board.assert_mender_names(&id1);

    // A release whose health check fails on the board (its expected result edited, the
    // manifest made to match): Mender calls the module's rollback itself.
    let (_, id2, bundle2) = keys.artifact(FASHION_INT8);
    let mut digest = String::new();
    common::rewrite_bundle(&bundle2, &mut |name, data| match name {
        "health.json" => {
            let text = String::from_utf8(data.clone()).unwrap().replace("Ankle boot", "Sneaker");
            *data = text.into_bytes();
            digest = format!("{:x}", Sha256::digest(&data[..]));
        }
        "MANIFEST.sha256" => {
            let text = String::from_utf8(data.clone()).unwrap();
            let lines: Vec<String> = text
                .lines()
                .map(|l| if l.ends_with("  health.json") { format!("{digest}  health.json") } else { l.to_string() })
                .collect();
            *data = (lines.join("\n") + "\n").into_bytes();
        }
        _ => {}
    });
    let unhealthy = keys.wrap(&bundle2, &id2, BOARD, Some(&keys.key()), "unhealthy");
    let out = board.mender(&["install", unhealthy.to_str().unwrap()]);
    assert!(!out.status.success(), "an unhealthy release installed");
    assert!(text(&out.stderr).contains("Sneaker"), "the health check's complaint: {}", text(&out.stderr));
    board.assert_serving(&id1);
    board.assert_mender_names(&id1);
    assert!(!board.root().join("releases").join(&id2).exists());

    // Refused by the client before the module runs: unsigned, signed by another key, for
    // another device type. And a payload with one flipped byte: the manifest check refuses it.
    let (_, id3, bundle3) = keys.artifact(FASHION_INT8);
    let unsigned = keys.wrap(&bundle3, &id3, BOARD, None, "unsigned");
    let other = keys.wrap(&bundle3, &id3, BOARD, Some(&keys.dir.join("other.pem")), "other-key");
    let wrong_type = keys.wrap(&bundle3, &id3, "jetson-agx-orin-devkit", Some(&keys.key()), "wrong-type");
    for (artifact, why) in [(&unsigned, "signature"), (&other, "verification"), (&wrong_type, "device type")] {
        let out = board.mender(&["install", artifact.to_str().unwrap()]);
        let stderr = text(&out.stderr).to_lowercase();
        assert!(!out.status.success(), "{} installed", artifact.display());
        assert!(stderr.contains(why), "{why} not in: {stderr}");
        board.assert_serving(&id1);
    }
    common::rewrite_bundle(&bundle3, &mut |name, data| {
        if name == "models/fashion-cnn/model.int8.onnx" {
            let mid = data.len() / 2;
            data[mid] ^= 1;
        }
    });
    let flipped = keys.wrap(&bundle3, &id3, BOARD, Some(&keys.key()), "flipped");
    let out = board.mender(&["install", flipped.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out.stderr).contains("manifest check failed"), "{}", text(&out.stderr));
    board.assert_serving(&id1);

    // The client killed while the module installs, then while it commits: the module finishes
    // or stops on its own; the next install (the same artifact, then a newer one) goes through.
    let (v4, id4, _) = keys.artifact(FASHION_INT8);
    for (state, next) in [("ArtifactInstall", v4.clone()), ("ArtifactCommit", keys.artifact(FASHION).0)] {
        let mut client = if state == "ArtifactInstall" {
            board.mender_command(&["install", v4.to_str().unwrap()]).spawn().unwrap()
        } else {
            board.mender_ok(&["install", v4.to_str().unwrap()]);
            board.mender_command(&["commit"]).spawn().unwrap()
        };
        kill_during(&mut client, state, &board);
        board.wait_for_module();
        let served = board.link("current").unwrap();
        board.assert_serving(&served);
        board.update(&next);
        board.assert_serving(&read_name(&next));
        board.assert_mender_names(&read_name(&next));
        assert_eq!(read_name(&v4), id4);
    }

    // v5 installed but not committed, then `mender rollback`: the release before serves.
    let before = board.link("current").unwrap();
    let (v5, id5, _) = keys.artifact(FASHION);
    board.mender_ok(&["install", v5.to_str().unwrap()]);
    board.mender_ok(&["rollback"]);
    board.assert_serving(&before);
    board.assert_mender_names(&before);
    assert!(!board.root().join("releases").join(&id5).exists());
    board.assert_answers();
}

/// Kills the client (`kill -9`) once the update module runs `state`.
fn kill_during(client: &mut Child, state: &str, board: &MenderBoard) {
    let data = board.dir.join("data").display().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !processes().iter().any(|c| c.contains("modules/v3/kestrel") && c.contains(state) && c.contains(&data)) {
        assert!(Instant::now() < deadline, "the module never ran {state}");
        assert!(client.try_wait().unwrap().is_none(), "the client finished before {state} was seen");
        std::thread::sleep(Duration::from_millis(10));
    }
    client.kill().unwrap();
    client.wait().unwrap();
}

/// The artifact name `mender-artifact read` shows.
fn read_name(artifact: &Path) -> String {
    let out = text(&run(Command::new("mender-artifact").arg("read").arg(artifact)).stdout);
    out.lines().find_map(|l| l.trim().strip_prefix("Name: ")).expect("a name").to_string()
}
