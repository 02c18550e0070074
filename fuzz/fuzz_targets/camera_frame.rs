//! A mapped camera buffer of any size and stride → RGB → preprocessing. See
//! `kestrel_fuzz::targets::camera_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kestrel_fuzz::targets::camera_frame(data));
