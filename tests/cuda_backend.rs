//! The CUDA backend asserts what is true on the host it runs on. Without a GPU device (this
//! machine, CI): a clean one-line error and exit 1 — with `--features cuda` "no CUDA driver
//! found", without it that the build has no CUDA support — and `--backend auto` on the CPU.
//! With a device and a CUDA build: the models run on CUDA and match the CPU (boxes within
//! 0.5 px, scores within 1e-3), the self-test passes, and `auto` picks CUDA for a float model.

mod common;

use serde_json::Value;

/// Whether this host has an NVIDIA GPU device node (a discrete GPU, or a Jetson's).
fn gpu_device_here() -> bool {
    ["/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0"].iter().any(|p| std::path::Path::new(p).exists())
}

fn run_json(model: &str, image: &str, backend: &str) -> (Value, String) {
    let out = common::kestrel(&["run", model, image, "--backend", backend, "--json"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{model} on {backend}: {err}");
    (serde_json::from_slice(&out.stdout).expect("one JSON line"), err)
}

#[test]
fn cuda_runs_where_a_gpu_is_and_fails_in_one_line_where_none_is() {
    if cfg!(feature = "cuda") && gpu_device_here() {
        let selftest = common::kestrel(&["gpu-selftest"]);
        assert!(selftest.status.success(), "{}", String::from_utf8_lossy(&selftest.stderr));
        let (cpu, _) = run_json("models/blazeface/model.onnx", "models/samples/astronaut.png", "cpu");
        let (gpu, _) = run_json("models/blazeface/model.onnx", "models/samples/astronaut.png", "cuda");
        assert_eq!(gpu["backend"], "cuda");
        let (a, b) = (cpu["detections"].as_array().unwrap(), gpu["detections"].as_array().unwrap());
        assert!(!a.is_empty() && a.len() == b.len(), "cpu {cpu} vs cuda {gpu}");
        for (a, b) in a.iter().zip(b) {
            for k in ["x_min", "y_min", "x_max", "y_max"] {
                assert!((a[k].as_f64().unwrap() - b[k].as_f64().unwrap()).abs() <= 0.5, "{k}: {a} vs {b}");
            }
            assert!((a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() <= 1e-3, "{a} vs {b}");
        }
        let sample = "models/fashion-cnn/samples/00-ankle-boot.png";
        let (cpu, _) = run_json("models/fashion-cnn/model.onnx", sample, "cpu");
        let (gpu, _) = run_json("models/fashion-cnn/model.onnx", sample, "cuda");
        let (a, b) = (cpu["classes"].as_array().unwrap(), gpu["classes"].as_array().unwrap());
        assert!(!a.is_empty() && a.len() == b.len(), "cpu {cpu} vs cuda {gpu}");
        for (a, b) in a.iter().zip(b) {
            assert_eq!(a["index"], b["index"]);
            assert!((a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() <= 1e-3, "{a} vs {b}");
        }
        common::record_check("cuda", true, "both models on the GPU match the CPU");
        return;
    }
    let out =
        common::kestrel(&["run", "models/blazeface/model.onnx", "models/samples/astronaut.png", "--backend", "cuda"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let expected = if cfg!(feature = "cuda") { "no CUDA driver found" } else { "rebuild with `--features cuda`" };
    assert!(err.starts_with("Error: ") && err.contains(expected), "{err}");
    let out = common::kestrel(&["gpu-selftest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(expected));
    let why = if gpu_device_here() { "this build has no CUDA support" } else { "no GPU device here" };
    common::record_check("cuda", false, &format!("{why}: checked the one-line error instead"));
}

#[test]
fn auto_chooses_by_the_model_and_the_machine_and_says_why() {
    let (v, err) = run_json("models/blazeface/model.onnx", "models/samples/astronaut.png", "auto");
    let gpu = cfg!(feature = "cuda") && gpu_device_here();
    let want = if gpu { "backend cuda: float model; a GPU is usable" } else { "backend cpu: float model" };
    assert!(err.lines().any(|l| l == want), "{err}");
    assert_eq!(v["backend"], if gpu { "cuda" } else { "cpu" });
}

/// `kestrel watch --backend cuda`: with a GPU, the CUDA kernel prepares the frames (bilinear
/// resampling where the CPU path uses `image`'s triangle filter, so boxes agree to IoU ≥ 0.8,
/// not to the pixel) and every frame gets the CPU path's faces; without one, one clear error
/// before any frame.
#[cfg(feature = "camera")]
#[test]
fn watch_prepares_frames_on_the_gpu_or_fails_before_any_frame() {
    let args = |backend| {
        let clip = "models/clips/face.mp4";
        ["watch", "models/blazeface/model.onnx", clip, "--frames", "10", "--json", "--backend", backend]
    };
    let frames = |stdout: &[u8]| -> Vec<Value> {
        let text = String::from_utf8_lossy(stdout);
        let lines = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap());
        lines.filter(|v| v.get("frame").is_some()).collect()
    };
    if cfg!(feature = "cuda") && gpu_device_here() {
        let cpu = common::kestrel(&args("cpu"));
        let gpu = common::kestrel(&args("cuda"));
        let err = String::from_utf8_lossy(&gpu.stderr);
        assert!(gpu.status.success() && err.contains("preprocessing on the GPU"), "{err}");
        let (cpu, gpu) = (frames(&cpu.stdout), frames(&gpu.stdout));
        assert_eq!((cpu.len(), gpu.len()), (10, 10));
        let iou = |a: &Value, b: &Value| {
            let f = |v: &Value, k: &str| v[k].as_f64().unwrap();
            let w = f(a, "x_max").min(f(b, "x_max")) - f(a, "x_min").max(f(b, "x_min"));
            let h = f(a, "y_max").min(f(b, "y_max")) - f(a, "y_min").max(f(b, "y_min"));
            let inter = w.max(0.0) * h.max(0.0);
            let area = |v: &Value| (f(v, "x_max") - f(v, "x_min")) * (f(v, "y_max") - f(v, "y_min"));
            inter / (area(a) + area(b) - inter)
        };
        for (c, g) in cpu.iter().zip(&gpu) {
            assert_eq!(c["frame"], g["frame"]);
            let (c, g) = (c["detections"].as_array().unwrap(), g["detections"].as_array().unwrap());
            assert!(!c.is_empty() && c.len() == g.len(), "cpu {c:?} vs cuda {g:?}");
            for (a, b) in c.iter().zip(g) {
                assert!(iou(a, b) >= 0.8, "{a} vs {b}");
            }
        }
        return;
    }
    let out = common::kestrel(&args("cuda"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(frames(&out.stdout).is_empty(), "no frame may be processed");
    let expected = if cfg!(feature = "cuda") { "no CUDA driver found" } else { "rebuild with `--features cuda`" };
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("Error: ") && last.contains(expected), "{err}");
}
