//! `kestrel watch` as a ROS 2 node, against a second, independent DDS implementation: Eclipse
//! Cyclone DDS through its Python package (`tests/ros2/cyclone_peer.py`, the ROS 2 Humble types
//! declared with its IDL classes). The peer publishes sensor_msgs images as a camera driver does
//! and reads the vision_msgs results. The package is installed by `scripts/ros2-peer.sh` (which
//! `scripts/test.sh` runs) into `target/cyclonedds-venv`; without it these tests fail.
//! Each test uses a ROS_DOMAIN_ID of its own, so parallel tests cannot hear each other.

#![cfg(feature = "ros2")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const FACE_INT8: &str = "models/blazeface/model.int8.onnx";
const FACE_PHOTO: &str = "models/samples/astronaut.png";
const NO_FACE_PHOTO: &str = "models/samples/chelsea.png";
const FACE_JPEG: &str = "models/blazeface/calib/lfw-face-00.jpg";

fn peer_python() -> PathBuf {
    let python = common::repo().join("target/cyclonedds-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the ROS 2 interop tests need Cyclone DDS's Python package; `bash scripts/ros2-peer.sh` installs it (scripts/test.sh runs it)",
        python.display()
    );
    python
}

/// Domain `k` (0 to 2) of this test process: 101 to 220, three per process id slot, so parallel
/// test processes pick different ones (DDS ports fit up to domain 232).
fn domain(k: u32) -> String {
    (101 + (std::process::id() % 40) * 3 + k).to_string()
}

fn scratch(name: &str) -> PathBuf {
    let dir = common::repo().join("target/tmp/ros2").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An image as a binary PPM, the raw RGB the peer sends as sensor_msgs/Image.
fn ppm(image: &str, dir: &Path) -> String {
    let rgb = kestrel_vision::image_io::load_rgb(&common::repo().join(image)).unwrap();
    let mut bytes = format!("P6\n{} {}\n255\n", rgb.width(), rgb.height()).into_bytes();
    bytes.extend_from_slice(rgb.as_raw());
    let path = dir.join(Path::new(image).with_extension("ppm").file_name().unwrap());
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// The image in gray as the peer makes its mono8 (8-bit luma, (77 R + 150 G + 29 B) >> 8), saved
/// as an RGB PNG for `kestrel run`.
fn gray_png(image: &str, dir: &Path) -> String {
    let mut rgb = kestrel_vision::image_io::load_rgb(&common::repo().join(image)).unwrap();
    for p in rgb.pixels_mut() {
        let [r, g, b] = p.0.map(u32::from);
        p.0 = [((77 * r + 150 * g + 29 * b) >> 8) as u8; 3];
    }
    let path = dir.join("gray.png");
    kestrel_vision::image_io::save_png(&rgb, &path).unwrap();
    path.display().to_string()
}

fn spawn_watch(args: &[&str], domain: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .arg("watch")
        .args(args)
        .env("ROS_DOMAIN_ID", domain)
        .current_dir(common::repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kestrel")
}

/// Runs the peer to its end (killed after `limit`); its JSON lines.
fn run_peer(args: &[&str], domain: &str, limit: Duration) -> Vec<Value> {
    let mut child = Command::new(peer_python())
        .arg(common::repo().join("tests/ros2/cyclone_peer.py"))
        .args(args)
        .env("ROS_DOMAIN_ID", domain)
        .env("KESTREL_ROS_PREFIX", "kestrel_test")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the Cyclone DDS peer");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Cyclone DDS peer failed ({:?}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Ends `kestrel watch` as a service manager would (SIGTERM); its output, which must be a clean exit.
fn stop(child: Child) -> Output {
    // SAFETY: kill(2) on the pid of a child not yet waited for.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "kestrel watch failed ({:?}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn final_stats(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last: Value = serde_json::from_str(text.lines().last().expect("output lines")).unwrap();
    assert_eq!(last["stats"]["final"], true, "{last}");
    last["stats"].clone()
}

/// `kestrel run`'s boxes for an image, as vision_msgs centre and size.
fn reference_boxes(image: &str) -> Vec<[f64; 4]> {
    let out = common::kestrel_ok(&["run", FACE_INT8, image, "--json", "--backend", "micro"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let [x0, y0, x1, y1] = ["x_min", "y_min", "x_max", "y_max"].map(|k| d[k].as_f64().unwrap());
            [(x0 + x1) / 2.0, (y0 + y1) / 2.0, x1 - x0, y1 - y0]
        })
        .collect()
}

fn received_boxes(result: &Value) -> Vec<[f64; 4]> {
    result["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| ["cx", "cy", "w", "h"].map(|k| d[k].as_f64().unwrap()))
        .collect()
}

fn assert_boxes_within(got: &[[f64; 4]], want: &[[f64; 4]], tolerance: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.iter().zip(w).all(|(a, b)| (a - b).abs() <= tolerance), "{what}: {g:?} vs {w:?} (±{tolerance} px)");
    }
}

#[test]
fn cyclone_images_in_give_detections_with_their_headers_and_bad_messages_are_skipped() {
    let domain = domain(0);
    let dir = scratch("interop");
    let (face, no_face) = (ppm(FACE_PHOTO, &dir), ppm(NO_FACE_PHOTO, &dir));
    let repo = common::repo();
    let plan = json!([
        {"kind": "image", "ppm": face, "encoding": "rgb8"},
        {"kind": "image", "ppm": face, "encoding": "bgr8", "frame_id": "left_camera"},
        {"kind": "image", "ppm": face, "fault": "step"},
        {"kind": "image", "ppm": face, "encoding": "yuv422"},
        {"kind": "image", "ppm": face, "fault": "short"},
        {"kind": "image", "ppm": no_face, "encoding": "rgb8"},
        {"kind": "image", "ppm": face, "fault": "encoding"},
        {"kind": "image", "ppm": face, "encoding": "yuv422_yuy2"},
        {"kind": "image", "ppm": face, "encoding": "mono8"},
        {"kind": "compressed", "file": repo.join(FACE_JPEG), "format": "jpeg"},
        {"kind": "compressed", "file": repo.join(FACE_PHOTO), "format": "png"},
    ]);
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();

    // Default QoS: the sensor-data profile (best effort).
    let watch = spawn_watch(
        &[
            FACE_INT8,
            "ros2://kestrel_test/image",
            "ros2://kestrel_test/image/compressed",
            "--ros2=kestrel_test/detections",
            "--backend",
            "micro",
            "--json",
        ],
        &domain,
    );
    let lines = run_peer(&["plan", plan_path.to_str().unwrap()], &domain, Duration::from_secs(240));
    let out = stop(watch);
    let stderr = String::from_utf8_lossy(&out.stderr);

    let results: Vec<&Value> = lines.iter().filter(|l| l.get("message").is_some()).collect();
    let answered: Vec<u64> = results.iter().map(|r| r["message"].as_u64().unwrap()).collect();
    assert_eq!(answered, [0, 1, 3, 5, 7, 8, 9, 10], "every good image answered, in order");
    for r in &results {
        // The image's header, unchanged, on the array and on each detection.
        let (stamp, frame_id) = (&r["stamp_ns"], &r["frame_id"]);
        let expected_id = if r["message"] == 1 { "left_camera" } else { "camera_optical_frame" };
        assert_eq!(frame_id, expected_id, "{r}");
        for d in r["detections"].as_array().unwrap() {
            assert_eq!((&d["stamp_ns"], &d["frame_id"]), (stamp, frame_id), "{r}");
            assert_eq!(d["class_id"], "0");
        }
    }
    let by_message = |i: u64| *results.iter().find(|r| r["message"] == i).unwrap();
    let face_boxes = reference_boxes(FACE_PHOTO);
    assert_eq!(face_boxes.len(), 1);
    // Same pixels as `kestrel run` reads: the same boxes, within 1 px.
    for i in [0, 1, 10] {
        assert_boxes_within(&received_boxes(by_message(i)), &face_boxes, 1.0, &format!("message {i}"));
    }
    assert_boxes_within(&received_boxes(by_message(9)), &reference_boxes(FACE_JPEG), 1.0, "JPEG");
    // Gray: `kestrel run` on the same gray pixels (the peer's luma formula) gives the same boxes.
    let gray = gray_png(FACE_PHOTO, &dir);
    assert_boxes_within(&received_boxes(by_message(8)), &reference_boxes(&gray), 1.0, "mono8");
    // YUV 4:2:2 halves the chroma: the face is still found, near the same place.
    for i in [3, 7] {
        assert_boxes_within(&received_boxes(by_message(i)), &face_boxes, 6.0, &format!("message {i}"));
    }
    assert!(received_boxes(by_message(5)).is_empty(), "no face: an empty array is still published");

    let summary = lines.last().unwrap();
    assert_eq!(summary["faulty_answered"], 0, "{summary}");
    assert_eq!(summary["labels"], json!([[0, "face detection (BlazeFace short-range)"]]), "{summary}");
    assert_eq!(summary["label_threshold"], 0.5);
    let stats = final_stats(&out);
    assert_eq!(stats["sources"][0]["frames_skipped"], 3, "{stats}\n{stderr}");
    for why in ["step 1535 is less than width × 3 bytes", "less than height × step", "encoding `bayer_rggb16`"] {
        assert!(stderr.contains(why), "warning `{why}` missing:\n{stderr}");
    }
}

#[test]
fn results_of_a_video_reach_a_late_subscriber_reliably_with_the_given_frame_id() {
    let domain = domain(1);
    let watch = spawn_watch(
        &[
            FACE_INT8,
            "models/clips/face.mp4",
            "--loop",
            "--realtime",
            "--ros2=kestrel_test/detections",
            "--ros2-reliable",
            "--frame-id",
            "front_camera",
            "--backend",
            "micro",
            "--json",
        ],
        &domain,
    );
    // The peer joins after kestrel has published its class names: transient local keeps them.
    std::thread::sleep(Duration::from_secs(2));
    let lines = run_peer(&["listen", "6"], &domain, Duration::from_secs(60));
    stop(watch);
    let results: Vec<&Value> = lines.iter().filter(|l| l.get("stamp_ns").is_some()).collect();
    assert!(results.len() >= 20, "{} results in 6 s of a 30 fps clip", results.len());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let stamps: Vec<u64> = results.iter().map(|r| r["stamp_ns"].as_u64().unwrap()).collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "capture stamps increase");
    assert!(
        stamps.iter().all(|&s| now - s < 60_000_000_000 && s < now),
        "stamps are this run's wall-clock capture times"
    );
    assert!(results.iter().all(|r| r["frame_id"] == "front_camera"));
    assert!(results.iter().any(|r| !received_boxes(r).is_empty()), "the clip has a face");
    assert_eq!(lines.last().unwrap()["labels"], json!([[0, "face detection (BlazeFace short-range)"]]));
}

#[test]
fn a_classifier_publishes_classification_with_its_label_names() {
    let domain = domain(2);
    let model = "models/fashion-cnn/model.onnx";
    let watch = spawn_watch(
        &[
            model,
            "models/fashion-cnn/samples",
            "--loop",
            "--fps",
            "20",
            "--realtime",
            "--ros2=kestrel_test/detections",
            "--json",
        ],
        &domain,
    );
    std::thread::sleep(Duration::from_secs(1));
    let lines = run_peer(&["listen", "4", "classification"], &domain, Duration::from_secs(60));
    stop(watch);
    let results: Vec<&Value> = lines.iter().filter(|l| l.get("classes").is_some()).collect();
    assert!(results.len() >= 20, "{} results in 4 s at 20 fps", results.len());
    // The top class of each sample is the one `kestrel run` gives it (the samples are named by it).
    let expected = common::kestrel_ok(&["run", model, "models/fashion-cnn/samples/00-ankle-boot.png", "--json"]);
    let expected: Value = serde_json::from_str(&expected).unwrap();
    let top = &expected["classes"][0];
    let id = top["index"].as_u64().unwrap().to_string();
    let boot = results.iter().find(|r| r["classes"][0]["class_id"] == id.as_str()).expect("an ankle boot");
    assert!((boot["classes"][0]["score"].as_f64().unwrap() - top["score"].as_f64().unwrap()).abs() < 1e-6);
    assert!(results.iter().all(|r| r["classes"].as_array().unwrap().len() == 3 && r["frame_id"] == "samples"));
    let labels = &lines.last().unwrap()["labels"];
    assert_eq!(labels[9], json!([9, "Ankle boot"]), "{labels}");
    assert_eq!(labels.as_array().unwrap().len(), 10);
}

#[test]
fn bad_ros_settings_are_one_clear_error_each() {
    let cases: [(&[&str], &str, &str); 5] = [
        (&["ros2://camera"], "999", "ROS_DOMAIN_ID=\"999\": expected a whole number from 0 to 232"),
        (&["ros2://bad topic"], "7", "ROS 2 name `/bad topic`: ' ' is not allowed there"),
        (&["ros2://9cam"], "7", "ROS 2 name `/9cam`: '9' is not allowed there"),
        (&["models/clips/face.mp4", "--ros2=det", "--ros2-node", "bad-name"], "7", "ROS 2 name `/bad-name`"),
        (&["models/clips/face.mp4", "--ros2=det/"], "7", "ROS 2 name `det/`: a `/` out of place"),
    ];
    for (args, domain, expected) in cases {
        let mut all = vec![FACE_INT8];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--frames", "1"]);
        let out = Command::new(env!("CARGO_BIN_EXE_kestrel"))
            .arg("watch")
            .args(&all)
            .env("ROS_DOMAIN_ID", domain)
            .current_dir(common::repo())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(stderr.contains(expected), "{all:?}: expected `{expected}` in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // A model without a decoder has nothing to publish.
    let dir = scratch("raw");
    std::fs::copy(common::repo().join("models/blazeface/model.onnx"), dir.join("bare.onnx")).unwrap();
    let bare = dir.join("bare.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(["watch", bare.to_str().unwrap(), "models/clips/face.mp4", "--ros2", "--frames", "1"])
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("decoder is `raw`"), "{stderr}");
}
