//! Every committed hostile model (tests/hostile/, made by scripts/make_fixtures.py) must be
//! refused by `kestrel inspect` and `kestrel run` with one clear `Error:` line, exit code 1,
//! no panic, no signal, within 1 s and 256 MB of address space.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIME_LIMIT: Duration = Duration::from_secs(1);
const MEMORY_LIMIT_KB: u32 = 256 * 1024;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs kestrel under `ulimit -v`, killing it if it outlives a generous hang guard.
fn kestrel_limited(args: &[&str]) -> Outcome {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_LIMIT_KB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_kestrel"))
        .args(args)
        .current_dir(common::repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kestrel");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for kestrel") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kestrel {args:?} hung for 20 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().map(|mut s| s.read_to_string(&mut stdout));
    child.stderr.take().map(|mut s| s.read_to_string(&mut stderr));
    Outcome { code: status.code(), stdout, stderr, elapsed }
}

#[test]
fn every_hostile_model_is_refused_cleanly() {
    let dir = common::repo().join("tests/hostile");
    let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).expect("tests/hostile/EXPECTED.tsv");
    let cases: Vec<(&str, &str)> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once('\t'))
        .collect();
    assert!(cases.len() >= 25, "only {} hostile cases listed", cases.len());
    let mut problems = Vec::new();
    for (file, phrase) in &cases {
        let path = format!("tests/hostile/{file}");
        for args in [vec!["inspect", path.as_str()], vec!["run", path.as_str(), "models/samples/astronaut.png"]] {
            let out = kestrel_limited(&args);
            let lines: Vec<&str> = out.stderr.lines().collect();
            let ok = out.code == Some(1)
                && lines.len() == 1
                && lines[0].starts_with("Error: ")
                && lines[0].contains(phrase)
                && !out.stderr.contains("panicked")
                && out.stdout.is_empty()
                && out.elapsed < TIME_LIMIT;
            if !ok {
                problems.push(format!(
                    "kestrel {}: exit {:?} in {:?}, stderr {:?} (wanted one `Error:` line containing {phrase:?}), stdout {:?}",
                    args.join(" "),
                    out.code,
                    out.elapsed,
                    out.stderr,
                    out.stdout
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn bad_images_and_paths_are_refused_cleanly() {
    let tmp = std::env::temp_dir().join(format!("kestrel-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let garbage = tmp.join("garbage.png");
    std::fs::write(&garbage, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    let truncated = tmp.join("truncated.png");
    let png = std::fs::read(common::repo().join("models/samples/astronaut.png")).unwrap();
    std::fs::write(&truncated, &png[..png.len() / 3]).unwrap();
    let model = "models/blazeface/model.onnx";
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["inspect".into(), "no/such/model.onnx".into()], "no/such/model.onnx"),
        (vec!["inspect".into(), "models".into()], "is a directory"),
        (vec!["inspect".into(), model.into(), "--max-model-bytes".into(), "1000".into()], "exceeds the limit of 1000"),
        (vec!["run".into(), model.into(), "no/such/image.png".into()], "no/such/image.png"),
        (vec!["run".into(), model.into(), garbage.display().to_string()], "garbage.png"),
        (vec!["run".into(), model.into(), truncated.display().to_string()], "truncated.png"),
        (vec!["eval".into(), model.into(), "--dataset".into(), "imagenet".into()], ""),
        (
            vec!["run".into(), model.into(), "models/samples/astronaut.png".into(), "--backend".into(), "tpu".into()],
            "unknown backend `tpu`",
        ),
    ];
    for (args, phrase) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = kestrel_limited(&args);
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("Error: ")).collect();
        assert_eq!(out.code, Some(1), "kestrel {args:?}: {:?}", out.stderr);
        assert!(!errors.is_empty() && errors.iter().any(|l| l.contains(phrase)), "kestrel {args:?}: {:?}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "kestrel {args:?}: {:?}", out.stderr);
    }
    std::fs::remove_dir_all(&tmp).ok();
}
