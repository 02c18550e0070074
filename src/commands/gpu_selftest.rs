//! `kestrel gpu-selftest`: is the GPU usable, and does our CUDA preprocessing kernel compute
//! exactly what its CPU reference computes?

use anyhow::Result;

use crate::cli::GpuSelftestArgs;

#[cfg(not(feature = "cuda-backend"))]
pub fn gpu_selftest(_: &GpuSelftestArgs) -> Result<()> {
    anyhow::bail!("this build has no CUDA support (rebuild with `--features cuda`)")
}

#[cfg(feature = "cuda-backend")]
pub fn gpu_selftest(args: &GpuSelftestArgs) -> Result<()> {
    use anyhow::Context;
    use kestrel_engine::backends::cuda::{gpu_preprocess, probe};
    use kestrel_engine::preprocess_kernel::{preprocess_reference, Canvas, FrameFormat};

    let ctx = probe()?;
    let device = ctx.name().context("reading the device name")?;
    let mut seed = 0x0005_DEEC_E66D_u64;
    let mut results = Vec::new();
    // Stretched, and letterboxed as BlazeFace's config asks (a 4:3 and a 16:9 frame into 128²).
    for (format, (w, h), canvas) in [
        (FrameFormat::Rgb, (640, 480), Canvas::stretch(128, 128)),
        (FrameFormat::Rgb, (1280, 720), Canvas::stretch(128, 128)),
        (FrameFormat::Yuyv, (640, 480), Canvas::stretch(128, 128)),
        (FrameFormat::Rgb, (97, 53), Canvas::stretch(28, 28)),
        (FrameFormat::Rgb, (640, 480), Canvas { width: 128, height: 128, inner: (0, 16, 128, 96) }),
        (FrameFormat::Yuyv, (1280, 720), Canvas { width: 128, height: 128, inner: (0, 28, 128, 72) }),
    ] {
        let (dw, dh) = (canvas.width, canvas.height);
        let frame: Vec<u8> = (0..format.bytes(w, h))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let gpu = gpu_preprocess(&ctx, &frame, format, (w, h), canvas, (-1.0, 1.0))?;
        let cpu = preprocess_reference(&frame, format, (w, h), canvas, (-1.0, 1.0));
        if gpu.len() != cpu.len() || cpu.len() != 3 * dw * dh {
            anyhow::bail!(
                "the CUDA kernel gave {} values, its CPU reference {} (want {})",
                gpu.len(),
                cpu.len(),
                3 * dw * dh
            );
        }
        let max = gpu.iter().zip(&cpu).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        results.push(
            serde_json::json!({"format": format!("{format:?}"), "from": [w, h], "to": [dw, dh], "inner": canvas.inner, "max_abs_diff": max}),
        );
        if !args.json {
            println!("{format:?} {w}x{h} -> {dw}x{dh}: max |gpu - cpu| = {max:e}");
        }
        if max > 1e-6 {
            anyhow::bail!("the CUDA preprocessing kernel differs from its CPU reference by {max}");
        }
    }
    if args.json {
        println!("{}", serde_json::json!({"device": device, "preprocess": results}));
    } else {
        println!("device 0: {device}: preprocessing kernel matches its CPU reference");
    }
    Ok(())
}
