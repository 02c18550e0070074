//! `kestrel export`: an int8 ONNX model → a `.kmodel` for the integer runtime.

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::ExportArgs;
use crate::models::load_model;

pub fn export(args: &ExportArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let shape = if args.input_shape.is_empty() {
        kestrel_engine::export_kmodel::declared_input_shape(&model)
    } else {
        args.input_shape.clone()
    };
    let exported = kestrel_engine::export_kmodel::export_kmodel(&model, &shape)
        .with_context(|| format!("exporting `{}`", args.model.display()))?;
    let tmp = args.out.with_extension("kmodel.tmp");
    std::fs::write(&tmp, &exported.bytes).with_context(|| format!("writing `{}`", args.out.display()))?;
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing `{}`", args.out.display()))?;
    let summary = json!({
        "model": args.model.display().to_string(),
        "out": args.out.display().to_string(),
        "input_shape": shape,
        "bytes": exported.bytes.len(),
        "ops": exported.ops,
        "arena_bytes": exported.arena_len,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "{} -> {} ({} bytes, {} ops, arena {} bytes, input {:?})",
            args.model.display(),
            args.out.display(),
            exported.bytes.len(),
            exported.ops,
            exported.arena_len,
            shape
        );
    }
    Ok(())
}
