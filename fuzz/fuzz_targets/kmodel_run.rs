//! `.kmodel` parse, prepare and run. See `kestrel_fuzz::targets::kmodel_run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::kmodel_run(data));
