//! ONNX load, then prepare and run on the CPU backend. See `kestrel_fuzz::targets::onnx_load`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: kestrel_fuzz::targets::tolerate_caught_panics(), |data: &[u8]| kestrel_fuzz::targets::onnx_load(data));
