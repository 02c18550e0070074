//! `kestrel export`: an int8 ONNX model → a `.kmodel` for the integer runtime.

use anyhow::{Context, Result};
use serde_json::json;

use crate::cli::ExportArgs;
use crate::models::{config_to_carry, load_config, load_model};

pub fn export(args: &ExportArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let config = load_config(&args.model, &model, &args.model_config)?;
    let shape = config.preprocess.shape();
    let text = config_to_carry(&args.model, &model, &config, &args.model_config)?;
    let exported = kestrel_engine::export_kmodel::export_kmodel(&model, &shape, Some(&text))
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
