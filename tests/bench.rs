//! `kestrel bench`: table, JSON and HTML for both bundled models, full vs compressed.

mod common;

use serde_json::Value;

#[test]
fn bench_compares_full_and_compressed_in_table_json_and_html() {
    let dir = std::env::temp_dir().join(format!("kestrel-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let workloads: [(&str, &[&str]); 2] = [
        ("models/fashion-cnn/model.onnx", &["--dataset", "fashion-mnist", "--limit", "500"]),
        ("models/blazeface/model.onnx", &["--images", "models/samples"]),
    ];
    for (full, workload) in workloads {
        let int8 = full.replace("model.onnx", "model.int8.onnx");
        let (json, html) = (dir.join("b.json"), dir.join("b.html"));
        let (json_s, html_s) = (json.display().to_string(), html.display().to_string());
        let mut args = vec!["bench", full, &int8, "--runs", "22", "--json", &json_s, "--html", &html_s];
        args.extend(workload);
        let out = common::kestrel(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("p50 ms") && stdout.contains("smaller"), "{stdout}");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let models = v["models"].as_array().unwrap();
        assert_eq!(models.len(), 2);
        for m in models {
            assert_eq!(m["latencies_ms"].as_array().unwrap().len(), 22, "22 runs in 5 rounds of 5, 5, 4, 4, 4");
            assert!(m["p50_ms"].as_f64().unwrap() <= m["p99_ms"].as_f64().unwrap());
            assert!(m["peak_rss_mib"].as_f64().unwrap() > 1.0);
        }
        // The int8 model agrees closely with the full one.
        if full.contains("blazeface") {
            assert!(models[1]["mean_iou"].as_f64().unwrap() >= 0.9, "{v}");
            // The faces the full model is sure of, apart: all found.
            let sure = &models[1]["sure_boxes"];
            assert!(sure["boxes"].as_u64() >= Some(1) && sure["found"] == 1.0, "{v}");
            assert!(stdout.contains("box(es) the full model scores >= 0.5: 100.0% found"), "{stdout}");
        } else {
            assert!(models[1]["quality"].as_f64().unwrap() >= models[0]["quality"].as_f64().unwrap() - 0.01);
        }
        assert!(models[1]["file_bytes"].as_u64() < models[0]["file_bytes"].as_u64());
        // Each row names the backend `auto` chose and why, and its thread count; the report
        // names the machine, so two reports can be compared.
        assert_eq!((models[0]["backend"].as_str(), models[1]["backend"].as_str()), (Some("cpu"), Some("micro")));
        assert_eq!(models[0]["backend_reason"], "float model");
        assert!(models.iter().all(|m| m["threads"] == 1), "{v}");
        let machine = &v["machine"];
        assert!(machine["cores"].as_u64().unwrap() >= 1 && !machine["cpu"].as_str().unwrap().is_empty(), "{v}");
        let kernels = ["avx512-vnni", "avx2", "aarch64-sdot", "portable"];
        assert!(kernels.contains(&machine["micro_kernel"].as_str().unwrap()), "{v}");
        let page = std::fs::read_to_string(&html).unwrap();
        assert_eq!(page.matches("<svg").count(), 3);
        assert!(page.contains("model.int8.onnx") && page.contains("<circle"), "no scatter points");
        assert!(page.contains("latency against quality") && page.contains(r#"class="frontier""#), "no Pareto chart");
        assert!(page.contains(machine["micro_kernel"].as_str().unwrap()), "the page does not name the machine");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `--backend micro`: the int8 candidate on the integer runtime, the float full model on the CPU
/// backend (which the integer runtime cannot run), each row saying which.
#[test]
fn bench_with_the_micro_backend_measures_the_full_model_on_the_cpu() {
    let dir = std::env::temp_dir().join(format!("kestrel-bench-micro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("b.json");
    let json_s = json.display().to_string();
    let args = [
        "bench",
        "models/fashion-cnn/model.onnx",
        "models/fashion-cnn/model.int8.onnx",
        "--backend",
        "micro",
        "--dataset",
        "fashion-mnist",
        "--limit",
        "300",
        "--runs",
        "10",
        "--json",
        &json_s,
    ];
    let out = common::kestrel(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let models = v["models"].as_array().unwrap();
    assert_eq!((models[0]["backend"].as_str(), models[1]["backend"].as_str()), (Some("cpu"), Some("micro")));
    assert!(models[1]["quality"].as_f64().unwrap() >= models[0]["quality"].as_f64().unwrap() - 0.01, "{v}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("model.int8.onnx (micro)"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_needs_a_workload() {
    let out = common::kestrel(&["bench", "models/fashion-cnn/model.onnx"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dataset NAME or --images DIR"));
    let out = common::kestrel(&[
        "bench",
        "models/fashion-cnn/model.onnx",
        "no/such.onnx",
        "--dataset",
        "fashion-mnist",
        "--runs",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("measuring `no/such.onnx`"), "{err}");
}
