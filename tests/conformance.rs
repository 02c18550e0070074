//! ONNX backend node tests (onnx 1.22.0) through the CPU backend, against a committed pass-list.
//!
//! Data: `bash scripts/fetch-onnx-tests.sh` (cached in target/). Tolerance: |got - want| <=
//! 1e-4 + 1e-3·|want| (ONNX's own runner uses rtol 1e-3), NaN equals NaN, exact shape and type.
//! The pass-list stores each case with the mode it passes in (`live`, `first-live`,
//! `all-frozen`, strongest first). A listed case fails the run when it fails, when it only
//! passes in a weaker mode than listed (it stopped working with live inputs), or when its data
//! is missing (a case that did not run never counts as passed). Cases that pass but are not
//! listed are reported so the list can grow; `KESTREL_WRITE_PASSLIST=1` rewrites it and prints
//! every case it drops or weakens.

mod common;

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Result};
use kestrel_engine::{BackendKind, Engine, PrepareOptions};
use kestrel_onnx::Limits;

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

/// How a case passed: with every input fed at run time, or with parameter inputs (axes,
/// shapes, scales: everything after the first input, or all of them) frozen into the model
/// as constants, as tract's own ONNX suite does for ops that need them at plan time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Live,
    FirstLive,
    AllFrozen,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::FirstLive => "first-live",
            Mode::AllFrozen => "all-frozen",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        [Mode::Live, Mode::FirstLive, Mode::AllFrozen].into_iter().find(|m| m.name() == s)
    }
}

/// The pass-list: case → the mode it passes in. A line without a mode is an error.
fn read_pass_list(path: &Path) -> std::collections::BTreeMap<String, Mode> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (case, mode) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            let mode = Mode::parse(mode.trim())
                .unwrap_or_else(|| panic!("{}: `{l}` needs a mode (live, first-live or all-frozen)", path.display()));
            (case.to_string(), mode)
        })
        .collect()
}

fn run_case(dir: &Path) -> Result<Mode> {
    let data = dir.join("test_data_set_0");
    let protos = common::numbered(&data, "input")
        .iter()
        .map(|p| Ok(kestrel_onnx::load_tensor(p, &Limits::default())?))
        .collect::<Result<Vec<_>>>()?;
    let wants = common::numbered(&data, "output").iter().map(|p| common::read_pb(p)).collect::<Result<Vec<_>>>()?;
    let mut first_error = None;
    for (mode, live) in [(Mode::Live, protos.len()), (Mode::FirstLive, 1), (Mode::AllFrozen, 0)] {
        if mode != Mode::Live && live >= protos.len() {
            continue;
        }
        match run_mode(dir, &protos, live, &wants) {
            Ok(()) => return Ok(mode),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| anyhow::anyhow!("no mode ran")))
}

fn run_mode(
    dir: &Path,
    protos: &[kestrel_onnx::pb::TensorProto],
    live: usize,
    wants: &[kestrel_engine::Tensor],
) -> Result<()> {
    let mut model = kestrel_onnx::load(&dir.join("model.onnx"), &Limits::default())?;
    if live < protos.len() {
        let graph = model.proto.graph.as_mut().ok_or_else(|| anyhow::anyhow!("no graph"))?;
        let inits: BTreeSet<String> = graph.initializer.iter().map(|i| i.name.clone()).collect();
        let names: Vec<String> = graph.input.iter().map(|i| i.name.clone()).filter(|n| !inits.contains(n)).collect();
        for (name, proto) in names.iter().zip(protos).skip(live) {
            let mut t = proto.clone();
            t.name = name.clone();
            graph.initializer.push(t);
            graph.input.retain(|i| &i.name != name);
        }
    }
    let inputs = protos[..live]
        .iter()
        .map(|p| {
            let raw = kestrel_onnx::tensor_raw_le(p)?;
            Ok(kestrel_engine::Tensor::from_le_bytes(raw.elem.code, raw.dims, &raw.bytes)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let options = PrepareOptions { threads: 1, input_shapes: inputs.iter().map(|t| t.shape.clone()).collect() };
    let mut engine = Engine::new(BackendKind::Cpu, &model, &options)?;
    let got = engine.run(&inputs)?;
    if got.len() != wants.len() {
        bail!("{} outputs, expected {}", got.len(), wants.len());
    }
    for (i, (g, w)) in got.iter().zip(wants).enumerate() {
        common::compare(g, w, ATOL, RTOL).map_err(|e| anyhow::anyhow!("output {i}: {e}"))?;
    }
    Ok(())
}

fn main() {
    let root = common::repo().join("target/onnx-node-tests");
    let list_path = common::repo().join("tests/conformance/pass-list.txt");
    if !root.join(".complete").exists() {
        eprintln!("conformance: no test data in {}; run `bash scripts/fetch-onnx-tests.sh` first", root.display());
        std::process::exit(1);
    }
    let listed = read_pass_list(&list_path);
    let mut cases: Vec<String> = std::fs::read_dir(&root)
        .expect("listing the conformance data")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    // KESTREL_CONFORMANCE_EVERY=N runs every N-th case only (the aarch64 run under qemu).
    let every: usize = std::env::var("KESTREL_CONFORMANCE_EVERY").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    // A listed case without data did not run: that fails (only a sampled run skips cases by design).
    let missing: Vec<String> =
        if every > 1 { vec![] } else { listed.keys().filter(|c| !cases.contains(c)).cloned().collect() };
    let sampled: BTreeSet<&String> = cases.iter().step_by(every).collect();
    let cases: Vec<String> = cases.iter().step_by(every).cloned().collect();
    let listed: std::collections::BTreeMap<String, Mode> =
        listed.into_iter().filter(|(c, _)| every == 1 || sampled.contains(c)).collect();
    // tract reports failures through panics in a few corners; keep the log quiet, count them as failures.
    std::panic::set_hook(Box::new(|_| {}));
    let results: Mutex<Vec<(String, Result<Mode, String>)>> = Mutex::new(Vec::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let ix = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(case) = cases.get(ix) else { break };
                let outcome = match catch_unwind(AssertUnwindSafe(|| run_case(&root.join(case)))) {
                    Ok(Ok(mode)) => Ok(mode),
                    Ok(Err(e)) => Err(format!("{e:#}")),
                    Err(_) => Err("panicked".to_string()),
                };
                results.lock().unwrap().push((case.clone(), outcome));
            });
        }
    });
    let results = results.into_inner().unwrap();
    let passed: std::collections::BTreeMap<String, Mode> =
        results.iter().filter_map(|(c, r)| r.as_ref().ok().map(|m| (c.clone(), *m))).collect();
    if std::env::var_os("KESTREL_WRITE_PASSLIST").is_some() && every == 1 {
        let mut text = String::from(
            "# ONNX 1.22.0 node tests that pass on the CPU backend, with the strongest mode each passes in\n\
             # (live: every input at run time; first-live: parameter inputs frozen; all-frozen). tests/conformance.rs\n",
        );
        passed.iter().for_each(|(c, m)| text.push_str(&format!("{c} {}\n", m.name())));
        std::fs::write(&list_path, text).expect("writing the pass-list");
        for (case, was) in &listed {
            match passed.get(case) {
                None => println!("pass-list: REMOVED {case} (was {})", was.name()),
                Some(now) if now > was => println!("pass-list: WEAKENED {case}: {} -> {}", was.name(), now.name()),
                _ => {}
            }
        }
    }
    // A listed case regressed when it failed or passed only in a weaker mode than listed.
    let mut regressions: Vec<(String, String)> = Vec::new();
    for (case, r) in &results {
        let Some(&want) = listed.get(case) else { continue };
        match r {
            Err(e) => regressions.push((case.clone(), e.clone())),
            Ok(got) if *got > want => regressions
                .push((case.clone(), format!("listed as passing {}, now passes only {}", want.name(), got.name()))),
            Ok(_) => {}
        }
    }
    for case in missing {
        regressions.push((case, "listed, but its data is missing: it did not run".into()));
    }
    let new: Vec<_> = passed.keys().filter(|c| !listed.contains_key(*c)).collect();
    for (case, why) in &regressions {
        println!("REGRESSION {case}: {why}");
    }
    if !new.is_empty() {
        let shown: Vec<_> = new.iter().take(10).collect();
        println!(
            "{} case(s) pass but are not in the pass-list (KESTREL_WRITE_PASSLIST=1 adds them), e.g. {shown:?}",
            new.len()
        );
    }
    let mut failures = String::new();
    for (case, r) in &results {
        if let Err(e) = r {
            failures.push_str(&format!("{case}\t{}\n", e.replace('\n', " ")));
        }
    }
    let _ = std::fs::write(common::repo().join("target/conformance-failures.tsv"), failures);
    let count = |m: Mode| results.iter().filter(|r| r.1.as_ref().ok() == Some(&m)).count();
    println!(
        "conformance ({}): {} of {} ONNX node tests pass on the CPU backend ({} listed; {} with all inputs live, {} with parameter inputs frozen, {} fully constant-folded)",
        std::env::consts::ARCH,
        passed.len(),
        cases.len(),
        listed.len(),
        count(Mode::Live),
        count(Mode::FirstLive),
        count(Mode::AllFrozen)
    );
    println!("{} passed, {} failed", listed.len() - regressions.len(), regressions.len());
    if !regressions.is_empty() {
        std::process::exit(1);
    }
}
