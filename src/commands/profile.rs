//! `kestrel profile`: where a model's time goes, op by op — the first thing to look at when a
//! compressed model is slower than expected (which layers stayed in float, which kernel is slow).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Result};
use kestrel_engine::{OpTime, Tensor};
use serde_json::json;

use crate::cli::ProfileArgs;
use crate::models::{engine, load_config, open_model, ModelView};

const WARM_UP: usize = 10;

pub fn profile(args: &ProfileArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let file = open_model(&args.model)?;
    let shape = match load_config(&args.model, &file, &args.model_config) {
        Ok(config) => config.preprocess.shape(),
        // Timing needs a shape, not a picture: a model whose input is not an image (a feature
        // map, a benchmark layer stack) is profiled at `--input-shape` or its declared shape.
        Err(e) => {
            let declared = ModelView::from(&file).inputs().first().and_then(|(_, dims)| {
                dims.iter().map(|d| d.and_then(|d| usize::try_from(d).ok())).collect::<Option<Vec<usize>>>()
            });
            let given = (!args.model_config.input_shape.is_empty()).then(|| args.model_config.input_shape.clone());
            let shape = given.or(declared).ok_or(e)?;
            eprintln!("profiling at input shape {shape:?}: not an image input, no preprocessing");
            shape
        }
    };
    // A fixed pattern in [0, 1): the kernels' time does not depend on the values.
    let values = (0..shape.iter().product::<usize>()).map(|i| (i * 7919 % 1009) as f32 / 1009.0).collect();
    let inputs = [Tensor::f32(shape.clone(), values)?];
    let mut eng = engine(&file, &args.engine, shape)?;
    for _ in 0..WARM_UP {
        eng.run(&inputs)?;
    }
    let ops = eng.op_times(&inputs, args.runs)?;
    let total: f64 = ops.iter().map(|o| o.seconds).sum();
    let kinds = by_kind(&ops);
    if args.json {
        let ms = |s: f64| s * 1e3;
        let doc = json!({
            "model": args.model.display().to_string(),
            "backend": eng.backend(),
            "runs": args.runs,
            "total_ms": ms(total),
            "kinds": kinds.iter().map(|(k, n, s)| json!({"op": k, "count": n, "ms": ms(*s)})).collect::<Vec<_>>(),
            "ops": ops.iter().enumerate()
                .map(|(i, o)| json!({"index": i, "op": o.op, "detail": o.detail, "ms": ms(o.seconds)}))
                .collect::<Vec<_>>(),
        });
        println!("{doc}");
    } else {
        print!("{}", report(&ops, &kinds, total, args.top));
    }
    Ok(())
}

/// (kind, count, seconds), slowest kind first.
fn by_kind(ops: &[OpTime]) -> Vec<(String, usize, f64)> {
    let mut kinds: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for o in ops {
        let k = kinds.entry(&o.op).or_default();
        *k = (k.0 + 1, k.1 + o.seconds);
    }
    let mut kinds: Vec<_> = kinds.into_iter().map(|(k, (n, s))| (k.to_string(), n, s)).collect();
    kinds.sort_by(|a, b| b.2.total_cmp(&a.2));
    kinds
}

fn report(ops: &[OpTime], kinds: &[(String, usize, f64)], total: f64, top: usize) -> String {
    let share = |s: f64| if total > 0.0 { 100.0 * s / total } else { 0.0 };
    let mut out = format!("{:<20} {:>5} {:>10} {:>7}\n", "op", "count", "ms", "share");
    for (k, n, s) in kinds {
        let _ = writeln!(out, "{k:<20} {n:>5} {:>10.3} {:>6.1}%", s * 1e3, share(*s));
    }
    let _ = writeln!(out, "{:<20} {:>5} {:>10.3} {:>6.1}%\n", "total", ops.len(), total * 1e3, 100.0);
    let mut slowest: Vec<(usize, &OpTime)> = ops.iter().enumerate().collect();
    slowest.sort_by(|a, b| b.1.seconds.total_cmp(&a.1.seconds));
    let _ = writeln!(out, "the {} slowest ops:", top.min(ops.len()));
    for (i, o) in slowest.into_iter().take(top) {
        let _ =
            writeln!(out, "#{i:<4} {:<18} {:>9.3} ms {:>5.1}%  {}", o.op, o.seconds * 1e3, share(o.seconds), o.detail);
    }
    out
}
