//! The Jetson's CPU: `kestrel` cross-built for aarch64-unknown-linux-gnu and run under
//! qemu-aarch64 must give what the host gives — float results within 1e-4 (different SIMD
//! kernels), integer (micro) results exactly, `kestrel watch` included — and pass a sample of the
//! conformance suite. Needs gcc-aarch64-linux-gnu, qemu-user, the rustup target and Debian's arm64
//! GStreamer (scripts/test.sh installs them, the last with scripts/cross-gstreamer.sh);
//! without them this test fails and says so.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const TRIPLE: &str = "aarch64-unknown-linux-gnu";

fn cross_dir() -> PathBuf {
    common::repo().join("target/cross")
}

fn cargo_cross(args: &[&str]) -> std::process::Output {
    cargo_for(TRIPLE, args)
}

fn cargo_for(triple: &str, args: &[&str]) -> std::process::Output {
    // The glibc build with `kestrel watch` and its ROS 2 node, as the Orin boards build it (linked
    // against Debian's arm64 GStreamer: scripts/cross-gstreamer.sh); the static musl build cannot
    // link GStreamer.
    let features: &[&str] = if triple == TRIPLE { &["--features", "camera,ros2"] } else { &[] };
    Command::new("cargo")
        .args(args)
        .args(["--release", "--no-default-features", "--target", triple])
        .args(features)
        .env("CARGO_TARGET_DIR", cross_dir())
        .current_dir(common::repo())
        .output()
        .expect("running cargo")
}

/// What a failed cargo run said, without the progress lines that would bury the error.
fn cargo_errors(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("Compiling ")).collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

fn qemu(binary: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = Command::new("qemu-aarch64")
        .args(["-cpu", "max"])
        .arg(binary)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(common::repo())
        .output()
        .expect("qemu-aarch64 is not installed (apt-get install qemu-user, or run scripts/test.sh)");
    assert!(
        out.status.success(),
        "aarch64 {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn numbers(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Number(n) => out.extend(n.as_f64()),
        Value::Array(a) => a.iter().for_each(|x| numbers(x, out)),
        Value::Object(o) => {
            o.iter().filter(|(k, _)| *k != "latency_ms" && *k != "seconds").for_each(|(_, x)| numbers(x, out))
        }
        _ => {}
    }
}

/// Every number in two JSON documents (timings aside), pairwise within `tol`.
fn assert_close(host: &str, arm: &str, tol: f64) {
    for (h, a) in host.lines().zip(arm.lines()) {
        let (mut x, mut y) = (vec![], vec![]);
        numbers(&serde_json::from_str(h).unwrap(), &mut x);
        numbers(&serde_json::from_str(a).unwrap(), &mut y);
        assert_eq!(x.len(), y.len(), "{h}\n{a}");
        for (p, q) in x.iter().zip(&y) {
            assert!((p - q).abs() <= tol, "{p} vs {q}:\nhost {h}\narm  {a}");
        }
    }
    assert_eq!(host.lines().count(), arm.lines().count());
}

#[test]
fn aarch64_build_matches_the_host_under_qemu() {
    let build = cargo_cross(&["build", "--bin", "kestrel"]);
    assert!(
        build.status.success(),
        "cross build failed (rustup target add {TRIPLE}; apt-get install gcc-aarch64-linux-gnu):\n{}",
        cargo_errors(&build)
    );
    let arm = cross_dir().join(TRIPLE).join("release/kestrel");
    let samples: Vec<String> = std::fs::read_dir(common::repo().join("models/fashion-cnn/samples"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut fashion = vec!["run", "models/fashion-cnn/model.onnx", "--json"];
    fashion.extend(samples.iter().map(String::as_str));
    let mut micro = vec!["run", "models/fashion-cnn/model.int8.onnx", "--json", "--backend", "micro"];
    micro.extend(samples.iter().map(String::as_str));
    let faces =
        ["run", "models/blazeface/model.onnx", "models/samples/astronaut.png", "models/samples/person.jpg", "--json"];
    // Float paths: tract's aarch64 kernels differ from x86's in summation order.
    assert_close(&common::kestrel_ok(&faces), &qemu(&arm, &faces, &[]), 1e-3);
    assert_close(&common::kestrel_ok(&fashion), &qemu(&arm, &fashion, &[]), 1e-5);
    // The integer runtime: exactly the same numbers.
    assert_close(&common::kestrel_ok(&micro), &qemu(&arm, &micro, &[]), 0.0);
    // `kestrel watch` as the Orin boards build it: GStreamer's test source through the arm64
    // libraries. The ball pattern is drawn from the source's frame count, so every frame both
    // runs processed must have exactly the same classes. The appsink keeps every buffer (no
    // `drop=true`, as `test://` has), paced at 30 fps: Kestrel's frame numbers are then the
    // source's, even where qemu is slower (with `test://` the appsink dropped frames before
    // Kestrel counted them, and "frame 1" was a different picture under qemu).
    let source = "gst://videotestsrc pattern=ball is-live=true num-buffers=60 ! \
                  video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert ! video/x-raw,format=RGB ! appsink name=kestrel";
    let watch =
        ["watch", "models/fashion-cnn/model.int8.onnx", source, "--frames", "10", "--json", "--backend", "micro"];
    let by_frame = |text: &str| -> std::collections::BTreeMap<u64, Value> {
        let lines = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
        lines.filter_map(|r| Some((r["frame"].as_u64()?, r["classes"].clone()))).collect()
    };
    let (h, a) = (by_frame(&common::kestrel_ok(&watch)), by_frame(&qemu(&arm, &watch, &[])));
    assert_eq!((h.len(), a.len()), (10, 10), "host {h:?}\narm {a:?}");
    let common: Vec<_> = a.keys().filter(|f| h.contains_key(f)).collect();
    assert!(!common.is_empty(), "no frame processed on both: host {h:?}\narm {a:?}");
    for f in common {
        assert_eq!(h[f], a[f], "frame {f}");
    }

    let eval = ["eval", "models/fashion-cnn/model.onnx", "--dataset", "fashion-mnist", "--limit", "1000", "--json"];
    let (h, a): (Value, Value) = (
        serde_json::from_str(&common::kestrel_ok(&eval)).unwrap(),
        serde_json::from_str(&qemu(&arm, &eval, &[])).unwrap(),
    );
    assert_eq!(h["correct"], a["correct"], "host {h}\narm {a}");

    // A sample of the conformance suite (every 8th case), its listed cases must pass on aarch64.
    let built = cargo_cross(&["test", "--test", "conformance", "--no-run", "--message-format", "short"]);
    assert!(built.status.success(), "{}", cargo_errors(&built));
    let stderr = String::from_utf8_lossy(&built.stderr);
    let exe = stderr
        .lines()
        .find_map(|l| l.split_once("tests/conformance.rs (").map(|(_, rest)| rest.trim_end_matches(')').to_string()))
        .expect("the conformance test executable");
    let out = qemu(std::path::Path::new(&exe), &[], &[("KESTREL_CONFORMANCE_EVERY", "8")]);
    assert!(out.contains("conformance (aarch64)"), "{out}");
    assert!(out.lines().any(|l| l.ends_with(" 0 failed")), "{out}");
    println!("{}", out.lines().filter(|l| l.starts_with("conformance")).collect::<Vec<_>>().join("\n"));
}

/// JetPack 4 and 5 boards (Jetson Nano, Xavier NX) have glibc 2.27 / 2.31, older than the glibc
/// build needs, so their board files use the static musl build: it must agree with the host too.
/// A second cold cross-build of tract costs CI about 14 minutes on 2 cores, so it runs outside
/// CI: `scripts/check-musl.sh` (sets `KESTREL_CROSS_MUSL=1`); here it is recorded as skipped.
#[test]
fn static_musl_build_matches_the_host_under_qemu() {
    const MUSL: &str = "aarch64-unknown-linux-musl";
    if std::env::var_os("KESTREL_CROSS_MUSL").is_none() {
        common::record_check("musl-static", false, "outside CI: run scripts/check-musl.sh");
        return;
    }
    let build = cargo_for(MUSL, &["build", "--bin", "kestrel"]);
    assert!(build.status.success(), "musl cross build failed (rustup target add {MUSL}):\n{}", cargo_errors(&build));
    let arm = cross_dir().join(MUSL).join("release/kestrel");
    let faces = ["run", "models/blazeface/model.onnx", "models/samples/astronaut.png", "--json"];
    assert_close(&common::kestrel_ok(&faces), &qemu(&arm, &faces, &[]), 1e-3);
    let micro = [
        "run",
        "models/fashion-cnn/model.int8.onnx",
        "models/fashion-cnn/samples/00-ankle-boot.png",
        "--json",
        "--backend",
        "micro",
    ];
    assert_close(&common::kestrel_ok(&micro), &qemu(&arm, &micro, &[]), 0.0);
    common::record_check("musl-static", true, "static musl build agrees with the host under qemu");
}
