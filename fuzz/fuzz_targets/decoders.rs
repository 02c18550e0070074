//! Output tensors and thresholds → each decoder family. See `kestrel_fuzz::targets::decoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::decoders(data));
