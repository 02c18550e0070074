//! The CUDA backend where there is no GPU (this machine, CI): a clean one-line error, exit 1.
//! With `--features cuda` the backend is compiled in and must say "no CUDA driver found";
//! without it, that the build has no CUDA support. `--backend auto` falls back to the CPU.

mod common;

#[test]
fn cuda_without_a_gpu_fails_in_one_line() {
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
}

#[test]
fn auto_falls_back_to_the_cpu_and_says_so() {
    let out = common::kestrel(&[
        "run",
        "models/blazeface/model.onnx",
        "models/samples/astronaut.png",
        "--backend",
        "auto",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("backend auto: using cpu"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "cpu");
}
