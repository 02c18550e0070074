//! PNG/JPEG decode, then each bundled preprocessing. See `kestrel_fuzz::targets::image_preprocess`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::image_preprocess(data));
