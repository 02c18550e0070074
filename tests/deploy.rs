//! `kestrel deploy` against a real OpenSSH server: each test starts Debian's `sshd` on loopback
//! on a free port, with a throw-away host key, user key and board root. The "board" is the
//! emulated Orin Nano: the cross-built aarch64 `kestrel` runs under qemu-aarch64 for the health
//! check and as the service. Needs openssh-server, openssh-client, qemu-user and the aarch64
//! cross toolchain (scripts/test.sh installs them); without them these tests fail and say so.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BOARD: &str = "emulated-orin-nano";

/// A loopback sshd with its own keys, and the board root it deploys into.
struct Board {
    dir: PathBuf,
    sshd: Child,
    port: u16,
}

/// The tools `tests/deploy/kill-at.sh` stands in for on a board with faults.
const SHIMMED: [&str; 7] = ["cat", "sha256sum", "tar", "mv", "timeout", "sed", "rm"];

impl Board {
    fn start(name: &str) -> Board {
        Board::start_with(name, "")
    }

    /// A board whose ssh sessions find `tests/deploy/kill-at.sh` first on PATH: writing a fault
    /// to `fault_file()` kills the board script at that step.
    fn start_with_faults(name: &str) -> Board {
        let dir = common::repo().join(format!("target/tmp/deploy-{name}-{}-shims", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for tool in SHIMMED {
            std::os::unix::fs::symlink(common::repo().join("tests/deploy/kill-at.sh"), dir.join(tool)).unwrap();
        }
        let board = Board::start_with(
            name,
            &format!(
                "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin KESTREL_FAULT={}\n",
                dir.display(),
                common::repo().join(format!("target/tmp/deploy-{name}-{}/fault", std::process::id())).display()
            ),
        );
        std::fs::write(board.fault_file(), "").unwrap();
        board
    }

    fn start_with(name: &str, extra_config: &str) -> Board {
        let dir = common::repo().join(format!("target/tmp/deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root")).unwrap();
        for key in ["host_key", "user_key"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .output()
                .expect("ssh-keygen is not installed (apt-get install openssh-client, or run scripts/test.sh)");
            assert!(out.status.success());
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n\
             PermitRootLogin prohibit-password\n{extra_config}",
            d = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let host_key = std::fs::read_to_string(dir.join("host_key.pub")).unwrap();
        std::fs::write(dir.join("known_hosts"), format!("[127.0.0.1]:{port} {host_key}")).unwrap();
        // sshd refuses to start as root without its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let sshd = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stderr(log)
            .spawn()
            .expect("/usr/sbin/sshd is not installed (apt-get install openssh-server, or run scripts/test.sh)");
        let board = Board { dir, sshd, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start: {}", board.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        board
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn fault_file(&self) -> PathBuf {
        self.dir.join("fault")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// `kestrel deploy` against this board with `extra` arguments.
    fn command(&self, extra: &[&str]) -> Command {
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_kestrel"));
        c.args(["deploy", "--board", BOARD, "--host", &format!("{}@127.0.0.1", user.trim())])
            .args(["--port", &self.port.to_string(), "--identity"])
            .arg(self.dir.join("user_key"))
            .arg("--ssh-option")
            .arg(format!("UserKnownHostsFile={}", self.dir.join("known_hosts").display()))
            .arg("--root")
            .arg(self.root())
            .args(["--out"])
            .arg(self.dir.join("bundles"))
            .args(extra)
            .current_dir(common::repo());
        c
    }

    fn deploy(&self, extra: &[&str]) -> Output {
        self.command(extra).output().unwrap()
    }

    fn deploy_ok(&self, extra: &[&str]) -> String {
        let out = self.deploy(extra);
        assert!(out.status.success(), "deploy {extra:?} failed: {}\nsshd: {}", text(&out.stderr), self.log());
        text(&out.stdout)
    }

    fn link(&self, name: &str) -> Option<String> {
        let target = std::fs::read_link(self.root().join(name)).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    fn releases(&self) -> Vec<String> {
        let mut r: Vec<String> = std::fs::read_dir(self.root().join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        r.sort();
        r
    }

    fn service_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.root().join("run/kestrel.pid")).ok()?.trim().parse().ok()
    }

    /// The service's status file as (release, state).
    fn service_status(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.root().join("state/status")).unwrap_or_default();
        let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or_default().to_string();
        (field("release="), field("state="))
    }

    fn assert_serving(&self, release: &str) {
        assert_eq!(self.link("current").as_deref(), Some(release));
        assert_eq!(self.service_status(), (release.to_string(), "ready".to_string()));
        let pid = self.service_pid().expect("a service pid");
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "service {pid} is not running");
    }

    /// Everything under the root that is not a release, a link or the service's own folders:
    /// partial uploads, half-unpacked or half-removed releases, links not renamed into place.
    fn leftovers(&self) -> Vec<String> {
        let root = self.root();
        let list = |dir: &str| -> Vec<String> {
            std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| format!("{dir}/{}", e.unwrap().file_name().to_string_lossy()))
                .collect()
        };
        let mut found: Vec<String> = list("incoming");
        found.extend(list("releases").into_iter().filter(|p| p.starts_with("releases/.")));
        found.extend(list(".").into_iter().filter(|p| p.ends_with(".new")));
        found
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(pid) = self.service_pid() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        // Bundles and releases take a few hundred MB; a failed test's stay for a look.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_dir_all(format!("{}-shims", self.dir.display()));
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn release_of(stdout: &str) -> String {
    stdout.split_whitespace().nth(2).expect("deployed release ID …").to_string()
}

const FASHION: &str = "models/fashion-cnn/model.onnx";
const FASHION_INT8: &str = "models/fashion-cnn/model.int8.onnx";

#[test]
fn deploys_serves_prunes_and_rolls_back() {
    let binary = common::board_binary();
    let board = Board::start("clean");
    // First deploy: the deploy builds the board binary itself (cargo finds it up to date).
    let a = release_of(&board.deploy_ok(&["--model", FASHION]));
    board.assert_serving(&a);
    assert_eq!(board.link("previous"), None);

    // The service answers: an image dropped into the inbox comes out as a result line.
    let sample = common::repo().join("models/fashion-cnn/samples/00-ankle-boot.png");
    std::fs::copy(&sample, board.root().join("state/inbox/boot.png")).unwrap();
    let results = board.root().join("state/results.jsonl");
    let deadline = Instant::now() + Duration::from_secs(60);
    // The service writes the result first, then moves the image (a crash repeats, never loses).
    let done = board.root().join("state/done/boot.png");
    while !(std::fs::read_to_string(&results).is_ok_and(|t| t.contains("Ankle boot")) && done.exists()) {
        assert!(Instant::now() < deadline, "no result for the inbox image, or it was not moved to done/");
        std::thread::sleep(Duration::from_millis(100));
    }

    let bin = binary.to_str().unwrap();
    let b = release_of(&board.deploy_ok(&["--model", FASHION_INT8, "--binary", bin]));
    board.assert_serving(&b);
    assert_eq!(board.link("previous"), Some(a.clone()));

    // A third deploy keeping one other release: A goes, B (previous) stays.
    std::thread::sleep(Duration::from_secs(1)); // release IDs carry the second
    let c = release_of(&board.deploy_ok(&["--model", FASHION, "--binary", bin, "--keep", "1"]));
    board.assert_serving(&c);
    assert_eq!(board.releases(), vec![b.clone(), c.clone()]);

    let out = board.deploy_ok(&["--rollback"]);
    assert!(out.contains(&format!("from {c} to {b}")), "{out}");
    board.assert_serving(&b);

    let status = board.deploy_ok(&["--status"]);
    assert!(status.contains(&format!("current: {b}")) && status.contains("service.state: ready"), "{status}");
    // Nothing older than B is left, so there is nothing to roll back to.
    let out = board.deploy(&["--rollback"]);
    assert!(!out.status.success() && text(&out.stderr).contains("no previous release"), "{}", text(&out.stderr));
    board.assert_serving(&b);
}

#[test]
fn a_killed_upload_leaves_the_previous_release_running() {
    let bin = common::board_binary();
    let board = Board::start("kill");
    let a = release_of(&board.deploy_ok(&["--model", FASHION, "--binary", bin.to_str().unwrap()]));
    let pid = board.service_pid();

    // A slow link (1 MiB/s for a ~9 MB bundle): kill -9 the ssh copy once 1 MB has arrived.
    let mut deploy = board
        .command(&["--model", FASHION_INT8, "--binary", bin.to_str().unwrap(), "--rate-limit", "1024"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let incoming = board.root().join("incoming");
    let deadline = Instant::now() + Duration::from_secs(60);
    let arrived = || {
        std::fs::read_dir(&incoming)
            .ok()
            .is_some_and(|rd| rd.filter_map(|e| e.ok()).any(|e| e.metadata().is_ok_and(|m| m.len() > 1_000_000)))
    };
    while !arrived() {
        assert!(Instant::now() < deadline && deploy.try_wait().unwrap().is_none(), "upload never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let copy = ssh_copy_process(board.port).expect("the ssh process copying the bundle");
    assert!(Command::new("kill").args(["-9", &copy.to_string()]).status().unwrap().success());
    let status = deploy.wait().unwrap();
    let mut stderr = String::new();
    deploy.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "the deploy must fail");
    assert!(stderr.contains("broke off after"), "{stderr}");

    board.assert_serving(&a);
    assert_eq!(board.service_pid(), pid, "the service was not touched");
    assert_eq!(board.releases(), vec![a.clone()]);

    // The next deploy cleans up the partial upload and goes through.
    let b = release_of(&board.deploy_ok(&["--model", FASHION_INT8, "--binary", bin.to_str().unwrap()]));
    board.assert_serving(&b);
    assert_eq!(std::fs::read_dir(&incoming).unwrap().count(), 0);
}

/// The pid of `ssh … -p PORT … receive …` (the bundle upload).
fn ssh_copy_process(port: u16) -> Option<u32> {
    let port = port.to_string();
    std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let is_copy = args[0] == "ssh" && args.contains(&port) && args.iter().any(|a| a.contains("'receive'"));
        is_copy.then_some(pid)
    })
}

#[test]
fn a_tampered_bundle_is_refused() {
    let bin = common::board_binary();
    let board = Board::start("tamper");
    let a = release_of(&board.deploy_ok(&["--model", FASHION, "--binary", bin.to_str().unwrap()]));

    let out = common::kestrel_ok(&[
        "bundle",
        "--board",
        BOARD,
        "--model",
        FASHION_INT8,
        "--binary",
        bin.to_str().unwrap(),
        "--out",
        board.dir.join("made").to_str().unwrap(),
    ]);
    let bundle = PathBuf::from(out.split(':').next().unwrap());
    common::rewrite_bundle(&bundle, &mut |name, data| {
        if name == "models/fashion-cnn/model.int8.onnx" {
            let mid = data.len() / 2;
            data[mid] ^= 0x01;
        }
    });

    let out = board.deploy(&["--bundle-file", bundle.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("manifest check failed") && stderr.contains("model.int8.onnx: FAILED"), "{stderr}");
    board.assert_serving(&a);
    assert_eq!(board.releases(), vec![a.clone()], "no trace of the refused release");
}

#[test]
fn a_service_that_fails_its_health_check_is_rolled_back() {
    let bin = common::board_binary();
    let board = Board::start("health");
    let a = release_of(&board.deploy_ok(&["--model", FASHION, "--binary", bin.to_str().unwrap()]));

    // The release passes the pre-switch check (CPU), but its service is configured for CUDA,
    // which this aarch64 build does not have: the service fails its start-up check.
    let out = board.deploy(&["--model", FASHION_INT8, "--binary", bin.to_str().unwrap(), "--backend", "cuda"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("rolled back to {a}")) && stderr.contains("backend `cuda`"), "{stderr}");
    board.assert_serving(&a);
    assert_eq!(board.releases(), vec![a.clone()], "the failed release is discarded");
}

#[test]
fn unreachable_boards_and_bad_board_files_are_clear_errors() {
    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let out = common::kestrel(&[
        "deploy",
        "--board",
        BOARD,
        "--host",
        "nobody@127.0.0.1",
        "--port",
        &port.to_string(),
        "--status",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("Error: status: ssh to nobody@127.0.0.1 failed") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));

    let listed = common::kestrel_ok(&["boards"]);
    for name in ["jetson-orin-nano", "jetson-agx-orin", "jetson-xavier-nx", "jetson-nano", "x86-64-linux", BOARD] {
        assert!(listed.contains(name), "{name} missing:\n{listed}");
    }
    let dir = common::repo().join(format!("target/tmp/boards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(common::repo().join("boards/jetson-orin-nano.toml")).unwrap();
    for (broken, field) in [
        (good.replace("cores = 6", "cores = \"6\""), "cores"),
        (good.replace("compute_capability = \"8.7\"", "compute_capability = \"sm87\""), "gpu.compute_capability"),
        (good.replace("threads = 4 ", "threads = 9 "), "runtime.threads"),
        (good.replace("[install]\n", "[install]\nowner = \"me\"\n"), "owner"),
    ] {
        std::fs::write(dir.join("jetson-orin-nano.toml"), broken).unwrap();
        let out = common::kestrel(&["boards", "--boards-dir", dir.to_str().unwrap()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{field}");
        assert!(stderr.contains(field), "{field}: {stderr}");
    }
    let out = common::kestrel(&["deploy", "--board", "jetson-tx2", "--host", "a@b", "--status"]);
    assert!(
        text(&out.stderr).contains("unknown board `jetson-tx2` (known: emulated-orin-nano"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `kill -9` of the board script at each step of a deploy (the upload's receiving end, hash,
/// unpack, manifest check, rename, health check, switch — before and after `current` moves —,
/// restart, ready wait, prune): the board then serves one release that passes its health check,
/// and after the next deploy nothing partial is left.
#[test]
fn a_deploy_killed_at_any_step_leaves_the_board_consistent() {
    let bin = common::board_binary();
    let bin = bin.to_str().unwrap();
    let board = Board::start_with_faults("steps");
    let deploy = |model: &str| board.deploy(&["--model", model, "--binary", bin, "--keep", "1"]);
    let mut live = release_of(&board.deploy_ok(&["--model", FASHION, "--binary", bin, "--keep", "1"]));
    // (step, board script command, tool, when, arguments) — see tests/deploy/kill-at.sh.
    let steps = [
        ("upload", "receive", "cat", "during", "*"),
        ("hash", "install", "sha256sum", "before", "*.part"),
        ("unpack", "install", "tar", "after", "*"),
        ("manifest check", "install", "sha256sum", "before", "-c*"),
        ("rename", "install", "mv", "after", "releases/.*"),
        ("health check", "health", "timeout", "during", "*"),
        ("switch, before current moves", "activate", "mv", "before", "-T current.new current"),
        ("switch, after current moved", "activate", "mv", "after", "-T current.new current"),
        ("restart", "restart", "rm", "after", "-f run/kestrel.pid"),
        ("ready wait", "ready", "sed", "after", "*"),
        ("prune", "prune", "rm", "before", "-rf releases/.*"),
    ];
    for (i, (step, command, tool, when, args)) in steps.into_iter().enumerate() {
        let model = if i % 2 == 0 { FASHION_INT8 } else { FASHION };
        eprintln!("killed at: {step}"); // shown with a failure
        std::thread::sleep(Duration::from_secs(1)); // release IDs carry the second
        std::fs::write(board.fault_file(), format!("{command} {tool} {when} {args}")).unwrap();
        let out = deploy(model);
        let stderr = text(&out.stderr);
        assert_eq!(std::fs::read_to_string(board.fault_file()).unwrap(), "", "{step}: the fault never fired: {stderr}");
        if step == "prune" {
            // The new release is live; only the clean-up failed, and says so.
            assert!(out.status.success() && stderr.contains("pruning old releases failed"), "{step}: {stderr}");
            live = release_of(&text(&out.stdout));
        } else {
            assert_eq!(out.status.code(), Some(1), "{step}: {stderr}");
            assert!(
                stderr.trim_end().lines().last().is_some_and(|l| l.starts_with("Error: "))
                    && !stderr.contains("panicked"),
                "{step}: {stderr}"
            );
        }
        board.assert_serving(&live);
        assert!(board
            .releases()
            .iter()
            .all(|r| !r.starts_with('.') || r.ends_with(".partial") || r.ends_with(".removing")));

        std::thread::sleep(Duration::from_secs(1));
        let out = deploy(model);
        assert!(out.status.success(), "{step}: the next deploy failed: {}", text(&out.stderr));
        live = release_of(&text(&out.stdout));
        board.assert_serving(&live);
        assert_eq!(board.leftovers(), Vec::<String>::new(), "{step}: left behind after the next deploy");
        assert_eq!(board.link("previous").map(|p| p != live), Some(true), "{step}: previous");
    }
}

/// One board updated by `kestrel deploy` and by the Mender client in turn (the update module
/// runs the same board script): each sees the other's releases, and rolls back to them.
#[test]
fn a_board_is_updated_by_deploy_and_by_mender_alike() {
    let bin = common::board_binary();
    let bin = bin.to_str().unwrap();
    let board = Board::start("mender");
    let a = release_of(&board.deploy_ok(&["--model", FASHION, "--binary", bin]));

    // Mender on the same install root: module settings, no verification key (unsigned artifact).
    let data = board.dir.join("mender-data");
    let root = board.root();
    common::kestrel_ok(&[
        "mender-setup",
        "--board",
        BOARD,
        "--root",
        root.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ]);
    common::install_mender_module(&data.join("kestrel"));
    let conf = board.dir.join("mender.conf");
    std::fs::write(&conf, format!(r#"{{"DeviceTypeFile": "{}"}}"#, data.join("device_type").display())).unwrap();
    std::thread::sleep(Duration::from_secs(1)); // release IDs carry the second
    let out_dir = board.dir.join("artifacts");
    let args = ["bundle", "--board", BOARD, "--model", FASHION_INT8, "--binary", bin, "--format", "mender"];
    let made = common::kestrel_ok(&[&args[..], &["--out", out_dir.to_str().unwrap()]].concat());
    let b = made.split_whitespace().nth(3).unwrap().to_string();
    let mender = |args: &[&str]| {
        let out = Command::new("mender")
            .arg("-c")
            .arg(&conf)
            .arg("-d")
            .arg(&data)
            .arg("--no-syslog")
            .args(args)
            .output()
            .expect("mender is not installed (apt-get install mender-client, or run scripts/test.sh)");
        assert!(out.status.success(), "mender {args:?}: {}", text(&out.stderr));
    };
    mender(&["install", made.split(':').next().unwrap()]);
    mender(&["commit"]);
    board.assert_serving(&b);
    assert_eq!(board.link("previous"), Some(a.clone()));

    // Back over ssh: the deploy rolls back to the release it made, then deploys over Mender's.
    let out = board.deploy_ok(&["--rollback"]);
    assert!(out.contains(&format!("from {b} to {a}")), "{out}");
    board.assert_serving(&a);
    std::thread::sleep(Duration::from_secs(1));
    let c = release_of(&board.deploy_ok(&["--model", FASHION_INT8, "--binary", bin]));
    board.assert_serving(&c);
}
