//! ONNX int8 → `.kmodel` export, then parse and run. See `kestrel_fuzz::targets::kmodel_export`.
#![no_main]

libfuzzer_sys::fuzz_target!(init: kestrel_fuzz::targets::tolerate_caught_panics(), |data: &[u8]| kestrel_fuzz::targets::kmodel_export(data));
