//! `kestrel mcu`: images to a microcontroller co-processor over kestrel-link, answers printed;
//! and the co-processor as an engine (`--mcu PORT` on `run` and `watch`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use kestrel_engine::{BackendKind, Engine, EngineError, Prepared, Tensor, TensorSpec};
use kestrel_link::host;
use kestrel_link::message::ModelInfo;
use kestrel_vision::config::{Layout, Preprocess};
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
    let bytes = args.model.as_ref().map(|p| std::fs::read(p).with_context(|| format!("reading `{}`", p.display())));
    let bytes = bytes.transpose()?;
    let name = args.model.as_ref().map(|p| format!("`{}`", p.display()));
    let (mut client, info) = connect(port, timeout, args.retries, bytes.as_deref().zip(name.as_deref()))?;
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

/// Opens the link and asks the device what it runs; with `model` (its bytes and how to name it),
/// refuses a device running another model (by CRC-32).
fn connect(
    port: &str,
    timeout: Duration,
    retries: u32,
    model: Option<(&[u8], &str)>,
) -> Result<(host::Client, ModelInfo)> {
    let mut client = host::open(port, timeout, retries).with_context(|| format!("opening the link `{port}`"))?;
    let info = client.hello().with_context(|| format!("asking the device at `{port}` what it runs"))?;
    if let Some((bytes, name)) = model {
        let crc = kestrel_link::crc32(bytes);
        if crc != info.model_crc {
            bail!("the device runs another model (CRC-32 {:08x}) than {name} ({crc:08x}), at `{port}`", info.model_crc);
        }
    }
    Ok((client, info))
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

/// An engine whose inference runs on the co-processor at `port`: the device must run `kmodel`
/// (checked by CRC-32) with the input size `preprocess` says. Inputs are turned back into the
/// 8-bit pixels they were made from (the inverse of `preprocess`'s pixel mapping, which the
/// device applies itself), outputs are the device's bytes in the `.kmodel`'s output types.
pub fn engine(port: &str, kmodel: &[u8], preprocess: &Preprocess) -> Result<Engine> {
    // The local runtime reads the .kmodel's tensor specs (and proves it is well formed).
    let local = Engine::from_kmodel(BackendKind::Micro, kmodel.to_vec(), 1)?;
    let (client, info) = connect(port, Duration::from_secs(2), 3, Some((kmodel, "this .kmodel")))?;
    let channels = preprocess.color.channels();
    if (u32::from(info.width), u32::from(info.height), usize::from(info.channels))
        != (preprocess.width, preprocess.height, channels)
    {
        bail!(
            "the device takes {}x{}x{} frames, the model's config {}x{}x{channels}",
            info.width,
            info.height,
            info.channels,
            preprocess.width,
            preprocess.height
        );
    }
    let prepared = McuPrepared {
        client,
        inputs: local.inputs().to_vec(),
        outputs: local.outputs().to_vec(),
        preprocess: *preprocess,
        frame: vec![0; info.frame_bytes()],
    };
    let reason = format!("the co-processor at {port} ({}x{}x{} frames)", info.height, info.width, info.channels);
    eprintln!("backend mcu: {reason}");
    Ok(Engine::from_prepared("mcu", reason, Box::new(prepared)))
}

struct McuPrepared {
    client: host::Client,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    preprocess: Preprocess,
    /// The frame sent, reused.
    frame: Vec<u8>,
}

impl Prepared for McuPrepared {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
        let values = inputs
            .first()
            .and_then(Tensor::as_f32)
            .ok_or_else(|| EngineError::Run("--mcu takes one float32 input".into()))?;
        let p = &self.preprocess;
        let (c, h, w) = (p.color.channels(), p.height as usize, p.width as usize);
        if values.len() != c * h * w {
            return Err(EngineError::Run(format!("input of {} values, the device takes {}", values.len(), c * h * w)));
        }
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = match p.layout {
                        Layout::Nhwc => values[(y * w + x) * c + ch],
                        Layout::Nchw => values[(ch * h + y) * w + x],
                    };
                    self.frame[(y * w + x) * c + ch] = pixel(p, v, ch);
                }
            }
        }
        let answer = self.client.infer(&self.frame).map_err(|e| EngineError::Run(e.to_string()))?;
        let mut at = 0;
        let mut out = Vec::with_capacity(self.outputs.len());
        for spec in &self.outputs {
            let shape: Vec<usize> = spec.shape.iter().map(|d| d.unwrap_or(1)).collect();
            let (code, size) = match spec.dtype.as_str() {
                "float32" => (1, 4),
                "uint8" => (2, 1),
                "int8" => (3, 1),
                "int32" => (6, 4),
                other => {
                    return Err(EngineError::Run(format!("the device's output type {other} is not read over the link")))
                }
            };
            let len = shape.iter().product::<usize>() * size;
            let bytes = answer.output.get(at..at + len).ok_or_else(|| {
                EngineError::Run(format!(
                    "the device answered {} output bytes, the model has more",
                    answer.output.len()
                ))
            })?;
            out.push(Tensor::from_le_bytes(code, shape, bytes)?);
            at += len;
        }
        Ok(out)
    }
}

/// The pixel value that `preprocess` maps to `v` in channel `c` (the inverse of
/// [`Preprocess::value`]).
fn pixel(p: &Preprocess, v: f32, c: usize) -> u8 {
    let (lo, hi) = p.range;
    let scaled = ((v * p.std[c] + p.mean[c] - lo) / (hi - lo) * 255.0).round().clamp(0.0, 255.0) as u8;
    if p.invert {
        255 - scaled
    } else {
        scaled
    }
}

#[cfg(test)]
mod tests {
    use kestrel_vision::config::{Color, Layout, Preprocess};

    #[test]
    fn pixels_come_back_from_every_preprocessing() {
        let mut p = Preprocess::plain(2, 2, Layout::Nchw, Color::Rgb);
        for (range, mean, std, invert) in
            [((0.0, 1.0), [0.0; 3], [1.0; 3], false), ((-1.0, 1.0), [0.1, 0.2, 0.3], [0.5, 0.25, 2.0], true)]
        {
            (p.range, p.mean, p.std, p.invert) = (range, mean, std, invert);
            for c in 0..3 {
                for v in 0..=255u8 {
                    assert_eq!(super::pixel(&p, p.value(v, c), c), v, "{range:?} {c} {v}");
                }
            }
        }
    }
}
