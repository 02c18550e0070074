//! `kestrel inspect`: what a model declares, weighs and costs.

use anyhow::Result;
use serde_json::json;

use super::si;
use crate::cli::InspectArgs;
use crate::models::load_model;

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let file_bytes = std::fs::metadata(&args.model)?.len();
    let s = kestrel_onnx::summarize(&model.proto);
    // MACs need concrete shapes: symbolic dims (the batch) count as 1.
    let macs = kestrel_engine::count_macs(&model, &[]);
    let io_json = |v: &[kestrel_onnx::IoInfo]| {
        v.iter()
            .map(|i| {
                let shape: Vec<serde_json::Value> =
                    i.shape.iter().zip(&i.dim_names).map(|(d, n)| d.map_or_else(|| json!(n), |d| json!(d))).collect();
                json!({"name": i.name, "dtype": i.dtype, "shape": shape})
            })
            .collect::<Vec<_>>()
    };
    if args.json {
        let out = json!({
            "model": args.model.display().to_string(),
            "file_bytes": file_bytes,
            "ir_version": s.ir_version,
            "opset": s.opset,
            "producer": s.producer,
            "inputs": io_json(&s.inputs),
            "outputs": io_json(&s.outputs),
            "nodes": s.nodes,
            "ops": s.ops,
            "parameters": s.parameters,
            "weight_bytes": s.weight_bytes,
            "macs": macs.as_ref().ok(),
            "macs_error": macs.as_ref().err().map(|e| e.to_string()),
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "model      {} ({} bytes, opset {}, IR {}, {})",
        args.model.display(),
        file_bytes,
        s.opset,
        s.ir_version,
        s.producer
    );
    let show = |i: &kestrel_onnx::IoInfo| {
        let dims: Vec<String> =
            i.shape.iter().zip(&i.dim_names).map(|(d, n)| d.map_or_else(|| n.clone(), |d| d.to_string())).collect();
        format!("  {:<24} {:<8} [{}]", i.name, i.dtype, dims.join(", "))
    };
    println!("inputs");
    s.inputs.iter().for_each(|i| println!("{}", show(i)));
    println!("outputs");
    s.outputs.iter().for_each(|i| println!("{}", show(i)));
    println!("nodes      {}", s.nodes);
    let ops: Vec<String> = s.ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("ops        {}", ops.join(", "));
    println!("parameters {} ({})", s.parameters, si(s.parameters as f64).trim());
    println!("weights    {} bytes ({}B)", s.weight_bytes, si(s.weight_bytes as f64));
    match macs {
        Ok(m) => println!("MACs       {} ({}MAC per inference, batch 1)", m, si(m as f64)),
        Err(e) => println!("MACs       unknown ({e})"),
    }
    Ok(())
}
