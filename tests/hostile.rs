//! Every committed hostile model (tests/hostile/, made by scripts/make_fixtures.py) must be
//! refused by `kestrel inspect` and `kestrel run` with one clear `Error:` line naming the problem
//! (each case's phrase), exit code 1, no panic, no signal. Guards, not measurements: a run is
//! killed as hung after 10 s and may map at most 1 GiB of address space. What each run really
//! took — wall time and peak resident memory, the "under 1 s, under 256 MB" figures — is printed
//! as a table (`cargo test --release --test hostile -- --nocapture`).

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HANG_GUARD: Duration = Duration::from_secs(10);
const ADDRESS_SPACE_GUARD_KB: u32 = 1024 * 1024;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    /// Peak resident memory of the process (getrusage's ru_maxrss), in KiB.
    peak_rss_kib: i64,
}

/// Runs kestrel under `ulimit -v`, killing it if it outlives the hang guard; reaps it with
/// `wait4` for its peak memory.
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which std's `Child` does not see
fn kestrel_limited(args: &[&str]) -> Outcome {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_GUARD_KB}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_kestrel"))
        .args(args)
        .current_dir(common::repo())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kestrel");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }),
    );
    let start = Instant::now();
    let pid = child.id() as libc::pid_t;
    let (status, usage) = loop {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet reaped; both pointers are to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "wait4 failed for kestrel {args:?}");
        if reaped == pid {
            break (status, usage);
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kestrel {args:?} hung: still running after {HANG_GUARD:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let (stdout, stderr) = (readers.0.join().unwrap(), readers.1.join().unwrap());
    Outcome { code, stdout, stderr, elapsed, peak_rss_kib: usage.ru_maxrss }
}

/// The measured table: one row per run, then the slowest and the largest.
fn report(rows: &[(String, Duration, i64)]) {
    println!("{:<70} {:>9} {:>10}", "run", "wall ms", "peak MiB");
    for (run, t, kib) in rows {
        println!("{run:<70} {:>9.1} {:>10.1}", t.as_secs_f64() * 1e3, *kib as f64 / 1024.0);
    }
    let slowest = rows.iter().map(|r| r.1).max().unwrap_or_default();
    let largest = rows.iter().map(|r| r.2).max().unwrap_or_default();
    println!(
        "{} runs: slowest {:.1} ms, largest peak {:.1} MiB",
        rows.len(),
        slowest.as_secs_f64() * 1e3,
        largest as f64 / 1024.0
    );
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
    let mut measured = Vec::new();
    for (file, phrase) in &cases {
        assert!(!phrase.trim().is_empty(), "hostile case {file} names no phrase its error must contain");
        let path = format!("tests/hostile/{file}");
        for args in [vec!["inspect", path.as_str()], vec!["run", path.as_str(), "models/samples/astronaut.png"]] {
            let out = kestrel_limited(&args);
            let lines: Vec<&str> = out.stderr.lines().collect();
            let ok = out.code == Some(1)
                && lines.len() == 1
                && lines[0].starts_with("Error: ")
                && lines[0].contains(phrase)
                && !out.stderr.contains("panicked")
                && out.stdout.is_empty();
            measured.push((args.join(" "), out.elapsed, out.peak_rss_kib));
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
    report(&measured);
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
        (vec!["eval".into(), model.into(), "--dataset".into(), "imagenet".into()], "unknown dataset `imagenet`"),
        (
            vec!["run".into(), model.into(), "models/samples/astronaut.png".into(), "--backend".into(), "tpu".into()],
            "unknown backend `tpu`",
        ),
    ];
    let mut measured = Vec::new();
    for (args, phrase) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = kestrel_limited(&args);
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("Error: ")).collect();
        assert_eq!(out.code, Some(1), "kestrel {args:?}: {:?}", out.stderr);
        assert!(!errors.is_empty() && errors.iter().any(|l| l.contains(phrase)), "kestrel {args:?}: {:?}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "kestrel {args:?}: {:?}", out.stderr);
        measured.push((args.join(" "), out.elapsed, out.peak_rss_kib));
    }
    report(&measured);
    std::fs::remove_dir_all(&tmp).ok();
}
