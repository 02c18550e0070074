//! CUDA backend (features `cuda` / `cuda-12`): tract-cuda runs the graph (cuDNN/cuBLAS, with
//! tract's per-node CPU fallback); cudarc, loaded at run time, probes the driver first — it would
//! panic on first use without `libcuda.so` — and runs our own preprocessing kernel.

use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, DriverError, LaunchConfig, PushKernelArg,
    ValidAsZeroBits,
};
use kestrel_onnx::OnnxModel;
use tract_onnx::tract_core::internal::TractErrorContext;
use tract_onnx::tract_core::runtime::{runtime_for_name, State};

use super::cpu::{guard, run_state, specs, typed_model};
use crate::preprocess_kernel::{Canvas, FrameFormat, KERNEL_SOURCE};
use crate::{Backend, EngineError, PrepareOptions, Prepared, Tensor, TensorSpec};

// tract-cuda registers its runtime through a link-time registry: keep the crate linked.
use tract_cuda as _;

#[derive(Debug, Default)]
pub struct Cuda;

fn unavailable(reason: impl Into<String>) -> EngineError {
    EngineError::BackendUnavailable { backend: "cuda", reason: reason.into() }
}

/// Is a CUDA driver loadable and is there a device? Never panics.
pub fn probe() -> Result<Arc<CudaContext>, EngineError> {
    // SAFETY: only tries to dlopen libcuda and reports whether it loaded; no CUDA call is made.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(unavailable("no CUDA driver found (libcuda.so could not be loaded)"));
    }
    let count = CudaContext::device_count().map_err(|e| unavailable(format!("the CUDA driver failed: {e}")))?;
    if count < 1 {
        return Err(unavailable("no CUDA device found"));
    }
    CudaContext::new(0).map_err(|e| unavailable(format!("cannot open CUDA device 0: {e}")))
}

struct CudaPrepared {
    state: Box<dyn State>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
}

impl Backend for Cuda {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn check(&self) -> Result<(), EngineError> {
        probe()?;
        let runtime = runtime_for_name("cuda")
            .map_err(|e| unavailable(e.to_string()))?
            .ok_or_else(|| unavailable("tract-cuda is not linked into this build"))?;
        runtime.check().map_err(|e| unavailable(format!("{e} (cuBLAS/cuDNN/NVRTC libraries on the library path?)")))
    }

    fn prepare(&self, model: &OnnxModel, options: &PrepareOptions) -> Result<Box<dyn Prepared>, EngineError> {
        self.check()?;
        let typed = typed_model(model, &options.input_shapes)?;
        guard(|| {
            let inputs = specs(&typed, &typed.inputs)?;
            let outputs = specs(&typed, &typed.outputs)?;
            let runtime = runtime_for_name("cuda")?.context("tract-cuda runtime")?;
            let runnable = runtime.prepare(typed)?;
            let state = runnable.spawn()?;
            Ok(Box::new(CudaPrepared { state, inputs, outputs }) as Box<dyn Prepared>)
        })
        .map_err(|e| e.into_prepare())
    }
}

// SAFETY: the state is only used through `&mut self`, one thread at a time; tract-cuda binds
// its CUDA context to whichever thread runs it.
unsafe impl Send for CudaPrepared {}

impl Prepared for CudaPrepared {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EngineError> {
        run_state(self.state.as_mut(), &self.inputs, inputs)
    }
}

/// The preprocessing kernel, loaded once, with device buffers reused from frame to frame (a
/// camera sends frames of one size: after the first, `run` allocates nothing on either side).
pub struct GpuPreprocessor {
    stream: Arc<CudaStream>,
    func: CudaFunction,
    src: Option<CudaSlice<u8>>,
    dst: Option<CudaSlice<f32>>,
}

fn preprocess_error(what: &str, e: &dyn std::fmt::Display) -> EngineError {
    EngineError::Run(format!("CUDA preprocessing: {what}: {e}"))
}

impl GpuPreprocessor {
    /// Compiles the kernel with NVRTC (no FMA contraction, so it matches the CPU reference bit
    /// for bit) at first use, caches the PTX on disk, and loads it on `ctx`.
    pub fn new(ctx: &Arc<CudaContext>) -> Result<GpuPreprocessor, EngineError> {
        let ptx = cached_ptx().map_err(|e| preprocess_error("compiling the kernel with NVRTC", &e))?;
        let module = ctx.load_module(ptx).map_err(|e| preprocess_error("loading the kernel", &e))?;
        let func =
            module.load_function("kestrel_preprocess").map_err(|e| preprocess_error("finding the kernel", &e))?;
        Ok(GpuPreprocessor { stream: ctx.default_stream(), func, src: None, dst: None })
    }

    /// `src` (a `src_w`×`src_h` frame) → `out` (3 × canvas, NCHW), mapped onto `lo..hi`.
    pub fn run(
        &mut self,
        src: &[u8],
        format: FrameFormat,
        (src_w, src_h): (usize, usize),
        canvas: Canvas,
        (lo, hi): (f32, f32),
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let err = preprocess_error;
        if src.len() != format.bytes(src_w, src_h) || src_w == 0 || src_h == 0 {
            return Err(EngineError::Shape(format!(
                "a {src_w}x{src_h} {format:?} frame cannot hold {} bytes",
                src.len()
            )));
        }
        if !canvas.is_valid() || out.len() != 3 * canvas.width * canvas.height {
            return Err(EngineError::Shape(format!("{canvas:?} does not fit an output of {} values", out.len())));
        }
        let stream = &self.stream;
        let d_src = reuse(&mut self.src, src.len(), stream).map_err(|e| err("allocating the frame", &e))?;
        let d_dst = reuse(&mut self.dst, out.len(), stream).map_err(|e| err("allocating the output", &e))?;
        stream.memcpy_htod(src, d_src).map_err(|e| err("copying the frame", &e))?;
        let (x, y, w, h) = canvas.inner;
        let ints = [format.code(), src_w as i32, src_h as i32];
        let geometry = [canvas.width as i32, canvas.height as i32, x as i32, y as i32, w as i32, h as i32];
        let cfg = LaunchConfig {
            grid_dim: ((canvas.width as u32).div_ceil(16), (canvas.height as u32).div_ceil(16), 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = stream.launch_builder(&self.func);
        launch.arg(d_src).arg(&ints[0]).arg(&ints[1]).arg(&ints[2]).arg(&mut *d_dst);
        for g in &geometry {
            launch.arg(g);
        }
        launch.arg(&lo).arg(&hi);
        // SAFETY: the argument list matches the kernel's signature (pointer, 3 ints, pointer,
        // 6 ints, 2 floats); the grid covers the output and the kernel bounds-checks every thread
        // against dst_w × dst_h; d_src holds exactly the frame's bytes, d_dst 3·dst_w·dst_h
        // floats, and the rectangle lies inside the output (`Canvas::is_valid`).
        unsafe { launch.launch(cfg) }.map_err(|e| err("launching the kernel", &e))?;
        stream.memcpy_dtoh(&*d_dst, out).map_err(|e| err("copying the result back", &e))?;
        stream.synchronize().map_err(|e| err("waiting for the GPU", &e))
    }
}

/// The device buffer in `slot`, reallocated only when the size changes.
fn reuse<'a, T: DeviceRepr + ValidAsZeroBits>(
    slot: &'a mut Option<CudaSlice<T>>,
    len: usize,
    stream: &Arc<CudaStream>,
) -> Result<&'a mut CudaSlice<T>, DriverError> {
    if slot.as_ref().is_none_or(|d| d.len() != len) {
        *slot = Some(stream.alloc_zeros::<T>(len)?);
    }
    Ok(slot.as_mut().expect("allocated above"))
}

/// One frame through [`GpuPreprocessor`], for checks (`kestrel gpu-selftest`).
pub fn gpu_preprocess(
    ctx: &Arc<CudaContext>,
    src: &[u8],
    format: FrameFormat,
    src_size: (usize, usize),
    canvas: Canvas,
    range: (f32, f32),
) -> Result<Vec<f32>, EngineError> {
    let mut out = vec![0f32; 3 * canvas.width * canvas.height];
    GpuPreprocessor::new(ctx)?.run(src, format, src_size, canvas, range, &mut out)?;
    Ok(out)
}

fn cached_ptx() -> Result<cudarc::nvrtc::Ptx, String> {
    let dir = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("kestrel");
    let key = kestrel_micro::crc32(KERNEL_SOURCE.as_bytes());
    let path = dir.join(format!("preprocess-{key:08x}.ptx"));
    if let Ok(src) = std::fs::read_to_string(&path) {
        return Ok(cudarc::nvrtc::Ptx::from_src(src));
    }
    // SAFETY: only dlopens libnvrtc and reports whether it loaded.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("NVRTC (libnvrtc.so) could not be loaded".into());
    }
    let opts = cudarc::nvrtc::CompileOptions { fmad: Some(false), ..Default::default() };
    let ptx = cudarc::nvrtc::compile_ptx_with_opts(KERNEL_SOURCE, opts).map_err(|e| e.to_string())?;
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, ptx.to_src()));
    Ok(ptx)
}
