//! `kestrel inspect`: what a model declares, weighs and costs.

use anyhow::Result;
use kestrel_engine::EngineError;
use kestrel_onnx::OnnxModel;
use serde_json::json;

use super::si;
use crate::cli::{ConfigArgs, InspectArgs};
use crate::models::{guess_config, load_config, load_model, CONFIG_METADATA_KEY};

/// The concrete input shape costs are counted at, and where it came from.
fn cost_shape(args: &InspectArgs, model: &OnnxModel, declared: &[Option<u64>]) -> (Vec<usize>, String) {
    if !args.input_shape.is_empty() {
        return (args.input_shape.clone(), "--input-shape".into());
    }
    let configured = model.proto.metadata_props.iter().any(|e| e.key == CONFIG_METADATA_KEY)
        || kestrel_vision::ModelConfig::path_for(&args.model).exists();
    if configured {
        if let Ok(c) = load_config(&args.model, model, &ConfigArgs::default()) {
            return (c.preprocess.shape(), "the model's config".into());
        }
    } else if let Ok(g) = guess_config(&args.model, model, None) {
        if !g.notes.iter().any(|n| n.contains("dynamic")) {
            return (g.config.preprocess.shape(), "guessed from the model, as `kestrel run` would".into());
        }
    }
    let size = kestrel_vision::guess::DEFAULT_SIZE as usize;
    let shape = declared.iter().enumerate().map(|(i, d)| d.map_or(if i == 0 { 1 } else { size }, |d| d as usize));
    let what = if declared.iter().any(Option::is_none) {
        format!("declared, dynamic dims as batch 1 and {size} elsewhere; pass --input-shape to choose")
    } else {
        "declared".into()
    };
    (shape.collect(), what)
}

/// Why a cost could not be counted, in words (tract's panics included, never leaked raw).
fn unknown(e: &EngineError) -> String {
    match e {
        EngineError::Internal { message, .. } => format!("tract cannot analyse the graph at this shape ({message})"),
        other => other.to_string(),
    }
}

/// Bytes of every tensor the graph computes at `shape` (no buffer reuse) and of the largest one.
fn activation_bytes(model: &OnnxModel, shape: &[usize]) -> Result<(u64, u64), EngineError> {
    let shapes = kestrel_engine::backends::cpu::tensor_shapes(model, &[shape.to_vec()])?;
    let weights: std::collections::HashSet<&str> =
        model.proto.graph.iter().flat_map(|g| &g.initializer).map(|t| t.name.as_str()).collect();
    let bytes = shapes.iter().filter(|(name, _)| !weights.contains(name.as_str())).map(|(_, (dtype, dims))| {
        let width = match *dtype {
            "f64" | "i64" | "u64" => 8,
            "f32" | "i32" | "u32" => 4,
            "f16" | "i16" | "u16" => 2,
            _ => 1,
        };
        dims.iter().product::<usize>() as u64 * width
    });
    Ok(bytes.fold((0, 0), |(sum, max), b| (sum + b, max.max(b))))
}

pub fn inspect(args: &InspectArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let file_bytes = std::fs::metadata(&args.model)?.len();
    let s = kestrel_onnx::summarize(&model.proto);
    let declared = s.inputs.first().map(|i| i.shape.clone()).unwrap_or_default();
    let (shape, shape_from) = cost_shape(args, &model, &declared);
    let macs = kestrel_engine::count_macs(&model, std::slice::from_ref(&shape));
    let activations = activation_bytes(&model, &shape);
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
            "cost_shape": shape,
            "cost_shape_from": shape_from,
            "macs": macs.as_ref().ok(),
            "macs_error": macs.as_ref().err().map(unknown),
            "activation_bytes": activations.as_ref().ok().map(|a| a.0),
            "largest_activation_bytes": activations.as_ref().ok().map(|a| a.1),
            "activations_error": activations.as_ref().err().map(unknown),
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
    println!("at shape   {shape:?} ({shape_from})");
    match macs {
        Ok(m) => println!("MACs       {} ({}MAC per inference)", m, si(m as f64)),
        Err(e) => println!("MACs       unknown: {}", unknown(&e)),
    }
    match activations {
        Ok((sum, max)) => {
            println!("activations {}B in all (no reuse), largest tensor {}B", si(sum as f64), si(max as f64))
        }
        Err(e) => println!("activations unknown: {}", unknown(&e)),
    }
    Ok(())
}
