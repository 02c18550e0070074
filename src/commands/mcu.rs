//! `kestrel mcu`: images to a microcontroller co-processor over kestrel-link, answers printed.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kestrel_link::host;
use kestrel_link::message::ModelInfo;
use kestrel_vision::image::imageops::FilterType;
use kestrel_vision::{image, ModelConfig};

use crate::cli::McuArgs;

pub fn mcu(args: &McuArgs) -> Result<()> {
    let labels = match &args.config {
        Some(path) => ModelConfig::load(path)?.decoder.labels().to_vec(),
        None => Vec::new(),
    };
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let port = &args.port;
    let mut client = host::open(port, timeout, args.retries).with_context(|| format!("opening the link `{port}`"))?;
    let info = client.hello().with_context(|| format!("asking the device at `{port}` what it runs"))?;
    if let Some(path) = &args.model {
        let bytes = std::fs::read(path).with_context(|| format!("reading `{}`", path.display()))?;
        let crc = kestrel_link::crc32(&bytes);
        if crc != info.model_crc {
            bail!(
                "the device runs another model (CRC-32 {:08x}) than `{}` ({crc:08x})",
                info.model_crc,
                path.display()
            );
        }
    }
    if !args.json {
        eprintln!(
            "device at {port}: input {}x{}x{}, {} output bytes, model CRC-32 {:08x}",
            info.height, info.width, info.channels, info.output_bytes, info.model_crc
        );
    }
    for path in &args.images {
        let frame = frame(path, &info)?;
        let answer = client.infer(&frame).with_context(|| format!("`{}` on the device at `{port}`", path.display()))?;
        let label = labels.get(usize::from(answer.class)).map(String::as_str);
        if args.json {
            let line = serde_json::json!({
                "image": path,
                "class": answer.class,
                "label": label,
                "ticks": answer.cycles,
                "output": answer.output.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            });
            println!("{line}");
        } else {
            let name = label.map(|l| format!(" ({l})")).unwrap_or_default();
            println!("{}: class {}{name}, {} ticks", path.display(), answer.class, answer.cycles);
        }
    }
    let s = client.stats;
    if s.retries > 0 && !args.json {
        eprintln!(
            "link: {} requests, {} sent again ({} timeouts, {} link errors)",
            s.requests, s.retries, s.timeouts, s.link_errors
        );
    }
    Ok(())
}

/// The image's 8-bit pixels in the device's input layout (height × width × channels), scaled
/// to its size; gray is the image's luma.
fn frame(path: &std::path::Path, info: &ModelInfo) -> Result<Vec<u8>> {
    let rgb = kestrel_vision::image_io::load_rgb(path)?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let image = image::DynamicImage::ImageRgb8(rgb);
    let image =
        if image.width() == w && image.height() == h { image } else { image.resize_exact(w, h, FilterType::Triangle) };
    Ok(match info.channels {
        1 => image.to_luma8().into_raw(),
        3 => image.to_rgb8().into_raw(),
        n => bail!("the device asks for {n}-channel frames; kestrel mcu sends gray or RGB"),
    })
}
