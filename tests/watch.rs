//! `kestrel watch` through real GStreamer: the bundled H.264 clips (models/clips/face.mp4 and
//! objects.mp4, made from bundled photos by `scripts/make_clip.py`), `videotestsrc`, an RTSP server
//! (examples/rtsp_camera.rs) stopped and restarted mid-stream, two sources at once, bad sources
//! and SIGTERM. Needs the GStreamer packages `scripts/system-packages.sh test` installs; without
//! them these tests fail and say so. `v4l2://` and `csi://` need devices this machine lacks:
//! kestrel-camera's tests run their pipelines with the device elements replaced.

#![cfg(feature = "camera")]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

const FACE: &str = "models/blazeface/model.onnx";
const FACE_INT8: &str = "models/blazeface/model.int8.onnx";
const CLIP: &str = "models/clips/face.mp4";
const CLIP_FRAMES: usize = 45;

/// These tests measure latency and memory: one at a time, so they do not load each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn scratch(name: &str) -> PathBuf {
    let dir = common::repo().join("target/tmp/watch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn watch_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kestrel"));
    cmd.arg("watch").args(args).current_dir(common::repo());
    cmd
}

/// Runs `kestrel watch`, killing it (and failing) if it runs past `limit`.
fn watch(args: &[&str], limit: Duration) -> Output {
    let child = watch_cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("running kestrel");
    finish(child, limit, args)
}

/// Waits for `child`, reading its pipes meanwhile (a full pipe would stall it); kills it and
/// fails if it runs past `limit`.
fn finish(child: Child, limit: Duration, what: &[&str]) -> Output {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on the pid of a child whose waiter thread has not reaped it yet.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let out = rx.recv().unwrap().unwrap();
            panic!("kestrel watch {what:?} ran past {limit:?} (hang)\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

/// The result lines and the final stats line.
fn lines(out: &Output) -> (Vec<Value>, Value) {
    let text = String::from_utf8_lossy(&out.stdout);
    let all: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let last = all.last().cloned().unwrap_or(Value::Null);
    assert_eq!(last["stats"]["final"], true, "the last line is the final stats line: {last}");
    (all.into_iter().filter(|v| v.get("frame").is_some()).collect(), last["stats"].clone())
}

fn ok(out: &Output) {
    assert!(out.status.success(), "kestrel watch failed ({:?}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

fn boxes(v: &Value) -> Vec<[f64; 4]> {
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| ["x_min", "y_min", "x_max", "y_max"].map(|k| d[k].as_f64().unwrap()))
        .collect()
}

/// The clip's frames as GStreamer decodes them (the same conversion `watch` asks for), as PNGs.
fn decoded_frames(dir: &Path) -> Vec<PathBuf> {
    let status = Command::new("gst-launch-1.0")
        .args(["-q", "filesrc", &format!("location={CLIP}"), "!", "decodebin", "!", "videoconvert", "!", "videoscale"])
        .args(["!", "video/x-raw,format=RGB", "!", "pngenc", "!", "multifilesink"])
        .arg(format!("location={}/%03d.png", dir.display()))
        .current_dir(common::repo())
        .status()
        .expect("gst-launch-1.0 (apt-get install gstreamer1.0-tools, or run scripts/test.sh)");
    assert!(status.success());
    let mut frames: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    frames.sort();
    frames
}

#[test]
fn the_clip_gives_kestrel_runs_boxes_on_every_frame_in_order() {
    let _serial = serial();
    let out = watch(&[FACE, &format!("file://{CLIP}"), "--json"], Duration::from_secs(60));
    ok(&out);
    let (results, stats) = lines(&out);
    let numbers: Vec<u64> = results.iter().map(|r| r["frame"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..CLIP_FRAMES as u64).collect::<Vec<_>>(), "no gaps when not real-time");
    assert_eq!((stats["frames_processed"].as_u64(), stats["frames_dropped"].as_u64()), (Some(45), Some(0)));

    let frames = decoded_frames(&scratch("clip-frames"));
    assert_eq!(frames.len(), CLIP_FRAMES);
    let mut run_args = vec!["run", FACE, "--json"];
    run_args.extend(frames.iter().map(|p| p.to_str().unwrap()));
    let reference: Vec<Value> =
        common::kestrel_ok(&run_args).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mut with_face = 0;
    for (r, want) in results.iter().zip(&reference) {
        let (got, want) = (boxes(r), boxes(want));
        assert_eq!(got.len(), want.len(), "frame {}: {r}\nkestrel run: {want:?}", r["frame"]);
        for (g, w) in got.iter().zip(&want) {
            assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() <= 1.0), "frame {}: {g:?} vs {w:?}", r["frame"]);
        }
        with_face += usize::from(got.len() == 1);
        assert!(r["pts_ns"].is_u64() && r["captured_unix_ns"].as_u64().unwrap() > 1_600_000_000_000_000_000);
        assert!(r["latency_ms"].as_f64().unwrap() >= r["stages_ms"]["infer"].as_f64().unwrap());
    }
    assert!(with_face * 100 >= CLIP_FRAMES * 95, "a face in {with_face} of {CLIP_FRAMES} frames");

    // The compressed model, exported to a .kmodel, finds it too: alone (its config inside), on
    // the integer runtime.
    let kmodel = scratch("kmodel").join("faces.kmodel");
    common::kestrel_ok(&["export", FACE_INT8, "-o", kmodel.to_str().unwrap()]);
    let out = watch(&[kmodel.to_str().unwrap(), CLIP, "--json"], Duration::from_secs(60));
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("backend micro"));
    let (results, _) = lines(&out);
    assert_eq!(results.len(), CLIP_FRAMES);
    let found = results.iter().filter(|r| boxes(r).len() == 1).count();
    assert!(found * 100 >= CLIP_FRAMES * 95, "int8 on micro: a face in {found} of {CLIP_FRAMES} frames");
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_source_faster_than_inference_drops_old_frames_with_bounded_latency_and_flat_memory() {
    let _serial = serial();
    // 300 fps is several times what BlazeFace does here (about 100 inferences/s on one core).
    let args = [FACE, "test://", "--fps", "300", "--realtime", "--json", "--duration", "5", "--stats-every", "1"];
    let mut child = watch_cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(1500));
    let warm = rss_kb(pid);
    std::thread::sleep(Duration::from_millis(3000));
    let late = rss_kb(pid);
    let stdout = child.stdout.take().unwrap();
    let text = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let out = finish(child, Duration::from_secs(30), &args);
    ok(&out);
    let out = Output { stdout: text.join().unwrap().into_bytes(), ..out };
    let (results, stats) = lines(&out);
    assert!(!results.is_empty());
    let (captured, dropped) = (stats["frames_captured"].as_u64().unwrap(), stats["frames_dropped"].as_u64().unwrap());
    assert!(dropped > 0 && captured > results.len() as u64, "nothing dropped: {stats}");
    // A queue that grew would add a frame's inference per queued frame: seconds by now.
    let p99 = stats["latency_ms"]["p99"].as_f64().unwrap();
    assert!(p99 < 250.0, "latency p99 {p99} ms: frames are queuing\n{stats}");
    assert!(warm > 0 && late < warm + 8 * 1024, "RSS grew from {warm} kB to {late} kB");
    eprintln!("overload: captured {captured}, dropped {dropped}, latency p99 {p99} ms, RSS {warm} -> {late} kB");
}

#[test]
fn two_sources_at_once_each_tagged() {
    let _serial = serial();
    let out = watch(&[FACE, "test://", CLIP, "--json", "--duration", "4"], Duration::from_secs(60));
    ok(&out);
    let (results, stats) = lines(&out);
    let from = |i: u64| results.iter().filter(|r| r["source_index"] == i).count();
    assert!(from(0) > 0, "no results from test://");
    assert_eq!(from(1), CLIP_FRAMES, "the clip's frames, all of them");
    assert!(results.iter().all(|r| r["source"] == if r["source_index"] == 0 { "test://" } else { CLIP }));
    assert_eq!(stats["sources"].as_array().unwrap().len(), 2);
}

/// Two inference workers over one prepared model (`--workers 2`, the integer runtime and tract):
/// two sources inferred at once, each source's frames all there and in order, each result the
/// one a single worker gives.
#[test]
fn two_workers_keep_each_sources_frames_in_order() {
    let _serial = serial();
    for model in [FACE_INT8, FACE] {
        let run = |workers: &str| {
            let out = watch(&[model, CLIP, CLIP, "--json", "--workers", workers], Duration::from_secs(60));
            ok(&out);
            (lines(&out).0, String::from_utf8_lossy(&out.stderr).to_string())
        };
        let ((one, _), (two, stderr)) = (run("1"), run("2"));
        assert!(stderr.contains("inference: 2 workers over one prepared model"), "{stderr}");
        for source in [0, 1] {
            let of = |rs: &[Value]| -> Vec<(u64, Vec<[f64; 4]>)> {
                let mine = rs.iter().filter(|r| r["source_index"] == source);
                mine.map(|r| (r["frame"].as_u64().unwrap(), boxes(r))).collect()
            };
            let (a, b) = (of(&one), of(&two));
            let numbers: Vec<u64> = b.iter().map(|f| f.0).collect();
            assert_eq!(numbers, (0..CLIP_FRAMES as u64).collect::<Vec<_>>(), "{model} source {source}");
            assert_eq!(a, b, "{model} source {source}: one worker vs two");
        }
    }
    // By default, one worker per source as far as the cores go.
    let out = watch(&[FACE, CLIP, CLIP, "--json", "--frames", "4"], Duration::from_secs(60));
    ok(&out);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let said = String::from_utf8_lossy(&out.stderr).contains("inference: 2 workers over one prepared model");
    assert_eq!(said, cores >= 2, "{cores} cores: {}", String::from_utf8_lossy(&out.stderr));
    let out = watch(&[FACE, CLIP, "--workers", "0"], Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--workers must be within 1..=64"));
}

/// With no model before the sources, the bundled COCO detector watches: on the objects clip
/// (scripts/make_clip.py) it names the dog and the bicycle of the first photo and the giraffe
/// of the last; a model with no source after it is an error naming what to add.
#[test]
fn without_a_model_the_bundled_coco_detector_watches() {
    let _serial = serial();
    let out = watch(&["models/clips/objects.mp4", "--json"], Duration::from_secs(60));
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("model: the bundled COCO detector"), "{stderr}");
    let (results, _) = lines(&out);
    assert_eq!(results.len(), 80, "every frame of the clip");
    let labels = |r: &Value| -> Vec<String> {
        r["detections"].as_array().unwrap().iter().map(|d| d["label"].as_str().unwrap().to_string()).collect()
    };
    let (first, last) = (labels(&results[0]), labels(&results[79]));
    assert!(first.contains(&"dog".into()) && first.contains(&"bicycle".into()), "{first:?}");
    assert!(last.contains(&"giraffe".into()), "{last:?}");
    let out = watch(&[FACE, "--json"], Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Error: no source: give one or more after the model"), "{stderr}");
}

#[test]
fn bad_sources_give_one_clear_error() {
    let _serial = serial();
    let dir = scratch("bad");
    let clip = std::fs::read(common::repo().join(CLIP)).unwrap();
    let truncated = dir.join("truncated.mp4");
    std::fs::write(&truncated, &clip[..clip.len() * 6 / 10]).unwrap();
    let cases: [(&str, &[&str], &str); 5] = [
        ("http://camera/stream", &[], "scheme `http` is not one of"),
        ("missing.mp4", &[], "no such file"),
        ("Cargo.toml", &[], "text file"),
        (truncated.to_str().unwrap(), &[], "no playable streams"),
        ("rtsp://127.0.0.1:9/none", &["--max-reconnects", "2"], "gave up after 2 reconnect attempt(s)"),
    ];
    for (source, extra, want) in cases {
        let mut args = vec![FACE, source, "--json"];
        args.extend_from_slice(extra);
        let out = watch(&args, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{source}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("Error:")).collect();
        assert_eq!(errors.len(), 1, "{source}: {stderr}");
        assert!(errors[0].contains(want) && errors[0].contains(source), "{source}: {}", errors[0]);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn sigterm_drains_writes_the_last_stats_line_and_exits_0() {
    let _serial = serial();
    let mut child =
        watch_cmd(&[FACE, "test://", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"frame\""), "{first}");
    // SAFETY: kill(2) with the pid of a child this test spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let rest = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let out = finish(child, Duration::from_secs(10), &["SIGTERM"]);
    ok(&out);
    let out = Output { stdout: (first + &rest.join().unwrap()).into_bytes(), ..out };
    let (results, stats) = lines(&out);
    assert_eq!(stats["frames_processed"].as_u64(), Some(results.len() as u64), "{stats}");
}

/// A running RTSP camera; killed when dropped (also when a test fails).
struct Camera(Child);

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The RTSP "camera" (kestrel-camera's examples/rtsp_camera.rs), built on first use.
fn rtsp_camera(port: u16) -> Camera {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let server = BUILT.get_or_init(|| {
        let out = Command::new("cargo")
            .args(["build", "--release", "-p", "kestrel-camera", "--example", "rtsp_camera"])
            .current_dir(common::repo())
            .output()
            .expect("running cargo");
        assert!(out.status.success(), "building the RTSP camera: {}", String::from_utf8_lossy(&out.stderr));
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("examples/rtsp_camera")
    });
    let mut child = Command::new(server)
        .args([&port.to_string(), CLIP])
        .current_dir(common::repo())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", server.display()));
    let mut ready = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    Camera(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn an_rtsp_camera_that_restarts_is_reconnected() {
    let _serial = serial();
    let port = free_port();
    let camera = rtsp_camera(port);
    let url = format!("rtsp://127.0.0.1:{port}/clip");
    let args = [FACE, url.as_str(), "--json", "--duration", "8", "--stall-timeout", "1"];
    let mut child = watch_cmd(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    for _ in 0..5 {
        stdout.read_line(&mut seen).unwrap();
    }
    drop(camera);
    std::thread::sleep(Duration::from_millis(1500));
    let restarted = kestrel_camera_clock();
    let camera = rtsp_camera(port);
    let rest = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let out = finish(child, Duration::from_secs(30), &args);
    drop(camera);
    ok(&out);
    let out = Output { stdout: (seen + &rest.join().unwrap()).into_bytes(), ..out };
    let (results, stats) = lines(&out);
    assert!(stats["reconnects"].as_u64().unwrap() >= 1, "{stats}");
    let after = results.iter().filter(|r| r["captured_unix_ns"].as_u64().unwrap() > restarted).count();
    assert!(after >= 10, "{after} results after the camera came back\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(results.iter().filter(|r| boxes(r).len() == 1).count() * 100 >= results.len() * 90);
}

/// Now, as the `captured_unix_ns` stamps count it.
fn kestrel_camera_clock() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Headless Chromium on the preview page: `--dump-dom` (after `ms` of page life) or a screenshot.
fn chromium(url: &str, ms: u32, extra: &[&str]) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", &format!("--timeout={ms}")])
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium (apt-get install chromium, or run scripts/test.sh)");
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number in the page element `id` (`None` while it shows its placeholder).
fn dom_number(dom: &str, id: &str) -> Option<f64> {
    let at = dom.find(&format!("id=\"{id}\">")).unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[at + id.len() + 6..];
    rest[..rest.find('<')?].trim().parse().ok()
}

#[test]
fn the_preview_page_shows_the_live_annotated_view_and_live_stats() {
    let _serial = serial();
    let dir = scratch("preview");
    let args = [FACE, "test://", CLIP, "--loop", "--preview", "127.0.0.1:0", "--duration", "15"];
    let mut child = watch_cmd(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut url = String::new();
    while !url.starts_with("preview: ") {
        url.clear();
        assert!(stderr.read_line(&mut url).unwrap() > 0, "no preview address on stderr");
    }
    let url = url.trim_start_matches("preview: ").trim().to_string();
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());

    // The first page load also starts Chromium's profile: give the stats a few tries to arrive.
    let first = (0..5)
        .map(|_| chromium(&url, 1500, &["--dump-dom"]))
        .find(|dom| dom_number(dom, "processed").is_some())
        .expect("the page never showed the stats");
    let second = chromium(&url, 1500, &["--dump-dom"]);
    let shot = dir.join("preview.png");
    chromium(&url, 2500, &[&format!("--screenshot={}", shot.display())]);
    assert!(first.contains("id=\"state\">live"), "{first}");
    let (a, b) = (dom_number(&first, "processed"), dom_number(&second, "processed"));
    assert!(a > Some(0.0) && b > a, "frames processed on the page: {a:?}, then {b:?}");
    assert!(dom_number(&second, "elapsed") > dom_number(&first, "elapsed"));
    assert!(second.contains("frame ") && second.contains("detection(s)"), "latest results shown: {second}");

    // The annotated frame: BlazeFace's box is drawn in (40, 220, 60); JPEG moves it a little.
    let png = kestrel_vision::image::open(&shot).unwrap().to_rgb8();
    let green = png.pixels().filter(|p| p[1] > 180 && p[0] < 100 && p[2] < 110).count();
    assert!(green > 300, "{green} box-green pixels in the screenshot {}", shot.display());
    let out = finish(child, Duration::from_secs(30), &args);
    ok(&out);
    drop(drain);
}
