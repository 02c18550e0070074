//! CUDA backend (features `cuda` / `cuda-12`): tract-cuda runs the graph (cuDNN/cuBLAS, with
//! tract's per-node CPU fallback); cudarc, loaded at run time, probes the driver first — it would
//! panic on first use without `libcuda.so` — and runs our own preprocessing kernel.

use std::sync::Arc;

use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg};
use kestrel_onnx::OnnxModel;
use tract_onnx::tract_core::internal::TractErrorContext;
use tract_onnx::tract_core::runtime::{runtime_for_name, State};

use super::cpu::{guard, run_state, specs, typed_model};
use crate::preprocess_kernel::{FrameFormat, KERNEL_SOURCE};
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

/// Runs the preprocessing kernel on the GPU: compiled with NVRTC (no FMA contraction, so it
/// matches the CPU reference bit for bit) at first use and cached as PTX on disk.
pub fn gpu_preprocess(
    ctx: &Arc<CudaContext>,
    src: &[u8],
    format: FrameFormat,
    (src_w, src_h): (usize, usize),
    (dst_w, dst_h): (usize, usize),
    (lo, hi): (f32, f32),
) -> Result<Vec<f32>, EngineError> {
    let err = |what: &str, e: &dyn std::fmt::Display| EngineError::Run(format!("CUDA preprocessing: {what}: {e}"));
    if src.len() != format.bytes(src_w, src_h) || src_w == 0 || src_h == 0 || dst_w == 0 || dst_h == 0 {
        return Err(EngineError::Shape(format!("a {src_w}x{src_h} {format:?} frame cannot hold {} bytes", src.len())));
    }
    let ptx = cached_ptx().map_err(|e| err("compiling the kernel with NVRTC", &e))?;
    let module = ctx.load_module(ptx).map_err(|e| err("loading the kernel", &e))?;
    let func = module.load_function("kestrel_preprocess").map_err(|e| err("finding the kernel", &e))?;
    let stream = ctx.default_stream();
    let d_src = stream.clone_htod(src).map_err(|e| err("copying the frame", &e))?;
    let mut d_dst = stream.alloc_zeros::<f32>(3 * dst_w * dst_h).map_err(|e| err("allocating the output", &e))?;
    let (fmt, sw, sh, dw, dh) = (format.code(), src_w as i32, src_h as i32, dst_w as i32, dst_h as i32);
    let cfg = LaunchConfig {
        grid_dim: ((dst_w as u32).div_ceil(16), (dst_h as u32).div_ceil(16), 1),
        block_dim: (16, 16, 1),
        shared_mem_bytes: 0,
    };
    let mut launch = stream.launch_builder(&func);
    launch.arg(&d_src).arg(&fmt).arg(&sw).arg(&sh).arg(&mut d_dst).arg(&dw).arg(&dh).arg(&lo).arg(&hi);
    // SAFETY: the argument list matches the kernel's signature (pointer, int, int, int, pointer,
    // int, int, float, float); the grid covers the output and the kernel bounds-checks every
    // thread against dst_w × dst_h; d_src holds exactly the frame's bytes, d_dst 3·dst_w·dst_h floats.
    unsafe { launch.launch(cfg) }.map_err(|e| err("launching the kernel", &e))?;
    stream.clone_dtoh(&d_dst).map_err(|e| err("copying the result back", &e))
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
