//! Frame → model input for `kestrel watch`, into a reused tensor: on the CPU with
//! [`Preprocessor`] (bit-identical to `kestrel run` on the same image), or — with the CUDA
//! backend and an RGB NCHW model — by the CUDA preprocessing kernel, from the full-size frame.

use anyhow::Result;
use kestrel_vision::config::Preprocess;
use kestrel_vision::image::RgbImage;
use kestrel_vision::preprocess::{FrameMap, Preprocessor};

pub enum FramePreparer {
    Cpu(Preprocessor),
    #[cfg(feature = "cuda-backend")]
    Gpu(gpu::GpuPreparer),
}

impl FramePreparer {
    /// The GPU path when the engine runs on CUDA and the kernel can write what the model
    /// wants; otherwise the CPU path (saying why on stderr when the engine is on CUDA).
    pub fn new(p: Preprocess, backend: &str) -> Result<FramePreparer> {
        if backend == "cuda" {
            #[cfg(feature = "cuda-backend")]
            match gpu::GpuPreparer::unsupported(&p) {
                None => {
                    eprintln!("preprocessing on the GPU (CUDA kernel: resize and normalize from the RGB frame)");
                    return Ok(FramePreparer::Gpu(gpu::GpuPreparer::new(p)?));
                }
                Some(why) => eprintln!("preprocessing on the CPU: {why}"),
            }
        }
        Ok(FramePreparer::Cpu(Preprocessor::new(p)))
    }

    /// The input tensor's shape (batch of one).
    pub fn shape(&self) -> &[usize] {
        match self {
            FramePreparer::Cpu(pre) => pre.shape(),
            #[cfg(feature = "cuda-backend")]
            FramePreparer::Gpu(pre) => &pre.shape,
        }
    }

    /// Writes the model input for `img` into `out`; returns how to map boxes back.
    pub fn run(&mut self, img: &RgbImage, out: &mut [f32]) -> Result<FrameMap> {
        match self {
            FramePreparer::Cpu(pre) => {
                let map = pre.run(img);
                out.copy_from_slice(pre.tensor());
                Ok(map)
            }
            #[cfg(feature = "cuda-backend")]
            FramePreparer::Gpu(pre) => pre.run(img, out),
        }
    }
}

#[cfg(feature = "cuda-backend")]
mod gpu {
    use anyhow::{Context, Result};
    use kestrel_engine::backends::cuda::{probe, GpuPreprocessor};
    use kestrel_engine::preprocess_kernel::{Canvas, FrameFormat};
    use kestrel_vision::config::{Color, Layout, Preprocess, Resize};
    use kestrel_vision::image::RgbImage;
    use kestrel_vision::preprocess::{FrameMap, Placement};

    pub struct GpuPreparer {
        p: Preprocess,
        kernel: GpuPreprocessor,
        pub shape: Vec<usize>,
        /// The source size `placement` was computed for.
        source: (u32, u32),
        placement: Option<Placement>,
    }

    impl GpuPreparer {
        /// Why the kernel cannot prepare this model's input, if it cannot.
        pub fn unsupported(p: &Preprocess) -> Option<&'static str> {
            match (p.color, p.layout, p.invert) {
                (Color::Gray, _, _) => Some("the CUDA kernel writes RGB and this model wants gray"),
                (Color::Bgr, _, _) => Some("the CUDA kernel writes RGB and this model wants BGR"),
                (_, Layout::Nhwc, _) => Some("the CUDA kernel writes NCHW and this model wants NHWC"),
                (_, _, true) => Some("the CUDA kernel does not invert"),
                _ if p.has_mean_std() => Some("the CUDA kernel does not apply mean/std"),
                _ if p.pad_value != 0 => Some("the CUDA kernel pads letterboxes with black only"),
                _ if p.resize == Resize::Crop => Some("the CUDA kernel does not centre-crop"),
                (Color::Rgb, Layout::Nchw, false) => None,
            }
        }

        pub fn new(p: Preprocess) -> Result<GpuPreparer> {
            let ctx = probe()?;
            let kernel = GpuPreprocessor::new(&ctx).context("preparing the CUDA preprocessing kernel")?;
            let shape = vec![1, 3, p.height as usize, p.width as usize];
            Ok(GpuPreparer { p, kernel, shape, source: (0, 0), placement: None })
        }

        pub fn run(&mut self, img: &RgbImage, out: &mut [f32]) -> Result<FrameMap> {
            let (w, h) = img.dimensions();
            let placement = match self.placement {
                Some(placement) if self.source == (w, h) => placement,
                _ => {
                    self.source = (w, h);
                    *self.placement.insert(Placement::new(&self.p, w, h))
                }
            };
            let (x, y) = placement.offset;
            let (iw, ih) = placement.inner;
            let canvas = Canvas {
                width: self.p.width as usize,
                height: self.p.height as usize,
                inner: (x as usize, y as usize, iw as usize, ih as usize),
            };
            let size = (w as usize, h as usize);
            self.kernel.run(img.as_raw(), FrameFormat::Rgb, size, canvas, self.p.range, out)?;
            Ok(placement.frame)
        }
    }
}
